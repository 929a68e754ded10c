"""Live scenarios for where memory went: tmpfs, a leak against its cgroup limit, swap, idle with noise.

Each test stages one incident on this host (as root), each workload in a
memory cgroup of its own (cgroup v1, /sys/fs/cgroup/memory), collects
around it with the real CLI, renders JSON and Markdown, and checks that
the verdict names the cause and the culprit (mount, process, cgroup) and
that nothing else reaches WARN. None names the collector or a command it
ran. Each stays under about 40 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import pytest

from test_scenarios import (SEVERE, _describe, _findings, _need_root, _rm_cgroup,
                            finish_collection, render, script, start_collection, swap_file,
                            v1_group, wait_for_window,
                            workdir)  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.live

MIB = 1 << 20

# 30 MiB/s: 3 MiB written every 0.1 s, held, for ``seconds``; then it waits to be killed.
LEAK = """
import time
chunks = []
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    chunks.append(bytearray(b"x" * (3 << 20)))
    time.sleep(0.1)
time.sleep(3600)
"""

# Allocate, touch every page, then sleep: in a small cgroup most of it goes to swap.
ALLOCATE_AND_SLEEP = """
import time
buf = bytearray(int(sys.argv[1]) << 20)     # zero pages: not resident until written
for i in range(0, len(buf), 4096):
    buf[i] = 1
open(sys.argv[2], "w").close()        # tell the test it is done
time.sleep(3600)
"""

# Noise: allocate and free 40 MiB, append a little to a file, sleep.
NOISE = """
import os, time
end = time.monotonic() + float(sys.argv[1])
with open(sys.argv[2], "ab") as log:
    while time.monotonic() < end:
        b = bytearray(b"n" * (40 << 20))
        del b
        log.write(b"tick\\n" * 1000)
        log.flush()
        time.sleep(0.3)
"""


def _cgroup(name: str, limit_bytes: int) -> str:
    return v1_group(name, limit_bytes)


def _no_collector_named(doc: dict, bundle_pids: list[int]) -> None:
    for f in doc["findings"]:
        v = f["evidence"]["values"]
        assert v.get("pid") not in bundle_pids, f"{f['key']} names the collector: {f['title']}"
        assert "snapcollect" not in f["title"], f["title"]


def _collector_pids(bundle: str) -> list[int]:
    from snapcollect.bundle.reader import open_bundle
    return list(open_bundle(bundle).manifest.get("collector_pids") or [])


def _loud_except(doc: dict, *keys: str) -> list[dict]:
    return [f for f in doc["findings"] if f["severity"] in SEVERE and f["key"] not in keys]


@pytest.fixture
def tmpfs_mount():
    _need_root()
    d = tempfile.mkdtemp(prefix="sc-tmpfs-", dir="/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200m", "sc-scratch", d], check=True)
    yield d
    subprocess.run(["umount", d], check=False)
    os.rmdir(d)


@pytest.fixture
def tmpfs_cgroup():
    """The writer's cgroup (tmpfs pages are charged to it); removed after the mount is gone."""
    cg = _cgroup("sc-test-tmpfs", 2048 * MIB)
    yield cg
    _rm_cgroup(cg)


def test_tmpfs_file_held_by_no_process_is_named(tmpfs_cgroup, tmpfs_mount, workdir):
    coll = start_collection(12, workdir)
    try:
        wait_for_window(coll)
        writer = subprocess.Popen(
            [sys.executable, "-c", script("""
with open(sys.argv[1], "wb") as f:
    for _ in range(1024):
        f.write(b"t" * (1 << 20))
""", "sc-tmpfs-writer", tmpfs_cgroup), os.path.join(tmpfs_mount, "scratch.bin")])
        assert writer.wait(timeout=30) == 0
        bundle = finish_collection(coll)
    finally:
        if coll.poll() is None:
            coll.kill()
    doc, md = render(bundle, workdir)
    print(f"verdict: {doc['verdict']}\nfindings: {_describe(doc)}")
    by = _findings(doc)
    assert "SHMEM_GROWTH" in by, f"no SHMEM_GROWTH: {_describe(doc)}"
    f = by["SHMEM_GROWTH"]
    v = f["evidence"]["values"]
    assert f"1.0 GiB in {tmpfs_mount} on tmpfs, held by no process" in f["title"], f["title"]
    # the mount's own growth; the host's Shmem also moves with everyone else's work
    place = v["places"][0]
    assert place["label"] == f"{tmpfs_mount} on tmpfs" and 1000 * 1024 <= place["growth_kb"] <= 1030 * 1024
    assert v["growth_kb"] >= 256 * 1024, (f["title"], f["explanation"])
    # the verdict says it, with the mount and the size
    assert tmpfs_mount in doc["verdict"] and "1.0 GiB" in doc["verdict"], doc["verdict"]
    assert not _loud_except(doc), f"more than the tmpfs: {_describe(doc)}"
    assert "Shared memory and tmpfs" in md and tmpfs_mount in md
    _no_collector_named(doc, _collector_pids(bundle))


