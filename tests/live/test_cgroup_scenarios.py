"""Live memory-cgroup incidents: thrashing, a group held at its limit, one close to it.

Each test makes its incident in a cgroup v1 memory group of its own (as
root), collects around it with the real CLI, renders the bundle, and
checks that the verdict names the cause, the cgroup and the process, and
that nothing else reaches WARN:

- a reader in a 200 MiB group re-reading a 600 MiB file: page cache
  thrashing in that group (PAGECACHE_THRASHING), naming the reader;
- a 512 MiB group held at its limit by anonymous memory while a writer
  in it makes page cache that must be reclaimed (MEMCG_AT_LIMIT, the
  reclaim stalls attributed to the group, advice about its limit);
- a 512 MiB group at 94% of its limit with nothing reclaiming: INFO only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from test_scenarios import (SEVERE, _describe, _findings, _need_root, _rm_cgroup,
                            finish_collection, render, script, start_collection, v1_group, wait_for_window,
                            workdir)  # noqa: F401 (a fixture)

pytestmark = pytest.mark.live

MIB = 1 << 20

REREAD = """
import time
path, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
fd = os.open(path, os.O_RDONLY)
while time.monotonic() < end:
    os.lseek(fd, 0, 0)
    while os.read(fd, 1 << 20):
        pass
"""

# Anonymous memory held and touched; optionally a writer making page cache.
HOLD = """
import time
mib, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
buf = bytearray(mib << 20)
for i in range(0, len(buf), 4096):
    buf[i] = 1
end = time.monotonic() + seconds
block = b"w" * (1 << 20)
n = 0
while time.monotonic() < end:
    if out != "-":
        with open(out, "wb") as f:           # new page cache, charged to the group
            for _ in range(64):
                f.write(block)
        n += 1
    else:
        time.sleep(0.2)
    for i in range(0, len(buf), 1 << 16):
        buf[i] = (buf[i] + 1) & 0xFF
