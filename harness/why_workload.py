"""Child processes in one exact state for "why is nothing merging?": registered or not,
identical, unique or ever-changing content, in transparent huge pages or not."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

# argv: size, content (identical|unique|rewrite), register (madvise|none), huge (thp|small).
# `rewrite` keeps writing a new counter into every page, so each page's checksum changes
# between any two visits of ksmd (cmp_and_merge_page() never finds it stable).
CHILD = r"""
import ctypes, mmap, os, sys, time
size, content, register, huge = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
page, huge_size = mmap.PAGESIZE, 2 << 20
area = mmap.mmap(-1, size + huge_size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
address = ctypes.addressof(ctypes.c_char.from_buffer(area))
start = -address % huge_size  # a huge page must start on a 2 MiB boundary
if huge == "thp":
    area.madvise(mmap.MADV_HUGEPAGE, start, size)
else:
    area.madvise(mmap.MADV_NOHUGEPAGE, start, size)
pattern = (b"ksm-exporter-why" * (page // 16 + 1))[:page]
for offset in range(start, start + size, page):
    area[offset:offset + page] = os.urandom(page) if content == "unique" else pattern
if register == "madvise":
    area.madvise(mmap.MADV_MERGEABLE, start, size)
print("ready", flush=True)
if content == "rewrite":
    count = 0
    while True:
        count += 1
        stamp = count.to_bytes(8, "little")
        for offset in range(start, start + size, page):
            area[offset:offset + 8] = stamp
        time.sleep(0.001)
sys.stdin.read()
"""


@contextlib.contextmanager
def why_child(
    size: int, content: str, register: str = "madvise", huge: str = "small"
) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(size), content, register, huge],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", f"child failed to start: {line!r}"
        yield process
    finally:
        process.kill()
        process.wait()
