"""SHMEM_GROWTH: Shmem that grew, and where it lives."""

from __future__ import annotations

from findings_helpers import MEMTOTAL, build, run
from snapcollect.parsers.records import MemfsMount, OpenDeleted, ShmSegment, StatusMemory

GIB = 1024 * 1024


def mount(dev: str, mp: str, used_kb: int, fstype: str = "tmpfs") -> MemfsMount:
    blocks = 4 * GIB // 4
    return MemfsMount(40, dev, mp, fstype, "scratch", 4096, blocks, blocks - used_kb // 4)


def _ds(shmem_rise_kb: int, start_mounts, end_mounts, **end):
    mi = {"Shmem": lambda k: 8872 + (shmem_rise_kb * k // 30)}
    return build(meminfo=mi, start={"memfs": start_mounts}, end={"memfs": end_mounts, "shm": [],
                                                                  "proc_memory": [], **end})


def test_tmpfs_file_held_by_no_process_is_named_with_its_mount_and_size():
    ds = _ds(GIB, [mount("0:61", "/tmp/scratch", 0), mount("0:23", "/dev/shm", 0)],
             [mount("0:61", "/tmp/scratch", GIB), mount("0:23", "/dev/shm", 0)], open_deleted=[])
    f, _ = run("SHMEM_GROWTH", ds)
    assert f.severity == "INFO"          # 4% of a 24 GiB host with memory to spare: nobody feels it yet
    assert f.title == "Shmem grew 1.0 GiB: 1.0 GiB in /tmp/scratch on tmpfs, held by no process"
    assert f.evidence.values["places"][0]["growth_kb"] == GIB
    assert "fs/memfs@end" in f.evidence.artifacts and f.evidence.section == "shmem"


def test_holders_deleted_files_and_sysv_are_in_the_inventory():
    end = {"open_deleted": [OpenDeleted(99, 5, "0:61", 512 << 20, (512 << 20) // 512, "/tmp/scratch/x (deleted)"),
                            OpenDeleted(99, 6, "0:61", 512 << 20, (512 << 20) // 512, "/tmp/scratch/x (deleted)")],
           "proc_memory": [StatusMemory(99, "holder", 1000, 0, 0, 10, 0, 0, 0, "/")],
           "shm": [ShmSegment(0, 7, 256 << 20, 123, 124, 0, 0, 256 << 20, 0, False)]}
    ds = build(meminfo={"Shmem": lambda k: 8872 + GIB * k // 30},
               start={"memfs": [mount("0:61", "/tmp/scratch", 0)]},
               end={"memfs": [mount("0:61", "/tmp/scratch", 768 * 1024)], **end})
    f, _ = run("SHMEM_GROWTH", ds)
    assert "held open or mapped by holder (pid 99) (512.0 MiB in deleted files still open)" in f.title
    assert "SysV segment 7 (key 0x0) 256.0 MiB, attached by no process (created by pid 123)" in f.explanation


def test_warn_when_memory_is_short_and_quiet_otherwise():
    low = {"MemAvailable": MEMTOTAL // 20, "Shmem": lambda k: 8872 + 2 * GIB * k // 30}
    ds = build(meminfo=low, start={"memfs": []}, end={"memfs": []})
    f, _ = run("SHMEM_GROWTH", ds)
    assert f.severity == "WARN" and "no tmpfs mount, SysV segment or process holds it" in f.title
    assert run("SHMEM_GROWTH", build())[0] is None                       # 8.7 MiB, flat
    # an old bundle without the inventory: still said, and says what is missing
    f, _ = run("SHMEM_GROWTH", build(meminfo={"Shmem": lambda k: 8872 + GIB * k // 30}))
    assert "no shared-memory inventory" in f.title and f.evidence.section == "sar-r"