"""


def _group(name: str, limit: int) -> str:
    return v1_group(name, limit, no_swap=True)


@pytest.fixture
def group(request):
    name, limit = request.param
    path = _group(name, limit)
    yield path
    _rm_cgroup(path)


@pytest.fixture
def bigfile():
    """600 MiB on disk, not in the page cache (so reads in a group charge it)."""
    _need_root()
    path = "/var/tmp/snapcollect-test-reread.dat"
    with open(path, "wb") as fh:
        block = os.urandom(MIB)
        for _ in range(600):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    yield path
    os.unlink(path)


# Reclaim and pressure findings may reach WARN on the same incident only
# when they say it is the incident's cgroup.
SAME_CAUSE = {"DIRECT_RECLAIM_STALLS", "PSI_PRESSURE", "MEMORY_WAIT_BY_PROCESS"}


def _loud(doc: dict, allowed: set[str], group: str = "") -> list[str]:
    return [f"{f['severity']} {f['key']}" for f in doc["findings"]
            if f["severity"] in SEVERE and f["key"] not in allowed
            and not (group and f["key"] in SAME_CAUSE and f["evidence"]["values"].get("cgroup") == group
                     and group in f["title"])]


def _run(argv: list[str], duration: float, workdir: str, lead: float = 0.0):
    """Start the workload, collect for ``duration`` s around it; (bundle, workload)."""
    work = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(lead)
        assert work.poll() is None, f"the workload ended early: {work.stderr.read()[-2000:]}"
        coll = start_collection(duration, workdir)
        try:
            wait_for_window(coll, 1.0)
            bundle = finish_collection(coll)
        finally:
            if coll.poll() is None:
                coll.kill()
        assert work.poll() is None, f"the workload ended during the window: {work.stderr.read()[-2000:]}"
    finally:
        work.kill()
        work.wait()
    return bundle, work


@pytest.mark.parametrize("group", [("snapcollect-test-thrash", 200 * MIB)], indirect=True)
def test_thrashing_in_a_cgroup_names_the_group_and_the_reader(group, bigfile, workdir):
    bundle, reader = _run([sys.executable, "-c", script(REREAD, "sc-reader", group), bigfile, "60"],
                          15, workdir, lead=3)
    doc, md = render(bundle, workdir)
    by = _findings(doc)
    assert "PAGECACHE_THRASHING" in by, f"no PAGECACHE_THRASHING: {_describe(doc)}"
    f = by["PAGECACHE_THRASHING"]
    assert f["severity"] == "WARN"
    v = f["evidence"]["values"]
    assert v["cgroup"] == "/snapcollect-test-thrash"
    assert "/snapcollect-test-thrash" in f["title"]
    assert f"sc-reader (pid {reader.pid})" in f["explanation"]
    assert v["turnover"] >= 1.0
    assert "/snapcollect-test-thrash" in doc["verdict"] and f"sc-reader (pid {reader.pid})" in doc["verdict"]
    assert not _loud(doc, {"PAGECACHE_THRASHING"}, "/snapcollect-test-thrash"), _describe(doc)
    assert "Memory cgroup usage against its limit (1)" in md
    assert "Memory cgroup /snapcollect-test-thrash: at >= 99% of the limit for" in md


@pytest.mark.parametrize("group", [("snapcollect-test-atlimit", 512 * MIB)], indirect=True)
def test_cgroup_held_at_its_limit_names_the_group_and_its_tasks(group, workdir):
    out = os.path.join(workdir, "written.dat")
    bundle, holder = _run([sys.executable, "-c", script(HOLD, "sc-holder", group), "490", "60", out],
                          15, workdir, lead=3)
    doc, md = render(bundle, workdir)
    by = _findings(doc)
    assert "MEMCG_AT_LIMIT" in by, f"no MEMCG_AT_LIMIT: {_describe(doc)}"
    f = by["MEMCG_AT_LIMIT"]
    assert f["severity"] in ("WARN", "HIGH"), (f["title"], f["explanation"], f["evidence"]["values"].get("fill"))
    v = f["evidence"]["values"]
    assert v["group"] == "/snapcollect-test-atlimit"
    assert v["limit_bytes"] == 512 * MIB
    assert v["at_limit_s"] >= 0.5 * v["covered_s"] > 0
    assert f"sc-holder (pid {holder.pid})" in f["explanation"]
    assert "anon" in f["explanation"]
    assert "limit" in f["explanation"] and "min_free_kbytes" not in f["explanation"]
    assert "/snapcollect-test-atlimit" in doc["verdict"]
    # Reclaim in the group is attributed to it, with advice about the limit.
    stalls = by.get("DIRECT_RECLAIM_STALLS")
    if stalls is not None:
        assert "/snapcollect-test-atlimit" in stalls["title"] + stalls["explanation"]
        assert "raise that group's memory limit" in stalls["explanation"]
        assert "raise vm.min_free_kbytes" not in stalls["explanation"]
    assert not _loud(doc, {"MEMCG_AT_LIMIT"}, "/snapcollect-test-atlimit"), _describe(doc)


@pytest.mark.parametrize("group", [("snapcollect-test-near", 512 * MIB)], indirect=True)
def test_cgroup_close_to_its_limit_is_info(group, workdir):
    bundle, holder = _run([sys.executable, "-c", script(HOLD, "sc-near", group), "475", "60", "-"],
                          10, workdir, lead=3)
    doc, md = render(bundle, workdir)
    by = _findings(doc)
    assert "MEMCG_AT_LIMIT" in by, f"no MEMCG_AT_LIMIT: {_describe(doc)}"
    f = by["MEMCG_AT_LIMIT"]
    assert f["severity"] == "INFO"
    assert "/snapcollect-test-near" in f["title"] and "close to its limit" in f["title"]
    assert 92.0 <= f["evidence"]["values"]["pct"] < 99.0
    assert f"sc-near (pid {holder.pid})" in f["explanation"]
    assert not _loud(doc, set()), _describe(doc)
    # The series followed the group every tick, at a cost the manifest records.
    from snapcollect.bundle import open_bundle
    b = open_bundle(bundle)
    cost = b.manifest["cgroups_pass"]
    ticks = b.series("cgroups/memory")
    assert cost["every_ticks"] == 1 and cost["reads"] == len(ticks) >= 8, cost
    assert cost["read_cpu_s_median"] < 0.025, cost          # under 2.5% of a core at 1 s ticks
    assert all("/snapcollect-test-near" in json.loads(t.text)["groups"] for t in ticks)
