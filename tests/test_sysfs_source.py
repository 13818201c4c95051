from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.paths import FIXTURES
from ksm_exporter.sources.sysfs import AdvisorMode, KsmSysfs, parse_advisor_mode, read_ksm_sysfs

pytestmark = pytest.mark.unit


def sysfs(name: str) -> str:
    return str(FIXTURES / name / "sys")


def test_current_kernel_every_file() -> None:
    reading = read_ksm_sysfs(sysfs("current"))
    assert reading.problems == ()
    assert reading.snapshot == KsmSysfs(
        available=True,
        run=1,
        pages_to_scan=1000,
        sleep_millisecs=20,
        pages_shared=1200,
        pages_sharing=30000,
        pages_unshared=4500,
        pages_volatile=37,
        full_scans=42,
        merge_across_nodes=1,
        use_zero_pages=1,
        max_page_sharing=256,
        stable_node_chains=3,
        stable_node_dups=17,
        stable_node_chains_prune_millisecs=2000,
        general_profit=118000000,
        ksm_zero_pages=250,
        pages_scanned=9876543210,
        smart_scan=1,
        pages_skipped=123456,
        advisor_mode=AdvisorMode(active="scan-time", modes=("none", "scan-time")),
        advisor_max_cpu=70,
        advisor_target_scan_time=200,
        advisor_min_pages_to_scan=500,
        advisor_max_pages_to_scan=30000,
    )


def test_old_kernel_has_only_the_original_eight() -> None:
    reading = read_ksm_sysfs(sysfs("old-kernel"))
    assert reading.problems == ()
    assert reading.snapshot == KsmSysfs(
        available=True,
        run=1,
        pages_to_scan=100,
        sleep_millisecs=200,
        pages_shared=10,
        pages_sharing=55,
        pages_unshared=300,
        pages_volatile=4,
        full_scans=7,
    )


def test_broken_files_are_reported_and_skipped() -> None:
    reading = read_ksm_sysfs(sysfs("broken"))
    unusable = {
        "run",
        "pages_to_scan",
        "pages_shared",
        "pages_sharing",
        "pages_unshared",
        "pages_volatile",
        "full_scans",
        "advisor_mode",
        "max_page_sharing",
    }
    assert reading.snapshot == KsmSysfs(
        available=True,
        unreadable=frozenset(unusable),
        sleep_millisecs=20,
        general_profit=-8192,
        ksm_zero_pages=12,
    )
    ksm = os.path.join(sysfs("broken"), "kernel", "mm", "ksm")
    by_file = {os.path.relpath(p.path, ksm): (p.value, p.reason) for p in reading.problems}
    assert by_file == {
        "run": ("", "not an unsigned integer"),
        "pages_to_scan": ("lots", "not an unsigned integer"),
        "pages_shared": ("18446744073709551616", "beyond 64 bits"),
        "pages_sharing": ("18446744073709551615", "a negative count printed as unsigned"),
        "pages_unshared": ("-5", "not an unsigned integer"),
        "pages_volatile": ("", "EISDIR: Is a directory"),
        "full_scans": ("4\\xff\\xfe2", "not ASCII text"),
        "advisor_mode": ("none scan-time", "no bracketed active mode"),
        "max_page_sharing": ("256 512", "not an unsigned integer"),
    }


def test_no_ksm_directory(tmp_path: Path) -> None:
    reading = read_ksm_sysfs(str(tmp_path))
    assert reading.snapshot == KsmSysfs(available=False)
    assert reading.problems == ()


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    ksm = tmp_path / "kernel" / "mm" / "ksm"
    ksm.mkdir(parents=True)
    (ksm / "run").write_text("1\n")
    (ksm / "pages_shared").symlink_to(ksm / "loop")
    (ksm / "loop").symlink_to(ksm / "pages_shared")
    reading = read_ksm_sysfs(str(tmp_path))
    assert reading.snapshot == KsmSysfs(
        available=True, unreadable=frozenset({"pages_shared"}), run=1
    )
    assert [p.reason for p in reading.problems] == ["ELOOP: Too many levels of symbolic links"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"[none] scan-time\n", AdvisorMode("none", ("none", "scan-time"))),
        (b"none [scan-time]\n", AdvisorMode("scan-time", ("none", "scan-time"))),
        (b"[only]", AdvisorMode("only", ("only",))),
    ],
)
def test_advisor_mode_takes_the_bracketed_entry(text: bytes, expected: AdvisorMode) -> None:
    assert parse_advisor_mode(text) == expected


@pytest.mark.parametrize("text", [b"", b"none scan-time", b"[a] [b]", b"[none scan-time]", b"[]"])
def test_advisor_mode_rejects_malformed(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_advisor_mode(text)


def test_unreadable_directory_is_unavailable_and_a_problem(tmp_path: Path) -> None:
    ksm = tmp_path / "kernel" / "mm" / "ksm"
    ksm.mkdir(parents=True)
    (ksm / "run").write_text("1\n")
    ksm.chmod(0)
    try:
        if os.access(ksm, os.R_OK | os.X_OK):
            pytest.skip("this user reads any directory (root without dropped capabilities)")
        reading = read_ksm_sysfs(str(tmp_path))
    finally:
        ksm.chmod(0o755)
    assert reading.snapshot == KsmSysfs(available=False)
    assert [(p.path, p.reason) for p in reading.problems] == [(str(ksm), "not readable")]
