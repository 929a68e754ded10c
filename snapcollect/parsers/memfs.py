r"""``fs/memfs@P``: tmpfs, ramfs and hugetlbfs mounts with their statvfs figures.

The collector writes one line per mount: ``f_frsize f_blocks f_bfree
f_files f_ffree`` (or ``! <errno name>`` when statvfs failed), a TAB,
and the /proc/self/mountinfo line verbatim (proc(5): mount ID, parent
ID, major:minor, root, mount point, options, optional fields, ``-``,
file system type, source, super options). Sample (kernel 6.1)::

    4096 262144 5 1048576 1048570	612 30 0:61 / /tmp/scratch rw,relatime - tmpfs tmpfs rw,size=1048576k
    ! EACCES	613 30 0:62 / /mnt/huge rw,relatime - hugetlbfs none rw,pagesize=2M

Mount points are seq_file-escaped (``\040`` for a space). ramfs keeps no
block count: its statvfs says 0 blocks, so its usage is unknown here.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, unescape_octal
from snapcollect.parsers.records import MemfsMount


def parse_memfs(text: str) -> list[MemfsMount]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        figures, sep, info = line.partition("\t")
        pre, dash, post = info.partition(" - ")
        fields, fs = pre.split(), post.split()
        if not sep or not dash or len(fields) < 5 or len(fs) < 2:
            raise ParseError(f"memfs: unexpected line {line.strip()[:80]!r}")
        if not fields[0].isdigit():
            raise ParseError(f"memfs: mount ID not a number in {line.strip()[:80]!r}")
        size = blocks = free = None
        error = None
        if figures.startswith("!"):
            error = figures[1:].strip()[:40] or "error"
        else:
            nums = figures.split()
            if len(nums) != 5 or not all(n.isdigit() and len(n) <= 20 for n in nums):
                raise ParseError(f"memfs: statvfs figures {figures[:60]!r} are not five numbers")
            size, blocks, free = int(nums[0]), int(nums[1]), int(nums[2])
        out.append(MemfsMount(int(fields[0]), fields[2], unescape_octal(fields[4]), fs[0],
                              unescape_octal(fs[1]), size, blocks, free, error))
    return out
