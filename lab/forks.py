"""What a forked child of a merged process shows, on each lab kernel: the fork captures taken
by lab/fork_capture.py, checked against what the kernel's own files must then hold, and
committed under tests/fixtures/forks/<release>/ (one tree per phase that the exporter can be
pointed at, and lab.json).

The expected values come from mm/ksm.c's accounting, never from the exporter:
stable_tree_append() counts every mapping of a KSM page in its mm's ksm_merging_pages, so
with nothing inherited the sum over processes is pages_shared + pages_sharing; a child that
inherited its parent's counters (dup_mm() copies the mm, and ksm_fork() before "mm/ksm: fix
incorrect KSM counter handling in mm_struct during fork" did not reset them) adds exactly
what it inherited to that sum. The same fix adds the child's zero pages to the global
ksm_zero_pages at fork; without it the child's exit takes them off a count they were never
added to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab.captures import FIRST_RECORDED_PID, REPO, Capture, write_files
from lab.measure import Measurement, measure_on
from lab.recording import replace_series, series_tree
from lab.versions import version

FORK_CAPTURES = REPO / "tests" / "fixtures" / "forks"
PHASES = ("merged", "forked", "scanned", "exited")
METADATA = "lab.json"
# Global counters that only ksmd changes: fork() must leave them as they were.
KSMD_COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "full_scans")


@dataclass(frozen=True)
class ForkCapture:
    release: str
    page_size: int
    roles: dict[str, int | None]
    workload: dict[str, int]
    phases: dict[str, Capture]
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> ForkCapture:
        document = json.loads(text)
        release, page_size = document["release"], document["page_size"]
        phases = {
            name: Capture(release, page_size, files, document["roles"])
            for name, files in document["phases"].items()
        }
        return cls(release, page_size, document["roles"], document["workload"], phases,
                   document["notes"])  # fmt: skip

    @property
    def parent(self) -> int:
        pid = self.roles["parent"]
        assert pid is not None
        return pid

    @property
    def child(self) -> int:
        pid = self.roles["child"]
        assert pid is not None
        return pid

    def counters(self, phase: str, pid: int) -> dict[str, int]:
        return self.phases[phase].counters(pid)

    def ksm(self, phase: str, name: str) -> int | None:
        text = self.phases[phase].ksm_file(name)
        return None if text is None else int(text)

    def normalised(self) -> ForkCapture:
        """Parent and child renumbered from FIRST_RECORDED_PID, any other registered process
        after them, the same in every phase, so recording again changes no path."""
        started = [self.parent, self.child]
        others = sorted({pid for c in self.phases.values() for pid in c.pids()} - set(started))
        renumber = {old: FIRST_RECORDED_PID + n for n, old in enumerate([*started, *others])}
        phases = {name: c.with_pids(renumber) for name, c in self.phases.items()}
        roles = {role: None if pid is None else renumber[pid] for role, pid in self.roles.items()}
        return replace(self, phases=phases, roles=roles)

    def write_tree(self, directory: Path) -> None:
        for name, phase in self.phases.items():
            write_files(phase.files, directory / name)
        metadata = {
            "release": self.release,
            "page_size": self.page_size,
            "roles": self.roles,
            "workload": self.workload,
            "notes": self.notes,
            "phases": list(self.phases),
        }
        (directory / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")

    @classmethod
    def read_tree(cls, directory: Path) -> ForkCapture:
        metadata = json.loads((directory / METADATA).read_text())
        phases = {}
        for name in metadata["phases"]:
            files = {}
            for parent, _dirs, names in os.walk(directory / name):
                for file in names:
                    path = Path(parent, file)
                    files[str(path.relative_to(directory / name))] = path.read_text(
                        errors="surrogateescape"
                    )
            phases[name] = Capture(metadata["release"], metadata["page_size"], files,
                                   metadata["roles"])  # fmt: skip
        return cls(metadata["release"], metadata["page_size"], metadata["roles"],
                   metadata["workload"], phases, metadata["notes"])  # fmt: skip


FORK = Measurement(
    "lab.fork_capture",
    "fork capture",
    "fork.json",
    900.0,  # TCG: the boot, the merge and three full scans after the fork
    600.0,
    ForkCapture.from_json,
)


def merging_sum(fork: ForkCapture, phase: str) -> int:
    """ksm_merging_pages summed over every process the phase read."""
    capture = fork.phases[phase]
    return sum(capture.counters(pid).get("ksm_merging_pages", 0) for pid in capture.pids())


@dataclass(frozen=True)
class Findings:
    inherited: bool | None  # None: the child showed neither its parent's counters nor 0
    problems: list[str]
    summary: str


def findings(fork: ForkCapture) -> Findings:
    """What the child showed at fork, and every way the files differ from what the kernel's
    accounting makes them (the formulas in this module's docstring)."""
    problems = fork_problems(fork)
    inherited = inherits(fork)
    if inherited is None:
        problems.append(f"the child at fork shows {fork.counters('forked', fork.child)}, its "
                        f"parent {fork.counters('forked', fork.parent)}")  # fmt: skip
    problems += zero_page_problems(fork, inherited) + scan_problems(fork, inherited)
    at_fork = dict(sorted(fork.counters("forked", fork.child).items()))
    parent = dict(sorted(fork.counters("forked", fork.parent).items()))
    verdict = {True: "inherits its parent's", False: "starts from 0", None: "shows neither"}
    summary = (
        f"{fork.release}: a forked child {verdict[inherited]} counters (child at fork "
        f"{at_fork}, parent {parent}); after ksmd scanned it, merging pages sum to "
        f"{merging_sum(fork, 'scanned')}, pages_shared + pages_sharing "
        f"{shared_plus_sharing(fork, 'scanned')}"
    )
    return Findings(inherited, problems, summary)


def shared_plus_sharing(fork: ForkCapture, phase: str) -> int:
    return (fork.ksm(phase, "pages_shared") or 0) + (fork.ksm(phase, "pages_sharing") or 0)


def inherits(fork: ForkCapture) -> bool | None:
    """True: right after fork() the child shows its parent's ksm_merging_pages and
    ksm_rmap_items (above 0); False: it shows 0 for both; None: anything else."""
    child, parent = fork.counters("forked", fork.child), fork.counters("forked", fork.parent)
    keys = ("ksm_merging_pages", "ksm_rmap_items")
    if all(child.get(key, 0) == parent.get(key, 0) > 0 for key in keys):
        return True
    if all(child.get(key, 0) == 0 for key in keys):
        return False
    return None


def fork_problems(fork: ForkCapture) -> list[str]:
    """The parent merged everything, the sum over processes is pages_shared + pages_sharing
    before the fork, and fork() changed neither ksmd's counters nor the parent's."""
    problems = []
    merged = fork.counters("merged", fork.parent)
    pages = fork.workload["distinct"] * fork.workload["copies"]
    if merged.get("ksm_merging_pages", 0) < pages:
        problems.append(f"the parent merged {merged.get('ksm_merging_pages')} of {pages}")
    if merging_sum(fork, "merged") != shared_plus_sharing(fork, "merged"):
        problems.append(f"merged: merging pages sum to {merging_sum(fork, 'merged')}, "
                        f"pages_shared + pages_sharing is "
                        f"{shared_plus_sharing(fork, 'merged')}")  # fmt: skip
    for name in KSMD_COUNTERS:
        if fork.ksm("merged", name) != fork.ksm("forked", name):
            problems.append(f"fork changed {name}: {fork.ksm('merged', name)} to "
                            f"{fork.ksm('forked', name)}")  # fmt: skip
    if fork.counters("forked", fork.parent) != merged:
        problems.append(f"fork changed the parent's counters: {merged} to "
                        f"{fork.counters('forked', fork.parent)}")  # fmt: skip
    return problems


def zero_page_problems(fork: ForkCapture, inherited: bool | None) -> list[str]:
    """Where the kernel counts KSM zero pages: the child maps as many as its parent; the
    global count grows by them at fork where the child's counters start from 0 (the same
    fix), and the child's exit takes them off again."""
    zero_pages = fork.ksm("merged", "ksm_zero_pages")
    child = fork.counters("forked", fork.child).get("ksm_zero_pages")
    if zero_pages is None or child is None:
        return []
    problems = []
    parent = fork.counters("forked", fork.parent).get("ksm_zero_pages")
    if child != parent:
        problems.append(f"the child maps {child} KSM zero pages, its parent {parent}")
    at_fork = zero_pages + (0 if inherited else child)
    if fork.ksm("forked", "ksm_zero_pages") != at_fork:
        problems.append(f"ksm_zero_pages went from {zero_pages} to "
                        f"{fork.ksm('forked', 'ksm_zero_pages')} at fork")  # fmt: skip
    if fork.ksm("exited", "ksm_zero_pages") != at_fork - child:
        problems.append(f"ksm_zero_pages is {fork.ksm('exited', 'ksm_zero_pages')} after "
                        f"the child exited, from {at_fork}")  # fmt: skip
    return problems


def scan_problems(fork: ForkCapture, inherited: bool | None) -> list[str]:
    """Once ksmd scanned the child, it merged all the child's pages on top of what the child
    showed at fork, and the sum over processes exceeds pages_shared + pages_sharing by
    exactly what the child inherited."""
    problems = []
    at_fork = fork.counters("forked", fork.child).get("ksm_merging_pages", 0)
    own = fork.counters("scanned", fork.child).get("ksm_merging_pages", 0) - at_fork
    pages = fork.workload["distinct"] * fork.workload["copies"]
    if own < pages:
        problems.append(f"ksmd merged {own} of the child's {pages} pages")
    total, twice = shared_plus_sharing(fork, "scanned"), at_fork if inherited else 0
    if merging_sum(fork, "scanned") != total + twice:
        problems.append(f"scanned: merging pages sum to {merging_sum(fork, 'scanned')}, "
                        f"pages_shared + pages_sharing + inherited: {total} + {twice}")  # fmt: skip
    return problems


def committed(release: str, directory: Path = FORK_CAPTURES) -> ForkCapture | None:
    """The committed fork capture of the same kernel series (major.minor) as `release`."""
    path = series_tree(release, directory)
    return None if path is None else ForkCapture.read_tree(path)


def recorded(directory: Path = FORK_CAPTURES) -> list[ForkCapture]:
    """Every committed fork capture, oldest kernel first."""
    forks = [ForkCapture.read_tree(p) for p in directory.iterdir() if p.is_dir()]
    return sorted(forks, key=lambda fork: version(fork.release))


def drift(fork: ForkCapture, directory: Path = FORK_CAPTURES) -> str | None:
    """How this kernel's verdict differs from its series' committed capture, or None."""
    old = committed(fork.release, directory)
    if old is None:
        return None
    now, then = findings(fork).inherited, findings(old).inherited
    if now == then:
        return None
    return f"child inherits: {now}, {then} in the committed capture of {old.release}"


def record(fork: ForkCapture, directory: Path = FORK_CAPTURES) -> Path:
    """Replace the committed fork capture of the same kernel series with this one."""
    target = replace_series(fork.release, directory)
    fork.normalised().write_tree(target)
    return target


def measure_fork(kernel: str) -> ForkCapture:
    """`kernel` is a Debian suite or `host`; raises Unavailable when it cannot be had here."""
    return measure_on(FORK, kernel)
