"""The lab's captures: one kernel's KSM files and ksm_stat at one instant, with the
exporter's scrape taken in that instant, committed as trees under tests/fixtures/kernels/
that the exporter can be pointed at (`--path.sysfs=<tree>/sys --path.procfs=<tree>/proc`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNEL_CAPTURES = REPO / "tests" / "fixtures" / "kernels"
KSM = "sys/kernel/mm/ksm"
METADATA = "lab.json"
EXPOSITION = "metrics.txt"
# Recorded captures number the processes the lab started from here, in the order of their
# roles, so that recording the same kernel again changes no path and no pid label.
FIRST_RECORDED_PID = 1000
PID_LABEL = re.compile(r'(\bpid=")(\d+)(")')


@dataclass(frozen=True)
class Capture:
    """One kernel's files at one instant, with who is who among its processes."""

    release: str
    page_size: int
    files: dict[str, str]
    roles: dict[str, int | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    exposition: str = ""  # the exporter's scrape taken in that instant

    @classmethod
    def from_json(cls, text: str) -> Capture:
        document = json.loads(text)
        return cls(
            release=document["release"],
            page_size=document["page_size"],
            files=document["files"],
            roles=document["roles"],
            notes=document["notes"],
            exposition=document["exposition"],
        )

    def ksm_file(self, name: str) -> str | None:
        return self.files.get(f"{KSM}/{name}")

    def pids(self) -> list[int]:
        return sorted({int(path.split("/")[1]) for path in self.files if path.count("/") == 2
                       and path.startswith("proc/")})  # fmt: skip

    def ksm_stat_lines(self, pid: int) -> dict[str, str]:
        """{key without its colon: value}; empty for a kernel thread."""
        content = self.files.get(f"proc/{pid}/ksm_stat") or ""
        pairs = [line.split(None, 1) for line in content.splitlines()]
        return {pair[0].rstrip(":"): pair[1].strip() for pair in pairs if len(pair) == 2}

    def counters(self, pid: int) -> dict[str, int]:
        """The numeric ksm_stat lines by the kernel's names, with `ksm_merging_pages` from its
        own file where the kernel (5.19 to 6.11) keeps it there."""
        found = {key: int(text) for key, text in self.ksm_stat_lines(pid).items()
                 if text.lstrip("-").isdigit()}  # fmt: skip
        merging_file = (self.files.get(f"proc/{pid}/ksm_merging_pages") or "").strip()
        if "ksm_merging_pages" not in found and merging_file:
            found["ksm_merging_pages"] = int(merging_file)
        return found

    def registered(self, pid: int) -> bool:
        """Registered with KSM: `ksm_mergeable: yes` where the kernel writes it, rmap items
        (KSM has scanned its pages) or merged pages."""
        counters = self.counters(pid)
        return (
            self.ksm_stat_lines(pid).get("ksm_mergeable") == "yes"
            or counters.get("ksm_rmap_items", 0) > 0
            or counters.get("ksm_merging_pages", 0) > 0
        )

    def normalised(self) -> Capture:
        """The same capture with the processes the lab started renumbered from
        FIRST_RECORDED_PID in the order of their roles; kernel threads keep their pids."""
        threads = {self.roles.get("kernel_thread"), self.roles.get("ksmd")}
        started = [pid for pid in self.roles.values() if pid is not None and pid not in threads]
        others = [pid for pid in self.pids() if pid not in threads and pid not in started]
        return self.with_pids(
            {old: FIRST_RECORDED_PID + n for n, old in enumerate([*started, *others])}
        )

    def with_pids(self, renumber: dict[int, int]) -> Capture:
        """The capture with pids renumbered in paths, `stat`'s first field, roles and pid
        labels; a pid not in `renumber` keeps its number."""

        def new(pid: int) -> int:
            return renumber.get(pid, pid)

        files = {}
        for path, content in self.files.items():
            parts, text = path.split("/"), content
            if parts[0] == "proc" and parts[1].isdigit():
                pid = int(parts[1])
                parts[1] = str(new(pid))
                if parts[2] == "stat" and text.startswith(f"{pid} "):
                    text = f"{new(pid)} {text.removeprefix(f'{pid} ')}"
            files["/".join(parts)] = text
        exposition = PID_LABEL.sub(
            lambda match: f"{match[1]}{new(int(match[2]))}{match[3]}", self.exposition
        )
        roles = {role: None if pid is None else new(pid) for role, pid in self.roles.items()}
        return replace(self, files=files, roles=roles, exposition=exposition)

    def write_tree(self, directory: Path) -> None:
        """The capture as a root with sys/ and proc/, which the exporter can be pointed at."""
        write_files(self.files, directory)
        metadata = {
            "release": self.release,
            "page_size": self.page_size,
            "roles": self.roles,
            "notes": self.notes,
        }
        (directory / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        (directory / EXPOSITION).write_text(self.exposition)

    @classmethod
    def read_tree(cls, directory: Path) -> Capture:
        metadata = json.loads((directory / METADATA).read_text())
        files = {}
        for top in ("sys", "proc"):
            for parent, _dirs, names in os.walk(directory / top):
                for name in names:
                    path = Path(parent, name)
                    relative = str(path.relative_to(directory))
                    files[relative] = path.read_text(errors="surrogateescape")
        return cls(files=files, exposition=(directory / EXPOSITION).read_text(), **metadata)


def write_files(files: dict[str, str], directory: Path) -> None:
    """Each file's content at its path below `directory`, as the kernel wrote it (bytes that
    are not UTF-8 included)."""
    for path, content in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, errors="surrogateescape")
