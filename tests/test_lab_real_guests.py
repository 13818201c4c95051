"""Real QEMU guests on this host: the exporter attributes what KSM merged of each VM
exactly as the QEMU process's own ksm_stat counts it, under the process limit and
always-include too, and the host dashboard's VM table shows both from a real Prometheus.
A guest started as libvirt and as Proxmox start QEMU, in their cgroups, is served with the
labels those platforms' exporters key on and the size its -m gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab.kernels import Unavailable
from lab.real_guests import (
    attribute,
    attribute_platform,
    guest_names,
    platform_guests,
    platform_problems,
    problems,
)

pytestmark = pytest.mark.lab


def test_each_guest_is_attributed_what_the_kernel_counts_for_it(tmp_path: Path) -> None:
    try:
        attribution = attribute(guest_names(), tmp_path)
    except Unavailable as why:
        if os.environ.get("CI"):
            pytest.fail(str(why))
        pytest.skip(str(why))
    assert problems(attribution) == []
    assert len(attribution.guests) == 2
    assert [g.always_included for g in attribution.guests].count(True) == 1
    assert attribution.limited_series == 1
    assert [g.own_under_limit for g in attribution.guests].count(True) <= 1


@pytest.mark.parametrize("index", [0, 1], ids=["libvirt", "proxmox"])
def test_a_guest_started_as_its_platform_starts_it_is_served_with_its_labels(
    tmp_path: Path, index: int
) -> None:
    platform = platform_guests(os.getpid())[index]
    try:
        figures = attribute_platform(platform, tmp_path)
    except Unavailable as why:
        if os.environ.get("CI"):
            pytest.fail(str(why))
        pytest.skip(str(why))
    assert platform_problems(figures) == []
    assert figures.kernel_pages > 0
    assert figures.guest_memory_bytes == 256 << 20  # the lab guests' -m, in either unit
