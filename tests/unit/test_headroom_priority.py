"""What memory the collector may use (headroom.py) and the priorities it takes (priority.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from snapcollect.collect.options import CollectOptions
from snapcollect.collect import bpf_start, headroom, priority
from snapcollect.collect.headroom import Headroom

MOUNTS = """\
sysfs /sys sysfs rw 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,cpu,cpuacct 0 0
"""


def _v1(root, rel, limit, usage, inactive_file=0):
    d = root / "sys/fs/cgroup/memory" / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (d / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (d / "memory.stat").write_text(f"cache 0\ntotal_inactive_file {inactive_file}\n")


def test_own_cgroups_and_mounts():
    text = "12:memory:/a/b\n11:cpu,cpuacct:/x\n0::/system.slice/cron.service\n"
    assert headroom.own_cgroups(text) == {"v1": "/a/b", "v2": "/system.slice/cron.service"}
    assert headroom.memory_mounts(MOUNTS) == {"v1": "/sys/fs/cgroup/memory", "v2": "/sys/fs/cgroup/unified"}


def test_v1_tightest_limit_up_the_tree_counts_inactive_file_as_free(tmp_path):
    _v1(tmp_path, "", headroom.V1_UNLIMITED + 4096, 10 << 30)          # the root: no limit
    _v1(tmp_path, "a", 1 << 30, 100 << 20)                              # 924 MiB free
    _v1(tmp_path, "a/b", 64 << 20, 40 << 20, inactive_file=8 << 20)     # 64 - (40 - 8) = 32 MiB
    free, where = headroom.cgroup_headroom("7:memory:/a/b\n", MOUNTS, root=str(tmp_path))
    assert (free, where) == (32 << 20, "cgroup v1 /a/b")
    # a parent tighter than the child wins
    _v1(tmp_path, "a", 16 << 20, 10 << 20)
    assert headroom.cgroup_headroom("7:memory:/a/b\n", MOUNTS, root=str(tmp_path)) == (6 << 20, "cgroup v1 /a")


def test_v2_max_and_no_limit(tmp_path):
    mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"
    d = tmp_path / "sys/fs/cgroup/svc"
    d.mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/memory.stat").write_text("anon 0\n")   # the root has no memory.max
    (d / "memory.max").write_text("max\n")
    assert headroom.cgroup_headroom("0::/svc\n", mounts, root=str(tmp_path)) == (None, "")
    (d / "memory.max").write_text(f"{64 << 20}\n")
    (d / "memory.current").write_text(f"{30 << 20}\n")
    (d / "memory.stat").write_text(f"anon 1\ninactive_file {2 << 20}\n")
    assert headroom.cgroup_headroom("0::/svc\n", mounts, root=str(tmp_path)) == (36 << 20, "cgroup v2 /svc")


def test_mem_available_and_the_decision():
    assert headroom.mem_available_kb("MemTotal: 100 kB\nMemAvailable:   5000 kB\n") == 5000
    assert headroom.mem_available_kb("MemTotal: 100 kB\n") is None
    assert bpf_start.may_start(CollectOptions(), Headroom(bpf_start.NEED_KB, "MemAvailable")).start
    short = bpf_start.may_start(CollectOptions(), Headroom(bpf_start.NEED_KB - 1, "MemAvailable"))
    assert not short.start and "under MemAvailable" in short.reason
    # nothing readable: no reason to refuse
    assert bpf_start.may_start(CollectOptions(), Headroom(None, "nothing")).start


def test_measure_on_this_host_is_plausible():
    room = headroom.measure()
    assert room.free_kb is not None and room.free_kb > 0 and room.source


def test_lower_own_in_a_child_process():
    # in a child: a process cannot take back a higher nice value without root
    code = ("import json, ctypes, sys; from snapcollect.collect import priority; "
            "out = priority.lower_own(); out['read_back'] = priority.read_back(); "
            "nr = {'x86_64': 252, 'aarch64': 31}.get(__import__('platform').machine()); "
            "out['ioprio_raw'] = ctypes.CDLL(None).syscall(nr, 1, 0) if nr else None; print(json.dumps(out))")
    got = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout)
    assert got["read_back"]["oom_score_adj"] == priority.OOM_SCORE_ADJ == got["oom_score_adj"]
    assert got["read_back"]["nice"] == got["nice"] >= priority.NICE
    assert got["ioprio"] == "best-effort 7"
    if got["ioprio_raw"] is not None:
        assert got["ioprio_raw"] == (priority.IOPRIO_CLASS_BE << priority.IOPRIO_CLASS_SHIFT) | 7
    assert "errors" not in got or os.geteuid() != 0


def test_lower_own_never_raises_a_lower_priority():
    # from wherever this test runs (its own nice may not be 0): 5 above priority.NICE, or 19
    code = ("import os, json; before = os.nice(max(0, 15 - os.nice(0))); "
            "from snapcollect.collect import priority; "
            "print(json.dumps({'before': before, **priority.lower_own()}))")
    got = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout)
    assert got["before"] >= 15 and got["nice"] == got["before"]


def test_detail_covers_fewer_processes_when_memory_is_short():
    from snapcollect.collect import degrade

    assert degrade.detail_top(10, Headroom(1 << 20, "MemAvailable")) == (10, None)
    assert degrade.detail_top(10, Headroom(None, "nothing")) == (10, None)
    n, why = degrade.detail_top(10, Headroom(38 * 1024, "cgroup v1 /x limit"))
    assert n == degrade.DETAIL_TOP_WHEN_SHORT and "instead of 10: 38 MiB left under cgroup v1 /x limit" in why
    assert degrade.detail_top(2, Headroom(38 * 1024, "cgroup v1 /x limit")) == (2, None)
