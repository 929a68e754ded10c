"""Collector pieces that can be checked without a full run.

Fixed tick schedule, kernel-log record parsing (real /dev/kmsg and dmesg
lines from this machine, kernel 6.18), cgroup hierarchy detection from
mountinfo (v1, v2, hybrid), the per-tick process line format, commands
with timeouts and caps, output naming, and a tick whose process read
blocks (it must not stall the clock).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from snapcollect.bundle import names, open_bundle
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect import output, sampler as sampler_mod
from snapcollect.collect.sources import processes as processes_mod
from snapcollect.collect.clock import Deadline, TickSchedule
from snapcollect.collect.jobs import Jobs
from snapcollect.collect.sources import dump_dir, read_capped
from snapcollect.collect.sources.cgroups import find_hierarchy
from snapcollect.collect.sources.commands import Command, run_commands, run_one
from snapcollect.collect.sources.kmsg import parse_dmesg_raw, parse_record
from snapcollect.collect.sources.processes import (PassState, _status_fields, procs_pass,
                                                   top_by_rss)

# -- clock ------------------------------------------------------------------


def test_schedule_slots_do_not_drift():
    s = TickSchedule(100.0, 0.1, 60.0)
    assert s.last_k == 600          # 60 / 0.1 in floats is 599.999...; the last slot is kept
    assert s.slot(600) == pytest.approx(160.0)
    assert s.slot(0) == 100.0 and s.end == pytest.approx(160.0)


def test_schedule_skips_overrun_slots_and_counts_them():
    s = TickSchedule(0.0, 1.0, 10.0)
    assert s.next_after(0, 0.4) == 1 and s.skipped == 0
    assert s.next_after(1, 1.5) == 2 and s.skipped == 0      # on time for slot 2
    assert s.next_after(2, 4.2) == 5 and s.skipped == 2      # slots 3 and 4 missed
    assert s.next_after(9, 9.1) == 10
    assert s.next_after(10, 10.0) is None
    s2 = TickSchedule(0.0, 1.0, 3.0)
    assert s2.next_after(0, 7.0) is None and s2.skipped == 3  # 1, 2, 3 all missed


def test_schedule_shorten():
    s = TickSchedule(0.0, 1.0, 60.0)
    s.shorten(10.5)
    assert s.last_k == 10
    s.shorten(100.0)
    assert s.last_k == 10


def test_deadline():
    d = Deadline.after(10.0)
    assert 9.0 < d.remaining() <= 10.0 and not d.expired()
    assert d.sooner(1.0).remaining() <= 1.0
    assert Deadline.after(-1).expired() and Deadline.after(-1).remaining() == 0.0


# -- kernel log --------------------------------------------------------------

KMSG_LINES = [
    b"6,345,681491492,-;Adding 262140k swap on /var/tmp/snapfix.swap.  Priority:-2 extents:3 across:278524k \n",
    b"3,1302,5461278900,-,caller=T4242;Memory cgroup out of memory: Killed process 4242 (python3) "
    b"total-vm:213712kB, anon-rss:63852kB, file-rss:1280kB, shmem-rss:0kB, UID:0 pgtables:232kB "
    b"oom_score_adj:0\n SUBSYSTEM=memory\n",
]


def test_kmsg_record():
    r = parse_record(KMSG_LINES[0], True)
    assert r == {"seq": 345, "ts_us": 681491492, "prio": 6, "facility": 0,
                 "text": "Adding 262140k swap on /var/tmp/snapfix.swap.  Priority:-2 extents:3 across:278524k ",
                 "before_window": True}
    r = parse_record(KMSG_LINES[1], False)
    assert r["seq"] == 1302 and r["prio"] == 3 and r["ts_us"] == 5461278900
    assert r["text"].startswith("Memory cgroup out of memory: Killed process 4242 (python3)")
    assert "SUBSYSTEM" not in r["text"] and r["before_window"] is False
    # facility in the high bits: <30> is daemon.info
    assert parse_record(b"30,7,12,-;systemd[1]: x\n", False)["facility"] == 3
    assert parse_record(b"garbage without separator", False) is None
    # A byte that is not UTF-8 is kept (as a surrogate escape), not replaced.
    r = parse_record(b"4,9,12,-;name caf\xe9\n", False)
    assert r["text"].encode("utf-8", "surrogateescape") == b"name caf\xe9"


def test_dmesg_raw_fallback():
    text = ("<6>[    0.000000] Linux version 6.18.44\n"
            "<4>[  681.491492] Adding 262140k swap on /var/tmp/snapfix.swap.\n"
            "not a record line\n")
    recs = parse_dmesg_raw(text, True)
    assert [r["ts_us"] for r in recs] == [0, 681491492]
    assert recs[1]["prio"] == 4 and recs[1]["text"].startswith("Adding")
    assert all(r["before_window"] for r in recs)


# -- cgroups -------------------------------------------------------------------

MOUNTINFO_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
MOUNTINFO_V1_ESCAPED = "35 31 0:32 / /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory\n"


def test_cgroup_v1_mount_found_when_v2_has_no_memory(tmp_path):
    # this machine: cgroup2 at /sys/fs/cgroup/unified lists only hugetlb
    assert find_hierarchy(MOUNTINFO_V1.replace("/sys/fs/cgroup/unified", str(tmp_path))) == \
        (1, "/sys/fs/cgroup/memory")
    assert find_hierarchy(MOUNTINFO_V1_ESCAPED) == (1, "/sys/fs/cgroup/mem ory")
    assert find_hierarchy("") is None


def test_cgroup_v2_with_memory_controller(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    mi = f"30 23 0:26 / {tmp_path} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert find_hierarchy(mi) == (2, str(tmp_path))
    # hybrid: v2 has memory, so it wins over a v1 memory mount
    assert find_hierarchy(MOUNTINFO_V1 + mi)[0] == 2


# -- processes -----------------------------------------------------------------


def test_status_fields_real_uid_and_swap():
    status = open("/proc/self/status", "rb").read()
    uid, swap = _status_fields(status)
    assert uid == os.getuid()
    assert swap.isdigit()
    # kernel threads have no VmSwap line
    kthread = open("/proc/2/status", "rb").read()
    assert _status_fields(kthread) == (0, "")


def test_procs_pass_lines_match_proc():
    res = procs_pass(None, PassState(), budget_s=5.0)
    lines = res.text.splitlines()
    assert res.written == len(lines) and res.cut_reason is None
    mine = [ln for ln in lines if ln.startswith(f"{os.getpid()} (")]
    assert len(mine) == 1
    stat, uid, swap = mine[0].rsplit("\t", 2)
    assert int(uid) == os.getuid() and swap.isdigit()
    raw = open(f"/proc/{os.getpid()}/stat").read().split(")")[0]
    assert stat.startswith(raw + ")")
    assert any(p.pid == os.getpid() for p in res.procs)


def test_procs_pass_comm_with_tab_and_newline_stays_one_line():
    # A real process whose comm holds a TAB, a newline and parentheses.
    code = ("import ctypes,time; libc=ctypes.CDLL(None); "
            "libc.prctl(15, b'a\\tb\\nc) (d', 0, 0, 0); time.sleep(30)")
    p = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(100):
            if "\t" in open(f"/proc/{p.pid}/comm").read():
                break
            time.sleep(0.02)
        res = procs_pass(None, PassState(), budget_s=5.0)
        mine = [ln for ln in res.text.split("\n") if ln.startswith(f"{p.pid} (")]
        assert len(mine) == 1
        stat, uid, swap = mine[0].rsplit("\t", 2)
        assert stat.startswith(f"{p.pid} (a b c) (d) S ")
    finally:
        p.kill()
        p.wait()


def test_procs_pass_time_budget_cuts():
    res = procs_pass(None, PassState(), budget_s=0.0)
    assert res.cut_reason and "time budget" in res.cut_reason


def test_top_by_rss_excludes_kernel_threads_and_self():
    res = procs_pass(None, PassState(), budget_s=5.0)
    top = top_by_rss(res.procs, 5, {os.getpid()})
    assert top and all(p.rss_pages > 0 and p.pid != os.getpid() for p in top)
    assert [p.rss_pages for p in top] == sorted((p.rss_pages for p in top), reverse=True)


def _by_pid(res) -> dict[int, tuple[str, str]]:
    out = {}
    for ln in res.text.splitlines():
        stat, uid, swap = ln.rsplit("\t", 2)
        out[int(stat.split(" ", 1)[0])] = (uid, swap)
    return out


def test_procs_pass_reads_status_in_turn_and_keeps_the_uid(monkeypatch):
    """After the first pass, status is read for the largest processes and
    one in STATUS_EVERY in turn; the other lines keep the uid, VmSwap empty."""
    monkeypatch.setattr(processes_mod, "STATUS_TOP", 1)
    child = subprocess.Popen(["sleep", "60"])
    try:
        state = PassState()
        first = procs_pass(None, state, budget_s=5.0)
        assert first.status_read == first.written        # first sight: all of them
        seen_swap = 0
        for _ in range(processes_mod.STATUS_EVERY):
            res = procs_pass(None, state, budget_s=5.0)
            lines = _by_pid(res)
            assert res.status_read < res.written
            assert sum(1 for _u, sw in lines.values() if sw) <= res.status_read
            uid, swap = lines[child.pid]
            assert int(uid) == os.getuid()                # kept from the last status read
            seen_swap += bool(swap)
        assert seen_swap >= 1                             # its turn came within STATUS_EVERY passes
    finally:
        child.kill()
        child.wait()


def test_procs_pass_rereads_status_of_a_reused_pid(monkeypatch):
    monkeypatch.setattr(processes_mod, "STATUS_TOP", 0)
    monkeypatch.setattr(processes_mod, "STATUS_EVERY", 1000000)
    state = PassState()
    procs_pass(None, state, budget_s=5.0)
    procs_pass(None, state, budget_s=5.0)
    me = os.getpid()
    if me % 1000000 == state.passes % 1000000:
        pytest.skip("this pid's turn falls on the next pass")
    assert _by_pid(procs_pass(None, state, budget_s=5.0))[me][1] == ""
    # Another process with the same pid: its starttime differs.
    state.known[me].starttime = b"1"
    assert _by_pid(procs_pass(None, state, budget_s=5.0))[me][1].isdigit()


def test_pass_spacing_above_the_threshold_only():
    assert sampler_mod.pass_every(0.5, sampler_mod.ADAPT_ABOVE_PIDS, 1.0) == 1
    assert sampler_mod.pass_every(0.01, 10000, 1.0) == 1
    assert sampler_mod.pass_every(0.1, 10000, 1.0) == 10     # 0.1 s / (1.1% of 1 s)
    assert sampler_mod.pass_every(0.1, 10000, 2.0) == 5
    # 1,000 processes at 20 ms a pass: every other tick, about 1% of a core.
    assert sampler_mod.pass_every(0.02, 1000, 1.0) == 2
    assert sampler_mod.pass_every(9.0, 10000, 1.0) == sampler_mod.MAX_PASS_EVERY


def test_sampler_spaces_passes_and_records_it(tmp_path, monkeypatch):
    calls = []

    def costly_pass(job, state, budget, skip_pids=frozenset(), cap=0):
        res = procs_pass(job, state, budget)
        calls.append(state.passes)
        res.seen, res.cpu_s = 10000, 0.04     # as on a host with 10,000 processes
        return res

    monkeypatch.setattr(sampler_mod, "procs_pass", costly_pass)
    path = str(tmp_path / f"b{names.SUFFIX}")
    w = BundleWriter(path, {})
    s = sampler_mod.Sampler(w, Jobs(), [], 1.0)
    for k in range(12):
        s.take(k, time.monotonic() + 2.0)
    w.close(ended_at="t")
    b = open_bundle(path)
    with_procs = [t["k"] for t in b.ticks if "procs" in t["texts"]]
    # Passes 0 and 1 every tick (the first is not a typical cost), then every 4th.
    assert with_procs == [0, 1, 5, 9]
    assert all("proc/vmstat" in t["texts"] and "procs" not in t["failures"] for t in b.ticks)
    pp = b.manifest["procs_pass"]
    assert pp["every_ticks"] == 4 and pp["max_every_ticks"] == 4
    assert pp["changes"] == [{"k": 1, "every_ticks": 4, "pids": 10000, "pass_cpu_s": 0.04}]


# -- files and commands ----------------------------------------------------------


def test_read_capped_statuses(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 1000)
    assert read_capped(str(f), 2000).status == "ok"
    got = read_capped(str(f), 100)
    assert got.status == "truncated" and len(got.data) == 100
    assert read_capped(str(tmp_path / "none"), 10).status == "missing"
    assert read_capped("/proc/meminfo", 1 << 20).text.startswith("MemTotal:")


def test_dump_dir(tmp_path):
    (tmp_path / "a").write_text("1\n")
    (tmp_path / "b").write_text("x y\nz\n")
    (tmp_path / "trigger").write_text("")
    os.chmod(tmp_path / "trigger", 0o200)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c").write_text("3\n")
    got, unreadable = dump_dir(str(tmp_path), 1 << 20)
    assert got.text == "a = 1\nb = x y z\n" and unreadable == []
    got, _ = dump_dir(str(tmp_path), 1 << 20, recursive=True)
    assert "sub/c = 3\n" in got.text
    assert dump_dir(str(tmp_path / "nope"), 10)[0].status == "missing"


def test_commands_missing_timeout_cap_and_exit_status():
    cmds = [Command("a", ["no-such-command-here"]), Command("b", ["sleep", "10"]),
            Command("c", ["seq", "1", "100000"], cap=1000), Command("d", ["ls", "/no/such/dir"]),
            Command("e", ["echo", "hello"])]
    t = time.monotonic()
    run_commands(cmds, time.monotonic() + 1.0)
    assert time.monotonic() - t < 5.0
    a, b, c, d, e = (x.outcome for x in cmds)
    assert a.status == "missing" and "not installed" in a.reason
    assert b.status == "timeout"
    assert c.status == "truncated" and len(c.data) == 1000 and c.data.startswith(b"1\n2\n")
    assert d.status == "error" and "exited with status 2" in d.reason and "No such file" in d.reason
    assert e.status == "ok" and e.data == b"hello\n"
    assert run_one(["free", "-w"], time.monotonic() + 5).text.split()[0:2] == ["total", "used"]


def test_commands_run_with_c_locale():
    got = run_one(["sh", "-c", "echo $LC_ALL"], time.monotonic() + 5)
    assert got.data == b"C\n"


# -- output ------------------------------------------------------------------------


def test_bundle_name():
    assert output.bundle_name("web-1.example", 0.0, "0a1b2c3d") == \
        "snapcollect-web-1.example-19700101T000000.000Z-0a1b2c3d.tar.zst"
    assert output.bundle_name("a b/c", 1795314388.9, "ff") == "snapcollect-a_b_c-20261122T022628.900Z-ff.tar.zst"
    # Two names drawn in the same millisecond differ: the random part.
    drawn = {output.bundle_name("h", 1795314388.9) for _ in range(50)}
    assert len(drawn) == 50
    assert all(re.fullmatch(r"snapcollect-h-20261122T022628\.900Z-[0-9a-f]{8}\.tar\.zst", n) for n in drawn)


def test_resolve_output(tmp_path):
    d = output.resolve(str(tmp_path), "h", 0.0)
    assert d.fixed is None and os.path.dirname(d.path) == str(tmp_path)
    assert os.path.basename(d.path).startswith("snapcollect-h-19700101T000000.000Z-")
    assert output.resolve(str(tmp_path / "x.tar.zst"), "h", 0.0).path == str(tmp_path / "x.tar.zst")
    (tmp_path / "x.tar.zst").write_text("")
    with pytest.raises(output.OutputError, match="refusing to overwrite"):
        output.resolve(str(tmp_path / "x.tar.zst"), "h", 0.0)
    (tmp_path / "file").write_text("")
    with pytest.raises(output.OutputError, match="not a directory"):
        output.resolve(str(tmp_path / "file"), "h", 0.0)
    with pytest.raises(output.OutputError, match="no such directory"):
        output.resolve(str(tmp_path / "nodir" / "x.tar.zst"), "h", 0.0)
    with pytest.raises(output.OutputError, match="KiB free"):
        output.check_free_space(str(tmp_path), need=1 << 62)


def test_missing_output_directory_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "does" / "not" / "exist"
    with pytest.raises(output.OutputError) as err:
        output.resolve(str(missing) + "/", "h", 0.0)
    assert str(missing) in str(err.value) and "no such directory" in str(err.value)
    assert not (tmp_path / "does").exists()


def test_existing_generated_names_are_drawn_again(tmp_path, monkeypatch):
    # The first names drawn are taken (planted by someone else); the writer
    # still gets a fresh one and never touches the planted files.
    drawn = iter(["aaaaaaaa", "bbbbbbbb", "cccccccc"])
    monkeypatch.setattr(output.secrets, "token_hex", lambda n: next(drawn))
    planted = [tmp_path / output.bundle_name("h", 0.0, "aaaaaaaa"),
               tmp_path / (output.bundle_name("h", 0.0, "bbbbbbbb") + ".partial")]
    for p in planted:
        p.write_text("planted")
    dest = output.resolve(str(tmp_path), "h", 0.0)
    w = dest.open_writer({"host": "h"})
    path = w.close(complete=True)
    assert path == str(tmp_path / output.bundle_name("h", 0.0, "cccccccc"))
    assert all(p.read_text() == "planted" for p in planted)


def test_a_given_name_that_appears_is_not_replaced(tmp_path):
    target = tmp_path / "x.tar.zst"
    dest = output.resolve(str(target), "h", 0.0)
    target.write_text("planted")
    with pytest.raises(output.OutputError, match="refusing to overwrite"):
        dest.open_writer({"host": "h"})
    assert target.read_text() == "planted"


# -- a tick whose process read blocks -----------------------------------------------


def test_blocked_process_read_does_not_stall_ticks(tmp_path, monkeypatch):
    """A pass that hangs on one pid: that tick records a timeout naming the
    file, the pid is skipped afterwards, the next tick is on time."""
    release = threading.Event()
    calls = []

    def fake_pass(job, state, budget, skip_pids=frozenset(), cap=0):
        calls.append(dict(state.blocked))
        if 4242 not in state.blocked:
            job.current = "/proc/4242/status"
            release.wait(30)        # blocked like a read under a held mmap lock
        return procs_pass(job, state, budget)

    monkeypatch.setattr(sampler_mod, "procs_pass", fake_pass)
    path = str(tmp_path / f"b{names.SUFFIX}")
    w = BundleWriter(path, {})
    jobs = Jobs()
    s = sampler_mod.Sampler(w, jobs, [], 0.2)
    t0 = time.monotonic()
    s.take(0, t0 + 0.15)
    took_first = time.monotonic() - t0
    s.take(1, time.monotonic() + 2.0)
    release.set()
    w.close(ended_at="t")
    b = open_bundle(path)
    t0k, t1k = b.ticks
    assert t0k["failures"]["procs"][0] == "timeout"
    assert "/proc/4242/status" in t0k["failures"]["procs"][1]
    assert "procs" in t1k["texts"] and t1k["skipped_pids"] == [4242]
    assert calls[1] == {4242: "/proc/4242/status"}
    assert "proc/vmstat" in t0k["texts"], "system files are read even when the pass blocks"
    assert took_first < 5.0     # bounded by the tick deadline, not by the blocked read


def test_collect_path_does_not_import_report_libraries():
    code = ("import sys, snapcollect.cli, snapcollect.collect.runner; "
            "bad = [m for m in ('matplotlib', 'weasyprint', 'jinja2', 'markdown_it') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_run_bounded_blocked_item_does_not_stop_the_rest():
    from snapcollect.collect.jobs import BLOCKED, NOT_RUN, run_bounded
    never = threading.Event()
    jobs = Jobs()
    r = run_bounded(jobs, [("a", lambda: 1), ("b", lambda: never.wait(60)), ("c", lambda: 3)],
                    time.monotonic() + 10, item_timeout_s=0.2)
    assert r == {"a": 1, "b": BLOCKED, "c": 3}
    assert len(jobs.stuck) == 1
    r = run_bounded(jobs, [("x", lambda: never.wait(60)), ("y", lambda: 2)], time.monotonic() + 0.2,
                    item_timeout_s=5)
    assert r == {"x": BLOCKED, "y": NOT_RUN}
    never.set()


def test_snapshot_records_a_blocked_file_as_timeout(tmp_path, monkeypatch):
    """/proc/slabinfo stuck behind slab_mutex: only it is lost, with the reason."""
    from snapcollect.collect import snapshot
    from snapcollect.collect.signals import StopFlag
    from snapcollect.collect.sources import procfs

    never = threading.Event()
    real = procfs.read_file

    def read_file(src):
        if src == "proc/slabinfo":
            never.wait(60)
        return real(src)

    monkeypatch.setattr(procfs, "read_file", read_file)
    monkeypatch.setattr(snapshot, "ITEM_TIMEOUT_S", 0.3)
    path = str(tmp_path / f"b{names.SUFFIX}")
    w = BundleWriter(path, {})
    layout = snapshot.HostLayout(nodes=[0] if os.path.isdir("/sys/devices/system/node/node0") else [],
                                 cgroup=None)
    ok = snapshot.take_snapshot("start", w, layout, Jobs(), Deadline.after(10), StopFlag())
    never.set()
    w.close(ended_at="t")
    b = open_bundle(path)
    assert ok is False
    status, reason = b.status("proc/slabinfo@start")
    assert status == "timeout" and "blocked" in reason
    for name in ("proc/meminfo@start", "proc/zoneinfo@start", "proc/sys/vm@start", "cmd/free@start"):
        assert b.status(name)[0] == "ok", name
    assert b.status("cgroups/memory@start")[0] == "missing"


def test_cgroup_v2_collect_picks_the_groups_that_matter(tmp_path):
    """A v2-shaped tree: the root, groups near their limit or with limit
    events (closest to the limit first), the largest by memory.current,
    and the ancestors of each."""
    import json as _json

    from snapcollect.collect.sources import cgroups

    root = tmp_path
    (root / "memory.stat").write_text("anon 1\nfile 2\n")
    (root / "memory.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    sizes = {"a": 10, "b": 30, "a/x": 50, "c": 2, "d": 9, "e": 1}
    for rel, mib in sizes.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / "memory.current").write_text(f"{mib << 20}\n")
        (d / "memory.max").write_text("max\n" if rel != "d" else f"{10 << 20}\n")
        (d / "memory.events").write_text("low 0\nhigh 0\nmax %d\noom 0\noom_kill 0\n" % (3 if rel == "c" else 0))
        (d / "cgroup.procs").write_text("101\n102\n" if rel == "a/x" else "")
    got, chosen = cgroups.collect(None, 2, str(root), top=2, also=("/e",))
    assert got.status == "ok"
    # d at 90% of its limit, c with memory.events max 3, then a/x (with its
    # parent) and b by size, then what the caller asked for.
    assert chosen == ["/", "/d", "/c", "/a", "/a/x", "/b", "/e"]
    doc = _json.loads(got.data)
    assert doc["version"] == 2 and doc["usage_file"] == "memory.current" and doc["scanned"] == 7
    assert doc["groups"]["/c"]["memory.events"].startswith("low 0")
    assert doc["groups"]["/a/x"]["memory.current"] == f"{50 << 20}\n"
    assert doc["groups"]["/a/x"]["cgroup.procs"] == "101\n102\n"
    assert set(doc["groups"]["/"]) == {"memory.stat", "memory.pressure"}   # the root has no current/max


@pytest.mark.skipif(os.geteuid() != 0, reason="dmesg needs root with kernel.dmesg_restrict=1")
def test_kmsg_falls_back_to_dmesg(monkeypatch):
    from snapcollect.collect.sources import kmsg

    monkeypatch.setattr(kmsg, "DEVICE", "/nonexistent/kmsg")
    log = kmsg.KernelLog()
    log.open(time.monotonic() + 5)
    assert log.mode == "dmesg"
    recs = log.backlog(time.monotonic() + 5)
    assert recs and all(r["before_window"] for r in recs)
    assert recs[0]["ts_us"] <= recs[-1]["ts_us"]
    assert log.poll() == []
    # only what the kernel logged after the backlog (others share this machine)
    later = log.final(time.monotonic() + 5)
    assert all(r["ts_us"] > recs[-1]["ts_us"] and not r["before_window"] for r in later)


def test_run_bounded_stops_starting_threads_when_too_many_are_stuck():
    from snapcollect.collect.jobs import NO_THREAD, run_bounded
    from snapcollect.collect.sources import outcome_of
    never = threading.Event()
    jobs = Jobs(max_stuck=2)
    for _ in range(2):
        run_bounded(jobs, [("x", lambda: never.wait(60))], time.monotonic() + 5, item_timeout_s=0.05)
    r = run_bounded(jobs, [("y", lambda: 1)], time.monotonic() + 5)
    assert r == {"y": NO_THREAD}
    got = outcome_of(r["y"], "proc/meminfo")
    assert got.status == "timeout" and "still blocked" in got.reason
    never.set()
    time.sleep(0.1)
    assert run_bounded(jobs, [("y", lambda: 1)], time.monotonic() + 5) == {"y": 1}


def test_slow_commands_cost_only_themselves_not_the_cgroup_baseline(tmp_path, monkeypatch):
    """On a cold page cache the commands load slowly: the kernel files and cgroups come first."""
    from snapcollect.collect import snapshot
    from snapcollect.collect.signals import StopFlag
    from snapcollect.collect.sources import Outcome

    cg = tmp_path / "cg"
    (cg / "app").mkdir(parents=True)
    for d in (cg, cg / "app"):
        (d / "memory.current").write_text("4096\n")
        (d / "memory.max").write_text("max\n")
    order = []

    def slow_commands(cmds, deadline_mono):
        order.append("commands")
        time.sleep(max(0.0, deadline_mono - time.monotonic()))   # every command outlives the phase
        for c in cmds:
            c.outcome = Outcome("timeout", b"", "did not finish before the deadline")

    real_collect = snapshot.cgroups.collect

    def collect(*a, **kw):
        order.append("cgroups")
        return real_collect(*a, **kw)

    monkeypatch.setattr(snapshot, "run_commands", slow_commands)
    monkeypatch.setattr(snapshot.cgroups, "collect", collect)
    path = str(tmp_path / f"b{names.SUFFIX}")
    w = BundleWriter(path, {})
    layout = snapshot.HostLayout(nodes=[], cgroup=(2, str(cg)))
    snapshot.take_snapshot("start", w, layout, Jobs(), Deadline.after(1.5), StopFlag())
    w.close(ended_at="t")
    b = open_bundle(path)
    assert order == ["cgroups", "commands"]
    for name in ("proc/meminfo@start", "proc/zoneinfo@start", "proc/sys/vm@start", "cgroups/memory@start"):
        assert b.status(name)[0] == "ok", name
    assert b.status("cmd/free@start")[0] == "timeout"
    assert layout.cgroups_chosen == ["/app"]


def test_a_dangling_symlink_at_a_generated_name_is_passed_over(tmp_path, monkeypatch):
    drawn = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(output.secrets, "token_hex", lambda n: next(drawn))
    link = tmp_path / output.bundle_name("h", 0.0, "aaaaaaaa")
    os.symlink(str(tmp_path / "nowhere"), link)
    path = output.resolve(str(tmp_path), "h", 0.0).open_writer({"host": "h"}).close(complete=True)
    assert path == str(tmp_path / output.bundle_name("h", 0.0, "bbbbbbbb"))
    assert os.path.islink(link) and not (tmp_path / "nowhere").exists()


def test_hint_repeats_how_the_program_was_started():
    from snapcollect.invocation import command

    assert command("/usr/local/bin/snapcollect", sys.executable) == "snapcollect"
    assert command("/x/snapcollect/__main__.py", sys.executable) == "snapcollect"
    assert command("/tmp/snapcollect.pyz", "/opt/py3.9/bin/python3.9") == "/opt/py3.9/bin/python3.9 /tmp/snapcollect.pyz"
    python3 = shutil.which("python3")
    if python3:
        assert command("/tmp/snapcollect.pyz", os.path.realpath(python3)) == "python3 /tmp/snapcollect.pyz"


def test_commands_past_the_deadline_each_get_an_outcome():
    """A slow host: the deadline comes while commands still run and others wait their turn.

    One command has closed its stdout (EOF) but not its stderr when it is
    killed; the queued ones were never started. Every command gets an
    outcome and nothing raises (both crashed the end of a collection on
    slow guests).
    """
    half = Command("half", ["sh", "-c", "exec >&-; sleep 30"])
    slow = [Command(f"slow{i}", ["sleep", "30"]) for i in range(3)]
    run_commands([half, *slow], time.monotonic() + 0.6, parallel=2)
    assert [c.outcome.status for c in (half, *slow)] == ["timeout"] * 4
    assert "not run" in slow[-1].outcome.reason and "did not finish" in half.outcome.reason


def test_a_process_whose_read_was_late_not_stuck_is_tried_again(tmp_path, monkeypatch):
    """On a slow host a pass can miss its deadline while reading a pid without
    being stuck: once that read returns, the pid is back in the passes."""
    release = threading.Event()
    seen = []

    def fake_pass(job, state, budget, skip_pids=frozenset(), cap=0):
        seen.append(4242 in state.blocked)
        if len(seen) == 1:
            job.current = "/proc/4242/status"
            release.wait(30)        # late: returns once released
        return procs_pass(job, state, budget)

    monkeypatch.setattr(sampler_mod, "procs_pass", fake_pass)
    w = BundleWriter(str(tmp_path / f"b{names.SUFFIX}"), {})
    jobs = Jobs()
    s = sampler_mod.Sampler(w, jobs, [], 0.2)
    s.take(0, time.monotonic() + 0.15)      # the pass misses the deadline on pid 4242
    s.take(1, time.monotonic() + 2.0)       # skipped while the read is out
    release.set()
    for j in list(s.state.blocked_by.values()):
        j.done.wait(10)
    s.take(2, time.monotonic() + 2.0)       # the read came back: tried again
    w.close(ended_at="t")
    assert seen == [False, True, False]
    assert s.state.blocked == {} and s.state.blocked_by == {}

def test_cgroup_follower_reads_the_groups_that_matter_every_tick_and_accounts_its_cost(tmp_path, monkeypatch):
    """The series: the chosen groups' series files each tick, a new group near its
    limit picked up at the next reselection, reads spaced out when they cost too much."""
    import json as _json

    from snapcollect.collect.sources import cgroups

    def group(rel, mib, limit_mib=None, procs=""):
        d = tmp_path / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / "memory.current").write_text(f"{mib << 20}\n")
        (d / "memory.max").write_text(f"{limit_mib << 20}\n" if limit_mib else "max\n")
        (d / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
        (d / "memory.stat").write_text(f"anon {mib << 20}\nfile 0\n")
        (d / "memory.low").write_text("0\n")          # not a series file
        (d / "cgroup.procs").write_text(procs)

    (tmp_path / "memory.stat").write_text("anon 1\nfile 2\n")
    (tmp_path / "cgroup.procs").write_text("1\n2\n")
    group("web", 100, procs="10\n")
    f = cgroups.Follower(2, str(tmp_path), 1.0, ["/web"])
    got = f.tick()
    doc = _json.loads(got.data)
    assert got.status == "ok" and list(doc["groups"]) == ["/", "/web"]
    assert doc["groups"]["/web"]["cgroup.procs"] == "10\n" and "memory.low" not in doc["groups"]["/web"]
    assert "cgroup.procs" not in doc["groups"]["/"]            # the root's lists every process
    group("batch/job", 95, 100)                               # appears at 95% of its limit
    for _ in range(cgroups.RESELECT_EVERY - 1):
        assert "/batch/job" not in _json.loads(f.tick().data)["groups"]
    doc = _json.loads(f.tick().data)
    assert ["/batch", "/batch/job"] == [g for g in doc["groups"] if g.startswith("/batch")]
    cost = f.cost()
    assert cost["reads"] == cgroups.RESELECT_EVERY + 1 and cost["walks"] == 2 and cost["groups"] == 4
    assert cost["every_ticks"] == 1 and cost["last_walk"]["dirs"] == 4
    monkeypatch.setattr(cgroups, "CPU_SHARE", 1e-9)           # any read now costs "too much"
    f.tick()
    assert f.every == cgroups.MAX_EVERY
    skipped = [f.tick() for _ in range(cgroups.MAX_EVERY - 1)]
    assert skipped == [None] * (cgroups.MAX_EVERY - 1) and f.tick() is not None
    assert f.cost()["max_every_ticks"] == cgroups.MAX_EVERY


def test_median_of_the_collector_s_own_figures():
    from snapcollect.collect.median import median
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert median([7.5]) == 7.5
    with pytest.raises(ValueError):
        median([])


def test_collecting_imports_no_decimal_or_fractions():
    # statistics pulls both in (about 0.9 MB of RSS); the bound without BPF is 32 MB.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import sys, snapcollect.collect.runner; "
                          "print(sorted(m for m in ('statistics', 'decimal', 'fractions') if m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
