"""The lab's captures: one kernel's KSM files and ksm_stat at one instant, with the
exporter's scrape taken in that instant, committed as trees under tests/fixtures/kernels/
that the exporter can be pointed at (`--path.sysfs=<tree>/sys --path.procfs=<tree>/proc`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS, KsmStat

REPO = Path(__file__).resolve().parent.parent
KERNEL_CAPTURES = REPO / "tests" / "fixtures" / "kernels"
KSM = "sys/kernel/mm/ksm"
METADATA = "lab.json"
EXPOSITION = "metrics.txt"


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

    def process_stat(self, pid: int) -> KsmStat:
        """The counters as the kernel wrote them, keyed by the exporter's field names."""
        values: dict[str, int | bool] = {}
        lines = self.ksm_stat_lines(pid)
        merging_file = (self.files.get(f"proc/{pid}/ksm_merging_pages") or "").strip()
        if "ksm_merging_pages" not in lines and merging_file:
            lines["ksm_merging_pages"] = merging_file
        for key, text in lines.items():
            known = next((spec for spec in PROCESS_FIELDS if spec.key == key), None)
            if known is not None:
                values[known.name] = text == "yes" if text in ("yes", "no") else int(text)
        return KsmStat(values)

    def write_tree(self, directory: Path) -> None:
        """The capture as a root with sys/ and proc/, which the exporter can be pointed at."""
        for path, content in self.files.items():
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, errors="surrogateescape")
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
