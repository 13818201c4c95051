"""Whatever bytes the kernel files hold, the sources never raise, the scrape answers 200, and
every file that cannot be used is counted."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.exposition import families_of, parse_samples, value
from harness.paths import FIXTURES
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server.app import make_app
from ksm_exporter.sources.kernel_file import BadValue
from ksm_exporter.sources.ksm_files import DECLARED, KSM_FILES
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import parser_of

pytestmark = pytest.mark.unit

PIDS = ("1", "2", "300", "4000")
PROCESS_FILES = ("ksm_stat", "ksm_merging_pages", "stat", "cgroup", "cmdline", "comm")
KSM_STAT_KEYS = (
    "ksm_rmap_items",
    "ksm_zero_pages",
    "ksm_merging_pages",
    "ksm_process_profit",
    "ksm_merge_any:",
    "ksm_mergeable:",
    "ksm_unknown",
)

numbers = st.integers(-(2**66), 2**66).map(str)
words = st.sampled_from(["yes", "no", "", " ", "-", "+1", "1e3", "0x10", "[none]", "scan-time"])
near_valid = st.one_of(numbers, words, st.text(max_size=12))
# Arbitrary bytes, and text close enough to the real formats to reach the parsers' depths.
content = st.one_of(
    st.binary(max_size=300),
    near_valid.map(lambda text: (text + "\n").encode()),
    st.lists(near_valid, max_size=4).map(lambda parts: " ".join(parts).encode()),
)
ksm_stat_content = st.one_of(
    content,
    st.lists(st.tuples(st.sampled_from(KSM_STAT_KEYS), near_valid), max_size=8).map(
        lambda lines: "".join(f"{key} {text}\n" for key, text in lines).encode()
    ),
)
stat_content = st.one_of(
    content,
    st.tuples(
        st.sampled_from(["ksmd", "qemu-kvm", "a) (b", ""]), st.lists(numbers, max_size=60)
    ).map(lambda parts: f"2 ({parts[0]}) S {' '.join(parts[1])}\n".encode()),
)
meminfo_content = st.one_of(
    content,
    st.tuples(near_valid, st.sampled_from(["kB", "MB", "", "kB kB"])).map(
        lambda parts: f"MemFree: 1 kB\nMemTotal: {parts[0]} {parts[1]}\n".encode()
    ),
)


@st.composite
def kernel_trees(draw: st.DrawFn) -> dict[str, bytes]:
    """Relative path -> content for a sysfs and procfs tree; absent files are left out."""
    tree: dict[str, bytes] = {}
    for name in DECLARED.names:
        if draw(st.booleans()):
            tree[f"sys/kernel/mm/ksm/{name}"] = draw(content)
    tree["proc/meminfo"] = draw(meminfo_content)
    for pid in PIDS:
        for name in PROCESS_FILES:
            if draw(st.integers(0, 3)) == 0:
                continue  # this file is missing for this pid
            strategy = {"ksm_stat": ksm_stat_content, "stat": stat_content}.get(name, content)
            tree[f"proc/{pid}/{name}"] = draw(strategy)
    return tree


def write_tree(root: Path, tree: dict[str, bytes]) -> Roots:
    (root / "sys" / "kernel" / "mm" / "ksm").mkdir(parents=True)
    for relative, data in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return Roots(str(root / "sys"), str(root / "proc"))


def usable(tree: dict[str, bytes], name: str) -> int | None:
    """The value of a KSM file as its documented format reads it; None if absent or bad."""
    raw = tree.get(f"sys/kernel/mm/ksm/{name}")
    if raw is None:
        return None
    try:
        parsed = parser_of(name, DECLARED)(raw)
    except BadValue:
        return None
    assert isinstance(parsed, int)
    return parsed


def sysfs_rejections(tree: dict[str, bytes]) -> int:
    """How many KSM files hold content their documented format does not allow."""
    rejected = 0
    for name in DECLARED.names:
        raw = tree.get(f"sys/kernel/mm/ksm/{name}")
        if raw is None:
            continue
        try:
            parser_of(name, DECLARED)(raw)
        except BadValue:
            rejected += 1
    return rejected


async def scrape_twice(roots: Roots) -> list[tuple[int, str]]:
    """Two scrapes through the real app: the second reads through held descriptors."""
    collection = KsmCollection(HostReader(roots, 4096))
    async with TestClient(TestServer(make_app(collection))) as client:
        answers = []
        for _ in range(2):
            response = await client.get("/metrics")
            answers.append((response.status, await response.text()))
        return answers


def captured(name: str) -> dict[str, bytes]:
    """A fixture tree as the strategy's trees are: relative path -> content."""
    root = FIXTURES / name
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# Whatever the number of examples, three trees always run: a real one, one where every file
# the trees may hold is unusable, and one with no file at all.
GARBAGE = b"\xff not a number\n"
UNUSABLE = {
    **{f"sys/kernel/mm/ksm/{name}": GARBAGE for name in DECLARED.names},
    "proc/meminfo": GARBAGE,
    **{f"proc/{pid}/{name}": GARBAGE for pid in PIDS for name in PROCESS_FILES},
}


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@example(captured("current"))
@example(UNUSABLE)
@example({})
@given(kernel_trees())
def test_any_bytes_in_kernel_files(tree: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        roots = write_tree(Path(tmp), tree)

        # The sources and the collection never raise.
        collection = KsmCollection(HostReader(roots, 4096))
        families_of(collection)

        # The scrape answers 200 with the metrics it could read, and counts the rest.
        rejected = sysfs_rejections(tree)
        for scrape, (status, text) in enumerate(asyncio.run(scrape_twice(roots)), start=1):
            assert status == 200
            samples = parse_samples(text)
            assert value(samples, "ksm_available") == 1
            errors = value(samples, "ksm_exporter_collect_errors_total", source="sysfs")
            assert errors == rejected * scrape
            for spec in KSM_FILES:
                expected = usable(tree, spec.name)
                if expected is None:
                    assert (spec.metric, ()) not in samples, spec.metric
                else:
                    assert value(samples, spec.metric) == expected / spec.divisor, spec.metric