def test_leak_warns_with_its_rate_and_the_time_left_to_its_cgroup_limit(workdir):
    cg = _cgroup("sc-test-leak", 1024 * MIB)
    memsw = os.path.join(cg, "memory.memsw.limit_in_bytes")
    if os.path.exists(memsw):
        with open(memsw, "w") as fh:
            fh.write(str(1024 * MIB))
    leaker = None
    try:
        coll = start_collection(16, workdir)
        try:
            wait_for_window(coll)
            leaker = subprocess.Popen([sys.executable, "-c", script(LEAK, "sc-leaker", cg), "22"])
            bundle = finish_collection(coll)
        finally:
            if coll.poll() is None:
                coll.kill()
        assert leaker.poll() is None, "the leaker died before the end of the window"
    finally:
        if leaker is not None:
            leaker.kill()
            leaker.wait()
        _rm_cgroup(cg)
    doc, md = render(bundle, workdir)
    print(f"verdict: {doc['verdict']}\nfindings: {_describe(doc)}")
    by = _findings(doc)
    assert "MEMORY_LEAK" in by, f"no MEMORY_LEAK: {_describe(doc)}"
    f = by["MEMORY_LEAK"]
    v = f["evidence"]["values"]
    assert f["severity"] == "WARN", f["title"]
    assert v["pid"] == leaker.pid and v["comm"] == "sc-leaker"
    assert 20 * 1024 <= v["rate_kb_s"] <= 40 * 1024, v["rate_kb_s"]
    assert v["runs_out"] == "cgroup" and v["cgroup"] == "/sc-test-leak" and v["cgroup_limit_kb"] == 1024 * 1024
    assert 0 < v["seconds_left"] < 60
    assert f"sc-leaker (pid {leaker.pid}) grows" in f["title"] and "/sc-test-leak runs out in" in f["title"]
    assert "sc-leaker" in doc["verdict"]
    # the growth table prints the rate the finding cites
    assert f"sc-leaker" in md and "MEMORY_LEAK" in md
    assert not _loud_except(doc, "MEMORY_LEAK"), f"more than the leak: {_describe(doc)}"
    _no_collector_named(doc, _collector_pids(bundle))


@pytest.fixture
def small_swapfile():
    """A 256 MiB swap file: a workload fills most of it."""
    _need_root()
    with open("/proc/swaps") as fh:
        if len(fh.read().splitlines()) > 1:
            pytest.skip("the host already has swap in use: the scenario needs its own swap to fill")
    yield from swap_file("/var/tmp/snapcollect-test-small.swap", 256)


def test_swap_filling_names_the_process_holding_it(small_swapfile, workdir):
    cg = _cgroup("sc-test-swapped", 64 * MIB)
    with open(os.path.join(cg, "memory.swappiness"), "w") as fh:
        fh.write("100")
    ready = os.path.join(workdir, "ready")
    hog = subprocess.Popen([sys.executable, "-c", script(ALLOCATE_AND_SLEEP, "sc-swapped", cg), "270", ready])
    try:
        for _ in range(300):
            if os.path.exists(ready) or hog.poll() is not None:
                break
            time.sleep(0.1)
        assert hog.poll() is None and os.path.exists(ready), "the workload did not get its memory"
        coll = start_collection(10, workdir)
        bundle = finish_collection(coll)
    finally:
        hog.kill()
        hog.wait()
        _rm_cgroup(cg)
    doc, md = render(bundle, workdir)
    print(f"verdict: {doc['verdict']}\nfindings: {_describe(doc)}")
    by = _findings(doc)
    assert "SWAP_FILLING" in by, f"no SWAP_FILLING: {_describe(doc)}"
    f = by["SWAP_FILLING"]
    holders = f["evidence"]["values"]["holders"]
    assert holders and holders[0]["pid"] == hog.pid, holders
    assert holders[0]["swap_kb"] >= 180 * 1024
    assert f"sc-swapped (pid {hog.pid})" in f["explanation"]
    assert f"of it by sc-swapped (pid {hog.pid})" in doc["verdict"], doc["verdict"]
    # The group the hog lives in is held at its 64 MiB limit with the rest in swap: that is
    # this incident too, and MEMCG_AT_LIMIT may say so, naming that group and no other.
    others = [f for f in _loud_except(doc, "SWAP_FILLING")
              if not (f["key"] == "MEMCG_AT_LIMIT" and "/sc-test-swapped" in f["title"])]
    assert not others, f"more than swap filling: {_describe(doc)}"
    _no_collector_named(doc, _collector_pids(bundle))


def test_idle_host_with_noise_has_nothing_at_warn(workdir):
    cg = _cgroup("sc-test-noise", 512 * MIB)
    log = os.path.join(workdir, "noise.log")
    noise = [subprocess.Popen([sys.executable, "-c", script(NOISE, f"sc-noise-{i}", cg), "14", log])
             for i in range(2)]
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        coll = start_collection(10, workdir)
        bundle = finish_collection(coll)
    finally:
        for p in noise + [sleeper]:
            p.kill()
            p.wait()
        _rm_cgroup(cg)
    doc, md = render(bundle, workdir)
    print(f"verdict: {doc['verdict']}\nfindings: {_describe(doc)}")
    loud = [f for f in doc["findings"] if f["severity"] in SEVERE]
    assert not loud, f"an idle host with noise got: {_describe(doc)}"
    assert doc["verdict"].startswith("No memory problem found in this window:"), doc["verdict"]
    assert "MEMORY_LEAK" not in _findings(doc) or _findings(doc)["MEMORY_LEAK"]["severity"] == "INFO"
    _no_collector_named(doc, _collector_pids(bundle))
