"""Live incident scenarios, collected with the real CLI and rendered end to end.

Each test makes a real incident on this host (as root), runs
``snapcollect collect -d S -o DIR`` around it, renders the bundle with
``snapcollect report B -o r.json`` and ``-o r.md``, and checks the
findings: a memory-cgroup OOM kill, swap thrashing inside a memory cgroup,
a burst of negative dentries, and an idle host that must stay quiet.

Cgroup v1's memory controller (/sys/fs/cgroup/memory) is used, as on the
machines this project runs on; hosts without it skip the cgroup scenarios
and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.live

CG_ROOT = "/sys/fs/cgroup/memory"
SEVERE = ("CRIT", "HIGH", "WARN")

# A process that renames itself (comm, so the kernel log and BPF show the
# name), enters a memory cgroup, then runs its body.
PRELUDE = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, {name!r}.encode(), 0, 0, 0)   # PR_SET_NAME
if {cgroup!r}:
    with open({cgroup!r} + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
"""

ALLOCATE_200M = """
buf = bytearray(b"x" * (200 << 20))     # every page written
"""

CYCLE_200M = """
import time
buf = bytearray(b"x" * (200 << 20))
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for i in range(0, len(buf), 4096):   # touch every page, again and again
        buf[i] = (buf[i] + 1) & 0xFF
"""

NEGATIVE_DENTRIES = """
import time
d, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    for _ in range(10000):               # lookups of names that do not exist
        os.access(f"{d}/no-such-file-{i}", os.F_OK)
        i += 1
print(i)
"""


def script(body: str, name: str, cgroup: str = "") -> str:
    """Python source: rename to ``name``, join ``cgroup`` (a path, or "" for none), run ``body``."""
    return PRELUDE.format(name=name, cgroup=cgroup) + body


def _snapcollect() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "snapcollect")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "snapcollect"]


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the scenarios create memory cgroups, swap and kernel-level load")


def _need_cgroup_v1():
    if not os.path.isfile(os.path.join(CG_ROOT, "memory.limit_in_bytes")):
        pytest.skip(f"no cgroup v1 memory controller at {CG_ROOT}")


