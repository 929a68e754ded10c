"""free, vmstat -s, pmap -x and numastat, run live, against the /proc text we parse.

"Same moment" is made true, not assumed: a command's output is kept only
when the /proc files it reads gave the same values right before and right
after it ran (retried until the host is quiet for that long). The one
thing a command changes by running is its own memory: vmstat's pages sit
on the inactive LRU while it runs, so "active/inactive memory" may
differ by up to 1 MiB. numastat allocates as it runs, so its counters lie
between the node file read before and the one read after.
A real collection is checked too: its ``free -w`` runs at the end of the
same snapshot as its /proc/meminfo read (the kernel files first, the
commands last), so those agree within 64 MiB (and MemTotal exactly).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from snapcollect.analysis.classic import free_w, vmstat_s
from snapcollect.analysis.processes import mapping_split
from snapcollect.bundle import open_bundle
from snapcollect.parsers.free_cmd import parse_free
from snapcollect.parsers.meminfo import parse_meminfo
from snapcollect.parsers.numastat import parse_node_numastat
from snapcollect.parsers.numastat_cmd import parse_numastat
from snapcollect.parsers.pmap_cmd import parse_pmap_x
from snapcollect.parsers.smaps import parse_smaps
from snapcollect.parsers.vmstat import parse_vmstat
from snapcollect.parsers.vmstat_s_cmd import parse_vmstat_s

pytestmark = pytest.mark.live

ENV = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
MEM_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "Shmem", "Active",
            "Inactive", "SwapTotal", "SwapFree")
VM_KEYS = ("pgpgin", "pgpgout", "pswpin", "pswpout")


def need(cmd: str) -> None:
    if shutil.which(cmd) is None:
        pytest.skip(f"{cmd} is not installed")


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def quiet_moment(argv: list[str]) -> tuple[str, dict, dict]:
    """Run argv between two reads of meminfo and vmstat that agree; return (output, meminfo, vmstat)."""
    for _ in range(300):
        m0, v0 = parse_meminfo(read("/proc/meminfo")), parse_vmstat(read("/proc/vmstat"))
        out = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=True).stdout
        m1, v1 = parse_meminfo(read("/proc/meminfo")), parse_vmstat(read("/proc/vmstat"))
        if all(m0.get(k) == m1.get(k) for k in MEM_KEYS) and all(v0.get(k) == v1.get(k) for k in VM_KEYS):
            return out, m0, v0
        time.sleep(0.02)
    pytest.fail(f"the host never stayed quiet for the length of {' '.join(argv)} in 300 tries")


def test_free_w_equals_meminfo():
    need("free")
    out, m, _ = quiet_moment(["free", "-w"])
    assert free_w(m) == parse_free(out)


def test_vmstat_s_equals_meminfo_and_vmstat():
    need("vmstat")
    out, m, v = quiet_moment(["vmstat", "-s"])
    theirs = {label: value for label, value, _ in parse_vmstat_s(out)}
    for label, value, _ in vmstat_s(m, v):
        if label in ("active memory", "inactive memory"):
            assert abs(theirs[label] - value) <= 1024, label
        else:
            assert theirs[label] == value, label


def test_pmap_x_equals_smaps_of_a_stopped_process():
    need("pmap")
    code = ("import mmap, time\nb = bytearray(16 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
            "s = mmap.mmap(-1, 4 << 20, flags=mmap.MAP_SHARED)\ns[0] = 1\nprint('ready', flush=True)\n"
            "time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        p.stdout.readline()
        os.kill(p.pid, signal.SIGSTOP)
        time.sleep(0.1)
        smaps = read(f"/proc/{p.pid}/smaps")
        out = subprocess.run(["pmap", "-x", str(p.pid)], capture_output=True, text=True, env=ENV, check=True).stdout
    finally:
        p.kill()
        p.wait()
    ours = parse_smaps(smaps)
    rows, total = parse_pmap_x(out)
    assert [(m.address, m.kbytes, m.rss_kb, m.dirty_kb, m.mode, m.mapping) for m in ours] == \
           [(r["address"], r["kbytes"], r["rss_kb"], r["dirty_kb"], r["mode"], r["mapping"]) for r in rows]
    split = mapping_split(ours)
    assert (split.kbytes, split.rss_kb, split.dirty_kb) == (total["kbytes"], total["rss_kb"], total["dirty_kb"])
    assert split.anon_rss_kb >= 16 << 10


def test_numastat_between_node_reads():
    need("numastat")
    nodes = sorted(glob.glob("/sys/devices/system/node/node[0-9]*"))
    if not nodes:
        pytest.skip("no /sys/devices/system/node (kernel without NUMA support)")
    before = {int(os.path.basename(d)[4:]): parse_node_numastat(read(f"{d}/numastat")) for d in nodes}
    out = subprocess.run(["numastat"], capture_output=True, text=True, env=ENV, check=True).stdout
    after = {int(os.path.basename(d)[4:]): parse_node_numastat(read(f"{d}/numastat")) for d in nodes}
    cmd = parse_numastat(out)
    assert set(cmd) == set(before)
    for n in before:
        for k, v in cmd[n].items():
            assert before[n][k] <= v <= after[n][k], (n, k)


def test_collected_bundle_free_agrees_with_its_meminfo():
    need("free")
    if os.geteuid() != 0:
        pytest.skip("a full collection needs root")
    tmp = tempfile.mkdtemp(prefix="sc-classic-")
    try:
        out = subprocess.run([sys.executable, "-m", "snapcollect", "collect", "-d", "2", "-o", tmp, "-q", "--no-bpf",
                              "--top", "1"], capture_output=True, text=True, check=True).stdout
        b = open_bundle(out.strip().splitlines()[-1])
        for phase in ("start", "end"):
            ours = free_w(parse_meminfo(b.text(f"proc/meminfo@{phase}")))
            theirs = parse_free(b.text(f"cmd/free@{phase}"))
            assert ours["Mem"]["total"] == theirs["Mem"]["total"]
            for line in ("Mem", "Swap"):
                for k, v in theirs[line].items():
                    assert abs(ours[line][k] - v) <= 65536, (phase, line, k)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
