"""Tests that change KSM settings leave a host alone whose KSM already merges pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.real_ksm import REAL_KSM_ALLOWED, host_in_use

pytestmark = pytest.mark.unit


def ksm_dir(tmp_path: Path, run: int, pages_shared: int) -> str:
    (tmp_path / "run").write_text(f"{run}\n")
    (tmp_path / "pages_shared").write_text(f"{pages_shared}\n")
    return str(tmp_path)


@pytest.mark.parametrize("run", [1, 5])  # 5: running, with the memory-offline bit set
def test_a_host_merging_pages_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: int
) -> None:
    monkeypatch.delenv(REAL_KSM_ALLOWED, raising=False)
    assert host_in_use(ksm_dir(tmp_path, run, 12)) == (
        f"KSM is in use on this host (run = {run}, pages_shared = 12):"
        f" set {REAL_KSM_ALLOWED}=1 to let tests change its settings"
    )


@pytest.mark.parametrize(("run", "pages_shared"), [(0, 12), (2, 12), (1, 0)])
def test_a_host_not_merging_is_free_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: int, pages_shared: int
) -> None:
    monkeypatch.delenv(REAL_KSM_ALLOWED, raising=False)
    assert host_in_use(ksm_dir(tmp_path, run, pages_shared)) is None


def test_the_variable_allows_a_host_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REAL_KSM_ALLOWED, "1")
    assert host_in_use(ksm_dir(tmp_path, 1, 12)) is None
