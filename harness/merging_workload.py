"""A child program that holds identical pages registered with KSM; standard library only,
so it also runs inside lab guests."""

# Fills private anonymous memory with identical pages and registers it with KSM, then
# holds it until stdin closes; the line "unmerge" takes it out of KSM the way it came in.
# The line "churn" makes it keep changing that memory until it is killed: it writes to a
# fiftieth of the pages every 10 ms, each write breaking a merged page out of KSM (copy on
# write) with the same bytes, which ksmd merges again on its next pass.
CHILD = r"""
import ctypes, mmap, sys, time
size, method = int(sys.argv[1]), sys.argv[2]
if method == "prctl":
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(67, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_MEMORY_MERGE) failed: errno %d" % ctypes.get_errno())
area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
page = mmap.PAGESIZE
pattern = (b"ksm-exporter-test" * (page // 17 + 1))[:page]
for offset in range(0, size, page):
    area[offset:offset + page] = pattern
if method == "madvise":
    area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
for command in sys.stdin:
    if command.strip() == "unmerge":
        if method == "prctl":
            if libc.prctl(67, 0, 0, 0, 0) != 0:
                raise SystemExit("prctl(PR_SET_MEMORY_MERGE, 0): errno %d" % ctypes.get_errno())
        else:
            area.madvise(mmap.MADV_UNMERGEABLE)
        print("unmerged", flush=True)
    elif command.strip() == "churn":
        print("churning", flush=True)
        pages, next_page = size // page, 0
        step = max(1, pages // 50)
        while True:
            for index in range(next_page, next_page + step):
                offset = index % pages * page
                area[offset] = area[offset]
            next_page = (next_page + step) % pages
            time.sleep(0.01)
"""