def start_collection(duration: float, out: str) -> subprocess.Popen:
    return subprocess.Popen(_snapcollect() + ["collect", "-d", str(duration), "-o", out, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_collection(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"collect exited {proc.returncode}: {err[-2000:]}"
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines, f"collect printed no bundle path; stderr: {err[-2000:]}"
    path = lines[-1].strip()
    assert os.path.isfile(path), path
    return path


def render(bundle: str, out_dir: str) -> tuple[dict, str]:
    js, md = os.path.join(out_dir, "r.json"), os.path.join(out_dir, "r.md")
    for target in (js, md):
        r = subprocess.run(_snapcollect() + ["report", bundle, "-o", target], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"report -o {target} exited {r.returncode}: {r.stderr[-2000:]}"
    with open(js, encoding="utf-8") as fh:
        doc = json.load(fh)
    with open(md, encoding="utf-8") as fh:
        text = fh.read()
    # Every real report keeps the machine contract (docs/report-schema.json).
    from report_schema import assert_valid_report

    assert_valid_report(doc)
    return doc, text


def wait_for_window(proc: subprocess.Popen, seconds: float = 5.0) -> None:
    """The window opens after the start snapshot and BPF set-up (<= 3.5 s)."""
    time.sleep(seconds)
    assert proc.poll() is None, "collection ended before the workload started"


def _rm_cgroup(path: str) -> None:
    if not os.path.isdir(path):
        return
    with open(os.path.join(path, "cgroup.procs")) as fh:
        for pid in fh.read().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.1)


def v1_group(name: str, limit: int, no_swap: bool = False) -> str:
    """A fresh v1 memory cgroup limited to ``limit`` bytes (and memsw too when ``no_swap``:
    no escape into swap, the limit is the limit); the caller removes it with _rm_cgroup."""
    _need_root()
    _need_cgroup_v1()
    path = os.path.join(CG_ROOT, name)
    _rm_cgroup(path)
    os.mkdir(path)
    with open(os.path.join(path, "memory.limit_in_bytes"), "w") as fh:
        fh.write(str(limit))
    memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
    if no_swap and os.path.exists(memsw):
        with open(memsw, "w") as fh:
            fh.write(str(limit))
    return path


@pytest.fixture
def memcg(request):
    """A v1 memory cgroup with a 64 MiB limit; removed afterwards."""
    path = v1_group(request.param, 64 << 20)
    yield path
    _rm_cgroup(path)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="snapcollect-scenario-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _findings(doc: dict) -> dict[str, dict]:
    return {f["key"]: f for f in doc["findings"]}


def _describe(doc: dict) -> str:
    return "; ".join(f"{f['severity']} {f['key']}: {f['title']}" for f in doc["findings"]) or "no findings"


@pytest.mark.parametrize("memcg", ["snapcollect-test-oom"], indirect=True)
def test_memcg_oom_kill_is_crit_and_names_the_victim(memcg, workdir):
    memsw = os.path.join(memcg, "memory.memsw.limit_in_bytes")
    if os.path.exists(memsw):
        with open(memsw, "w") as fh:        # no escape into swap: the limit must bite
            fh.write(str(64 << 20))
    coll = start_collection(12, workdir)
    try:
        wait_for_window(coll)
        victim = subprocess.Popen([sys.executable, "-c", script(ALLOCATE_200M, "sc-oom-victim", memcg)],
                                  stderr=subprocess.DEVNULL)
        victim.wait(timeout=60)
        assert victim.returncode == -signal.SIGKILL, f"the victim was not OOM-killed ({victim.returncode})"
        bundle = finish_collection(coll)
    finally:
        if coll.poll() is None:
            coll.kill()
    doc, md = render(bundle, workdir)
    by = _findings(doc)
    kills = [by[k] for k in ("MEMCG_OOM", "OOM_KILL") if k in by]
    assert kills, f"no OOM finding: {_describe(doc)}"
    f = kills[0]
    assert f["severity"] == "CRIT"
    assert f"sc-oom-victim (pid {victim.pid}" in f["title"], f["title"]
    if f["key"] == "MEMCG_OOM":
        assert "snapcollect-test-oom" in f["title"]
    assert doc["worst_severity"] == "CRIT"
    assert f"OOM-killed sc-oom-victim (pid {victim.pid})" in doc["verdict"]
    assert any(e["kind"] == "oom" and f"pid {victim.pid}" in e["text"] for e in doc["timeline"])
    assert f"{f['key']}" in md and "sc-oom-victim" in md


def swap_file(path: str, mb: int):
    """A swap file of ``mb`` MiB, on (written out with dd: a swap file may have no holes), for a
    fixture to ``yield from``; off and removed after. Skips where swapon refuses it."""
    _need_root()
    if not shutil.which("mkswap") or not shutil.which("swapon"):
        pytest.skip("mkswap/swapon not installed (util-linux)")
    subprocess.run(["swapoff", path], capture_output=True)
    with open(path, "wb") as fh:
        fh.truncate(0)
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mb}", "status=none"], check=True)
    os.chmod(path, 0o600)
    subprocess.run(["mkswap", path], check=True, capture_output=True)
    r = subprocess.run(["swapon", path], capture_output=True, text=True)
    if r.returncode != 0:
        os.unlink(path)
        pytest.skip(f"swapon refused a swap file here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["swapoff", path], capture_output=True)
        os.unlink(path)


@pytest.fixture
def swapfile():
    yield from swap_file("/var/tmp/snapcollect-test.swap", 512)


@pytest.mark.parametrize("memcg", ["snapcollect-test-swap"], indirect=True)
def test_swap_thrashing_in_a_memcg(memcg, swapfile, workdir):
    with open(os.path.join(memcg, "memory.swappiness"), "w") as fh:
        fh.write("60")
    # memory.memsw.limit_in_bytes stays unlimited: the cgroup swaps instead of OOM-killing.
    thrasher = subprocess.Popen([sys.executable, "-c", script(CYCLE_200M, "sc-thrasher", memcg), "40"],
                                stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)          # let it reach its limit and start swapping
        assert thrasher.poll() is None, "the thrashing process died early"
        coll = start_collection(12, workdir)
        bundle = finish_collection(coll)
    finally:
        thrasher.kill()
        thrasher.wait()
    doc, md = render(bundle, workdir)
    by = _findings(doc)
    assert "SWAP_THRASHING" in by, f"no SWAP_THRASHING: {_describe(doc)}"
    f = by["SWAP_THRASHING"]
    assert f["severity"] in ("HIGH", "WARN")
    assert f["evidence"]["values"]["pswpin_delta"] > 0 and f["evidence"]["values"]["pswpout_delta"] > 0
    assert "sc-thrasher" in f["explanation"]
    assert any(e["kind"] == "swap" for e in doc["timeline"])
    assert "SWAP_THRASHING" in md


def test_dentry_burst_is_slab_growth_of_dentry(workdir):
    _need_root()
    names = os.path.join(workdir, "lookups")
    os.mkdir(names)
    # Negative dentries: ~190 bytes each; 1% of RAM per minute on 24 GiB is
    # ~22,000 new names per second, which one Python loop exceeds ~10x.
    burster = subprocess.Popen([sys.executable, "-c", script(NEGATIVE_DENTRIES, "sc-dentries"),
                                names, "30"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        coll = start_collection(10, workdir)
        bundle = finish_collection(coll)
    finally:
        burster.kill()
        burster.wait()
        os.rmdir(names)       # rmdir prunes the directory's negative dentries
    doc, md = render(bundle, workdir)
    by = _findings(doc)
    assert "SLAB_GROWTH" in by, f"no SLAB_GROWTH: {_describe(doc)}"
    f = by["SLAB_GROWTH"]
    assert f["severity"] == "WARN"
    assert f["evidence"]["values"]["cache"] == "dentry"
    assert f["title"].startswith("Slab cache dentry grew ")
    assert f["evidence"]["section"] == "slabtop"
    assert "SLAB_GROWTH" in md


def test_idle_host_is_quiet(workdir):
    coll = start_collection(8, workdir)
    bundle = finish_collection(coll)
    doc, md = render(bundle, workdir)
    loud = [f for f in doc["findings"] if f["severity"] in SEVERE]
    assert not loud, f"an idle host got findings: {_describe(doc)}"
    assert doc["verdict"].startswith("No memory problem found in this window:")
    assert not [s for s in doc["skipped_rules"] if s["reason"].startswith("rule failed")]
    assert "No memory problem found" in md
