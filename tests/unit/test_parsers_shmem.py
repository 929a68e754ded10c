"""Where Shmem lives: memory file systems, SysV segments, process memory fields, open deleted files.

Fixtures captured on kernel 6.18 with a 64 MiB tmpfs at /tmp/dm/scratch
holding an 8 MiB file and a 2 MiB deleted file still open, and a 4 MiB
SysV segment touched and then detached (tests/fixtures/README.md).
"""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.memfs import parse_memfs
from snapcollect.parsers.open_deleted import parse_open_deleted
from snapcollect.parsers.proc_memory import parse_proc_memory
from snapcollect.parsers.sysvipc_shm import parse_sysvipc_shm


def test_memfs_mounts_and_usage():
    mounts = parse_memfs(text("memfs"))
    by = {m.mount_point: m for m in mounts}
    scratch = by["/tmp/dm/scratch"]
    assert scratch.fstype == "tmpfs" and scratch.dev == "0:41" and scratch.source == "sc-fixture"
    assert scratch.size_kb == 65536 and scratch.used_kb == (16384 - 13824) * 4
    # /dev/shm is mounted twice here, two superblocks (0:23, 0:27)
    assert sorted(m.dev for m in mounts if m.mount_point == "/dev/shm") == ["0:23", "0:27"]


def test_memfs_statvfs_error_and_escaped_mount_point():
    (m,) = parse_memfs("! EACCES\t61 30 0:62 / /mnt/my\\040huge rw - hugetlbfs none rw,pagesize=2M\n")
    assert m.mount_point == "/mnt/my huge" and m.error == "EACCES" and m.used_kb is None


@pytest.mark.parametrize("bad", ["4096 1 2\t1 2 0:3 / /x rw - tmpfs t rw\n", "no tab here\n",
                                 "1 2 3 4 5\tx 2 0:3 / /x rw - tmpfs t rw\n", "1 2 3 4 5\t1 2 0:3 / /x rw\n"])
def test_memfs_garbage_is_a_parse_error(bad):
    with pytest.raises(ParseError):
        parse_memfs(bad)


def test_sysvipc_segment():
    (seg,) = parse_sysvipc_shm(text("sysvipc-shm"))
    assert seg.shmid == 20 and seg.size_bytes == 4 << 20 and seg.nattch == 0
    assert seg.cpid == seg.lpid == 15583 and seg.rss_bytes == 4 << 20 and seg.swap_bytes == 0
    assert not seg.locked


def test_sysvipc_old_kernel_without_rss_and_locked_flag():
    t = ("       key      shmid perms       size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime\n"
         "         0          3  3600    1048576   10    11      2     0     0     0     0 0 0 0\n")
    (seg,) = parse_sysvipc_shm(t)
    assert seg.rss_bytes is None and seg.locked and seg.nattch == 2


@pytest.mark.parametrize("bad", ["", "key shmid\n", text("sysvipc-shm") + "1 2 3\n",
                                 text("sysvipc-shm").replace("4194304 15583", "4194304 x5583", 1)])
def test_sysvipc_garbage_is_a_parse_error(bad):
    with pytest.raises(ParseError):
        parse_sysvipc_shm(bad)


def test_proc_memory_rows_and_cgroup_limits():
    procs, groups = parse_proc_memory(text("procs-memory"))
    init = next(p for p in procs if p.pid == 1)
    assert init.comm == "process_api" and init.shmem_kb == 6088 and init.locked_kb == 38020
    assert init.cgroup == "/"
    g = groups["/process_api/aa09ddae301cb7f2dc731054e86a43f4"]
    assert g.usage_bytes == 1438588928 and g.limit_bytes is None     # PAGE_COUNTER_MAX: no limit


def test_proc_memory_empty_fields_and_v2_max():
    head = "pid\tName\tVmRSS\tRssAnon\tRssFile\tRssShmem\tVmSwap\tVmLck\tVmPin\tcgroup\n"
    procs, groups = parse_proc_memory(head + "7\ta b\t100\t\t\t\t\t0\t\t/x\ncgroup\t/x\t5\t-1\n")
    assert procs[0].comm == "a b" and procs[0].shmem_kb is None and procs[0].rss_kb == 100
    assert groups["/x"].limit_bytes is None and groups["/x"].usage_bytes == 5


@pytest.mark.parametrize("bad", ["", "pid\tcomm\n", "pid\tName\tcgroup\nx\ty\tz\n",
                                 "pid\tName\tVmRSS\tcgroup\n1\tn\t-5\t/\n", "pid\tName\tcgroup\ncgroup\t/\n"])
def test_proc_memory_garbage_is_a_parse_error(bad):
    with pytest.raises(ParseError):
        parse_proc_memory(bad)


def test_open_deleted_on_the_tmpfs():
    files, summary = parse_open_deleted(text("open-deleted"))
    assert summary.startswith("scanned 24 processes")
    (gone,) = [f for f in files if f.dev == "0:41"]
    assert gone.pid == 15583 and gone.size_bytes == 2 << 20 and gone.blocks * 512 == 2 << 20
    assert gone.target == "/tmp/dm/scratch/gone (deleted)"


@pytest.mark.parametrize("bad", ["1\t2\t0:1\t3\t4\tx\n", "pid\tfd\tdev\tsize\tblocks\ttarget\n1\t2\t3\n"])
def test_open_deleted_garbage_is_a_parse_error(bad):
    with pytest.raises(ParseError):
        parse_open_deleted(bad)
