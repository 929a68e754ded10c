"""BPF events on this machine, for real: an OOM kill in a memory cgroup,
page faults and brk/mmap growth of programs with known function names,
and collections without root and with --no-bpf.

Runs as root with bcc, kernel headers and tracefs; a test is skipped only
when one of those is genuinely absent, and says which.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from bpf_harness import (FAULT_C, LIGHT_FAULT_C, cold_mmap_reader, release_after, GROW_C, MEMCG_V1, OOM_C, DirectSession, MemcgV1, bpf_missing, compile_c,
                         kernel_log, proc_stat_faults)
from snapcollect.bundle.reader import open_bundle
from snapcollect.collect.bpf import capabilities
from snapcollect.parsers.bpf_events import ARTIFACTS, load_bpf_data

pytestmark = [pytest.mark.live]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SNAPCOLLECT = [sys.executable, "-m", "snapcollect"]




needs_bpf = pytest.mark.skipif(bpf_missing() is not None, reason=f"BPF: {bpf_missing()}")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
needs_memcg_v1 = pytest.mark.skipif(not os.path.exists(os.path.join(MEMCG_V1, "memory.limit_in_bytes")),
                                    reason="no cgroup v1 memory controller at /sys/fs/cgroup/memory")


def _data(bundle):
    names = [a["name"] for a in bundle.artifacts() if a["name"].startswith("bpf/")]
    return load_bpf_data({n: bundle.records(n) for n in names}, {n: bundle.status(n) for n in names},
                         bundle.manifest, {n: bundle.data(n) for n in names if bundle.data(n)})


def _killed_line(pid: int) -> str:
    for _ in range(20):
        for line in kernel_log():
            if f"Killed process {pid} " in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no 'Killed process {pid}' line in the kernel log")


# -- (a) OOM kill in a 64 MiB memory cgroup -----------------------------------


@needs_bpf
@needs_gcc
@needs_memcg_v1
@pytest.mark.bpf
def test_memcg_oom_kill_is_recorded_with_pid_comm_rss_and_reclaim(tmp_path):
    exe = compile_c(OOM_C, str(tmp_path / "sc-bpf-oom"))
    s = DirectSession(str(tmp_path))
    assert s.writer.manifest["bpf"]["enabled"], s.writer.manifest["bpf"]
    with MemcgV1("snapcollect-test-bpf-oom") as cg:
        victim = cg.spawn([exe])
        s.poll_while(victim)
    bundle = s.close()
    assert victim.returncode == -9, f"the victim was not OOM-killed (exit {victim.returncode})"

    data = _data(bundle)
    kills = [k for k in data.oom_kills if k.victim_pid == victim.pid]
    assert len(kills) == 1, data.oom_kills
    kill = kills[0]
    assert kill.victim_comm == "sc-bpf-oom"
    assert kill.trigger_pid == victim.pid and kill.trigger_comm == "sc-bpf-oom"
    assert kill.memcg is True, "kernel stack should show mem_cgroup_out_of_memory"
    line = _killed_line(victim.pid)
    logged = int(re.search(r"anon-rss:(\d+)kB", line).group(1))
    assert abs(kill.anon_rss_kb - logged) <= 0.03 * logged, (kill.anon_rss_kb, line)
    # the memcg is 64 MiB: the victim held about that much
    assert 40 * 1024 <= kill.anon_rss_kb <= 70 * 1024, kill.anon_rss_kb

    mine = [r for r in data.reclaim if r.pid == victim.pid and r.kind == "memcg"]
    assert mine, "no memcg reclaim event for the victim"
    assert all(r.latency_us >= 0 and r.comm == "sc-bpf-oom" for r in mine)
    assert all(r.gfp_flags and r.gfp_flags != "none" for r in mine)
    assert victim.pid in {r["pid"] for r in bundle.records("bpf/reclaim")}


@needs_bpf
@needs_gcc
@needs_memcg_v1
@pytest.mark.bpf
def test_cli_collection_holds_the_oom_kill_and_the_report_shows_it(tmp_path):
    exe = compile_c(OOM_C, str(tmp_path / "sc-bpf-oom"))
    out = tmp_path / "out"
    out.mkdir()
    # The sampler open all the time: the victim faults in one burst of a few
    # tens of ms, which the default duty cycle (open 0.1 s in 0.5 s) misses
    # more often than not, and this test is about whose stacks are kept.
    collector = subprocess.Popen(SNAPCOLLECT + ["collect", "-d", "6", "-q", "--fault-duty", "100",
                                                "-o", str(out)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_sampling(out, collector)
        with MemcgV1("snapcollect-test-bpf-oom-cli") as cg:
            victim = cg.spawn([exe])
            victim.wait(60)
        stdout, stderr = collector.communicate(timeout=60)
    finally:
        if collector.poll() is None:
            collector.kill()
    assert collector.returncode == 0, stderr
    assert victim.returncode == -9
    path = stdout.strip().splitlines()[-1]
    bundle = open_bundle(path)
    recs = [r for r in bundle.records("bpf/oom_kill") if r["pid"] == victim.pid]
    assert len(recs) == 1 and recs[0]["comm"] == "sc-bpf-oom", bundle.records("bpf/oom_kill")
    # The collector and its BPF process fault too (symbol tables at the end):
    # those are its own cost, never stacks of the incident.
    own = set(bundle.manifest["collector_pids"])
    assert len(own) >= 2, own      # the collector and its BPF process at least
    sampled = {p["pid"] for p in json.loads(bundle.text("bpf/fault_stacks.json"))["processes"]}
    assert sampled and not (sampled & own), (sampled, own)

    md = subprocess.run(SNAPCOLLECT + ["report", path], cwd=REPO, capture_output=True, text=True, check=True).stdout
    section = md.split('<a id="oom"></a>', 1)[1].split("<a id=", 1)[0]
    assert re.search(rf"\|\s*{victim.pid}\s*\|\s*sc-bpf-oom\s*\|", section), section
    assert "memcg /snapcollect-test-bpf-oom-cli" in section, section
    assert f"Killed process {victim.pid} (sc-bpf-oom)" in section, section


def _wait_for_sampling(out, collector, limit_s: float = 30) -> None:
    """Until the partial bundle holds a tick: BPF is attached before the first one."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        assert collector.poll() is None, collector.communicate()[1]
        for name in os.listdir(out):
            if name.endswith(".partial"):
                try:
                    if open_bundle(os.path.join(out, name)).ticks:
                        return
                except Exception:  # noqa: BLE001 - caught mid-member
                    pass
        time.sleep(0.1)
    raise AssertionError("the collector did not start sampling")


# -- (b) page-fault stacks of a program with known function names --------------


@needs_bpf
@needs_gcc
@pytest.mark.bpf
@pytest.mark.parametrize("options, sampler", [
    ({"fault_duty": 100}, "perf"),            # perf event page-faults, 1 in N, open all the time
    ({"fault_sample": 1}, "tracepoint"),      # every fault: the tracepoint
    ({"kernel_stacks": True}, "tracepoint"),  # kernel stacks: the tracepoint
], ids=["perf-open", "every-fault", "kernel-stacks"])
def test_fault_stacks_name_the_functions_and_match_minflt(tmp_path, options, sampler):
    exe = compile_c(FAULT_C, str(tmp_path / "sc-faulter"))
    s = DirectSession(str(tmp_path), **options)
    assert s.writer.manifest["bpf"]["fault_sampler"]["kind"] == sampler, s.writer.manifest["bpf"]
    period = s.session.plan.fault_period
    # 16 x 64 MiB = 262144 fresh pages: enough that sampling error is small
    proc = subprocess.Popen([exe, "16"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    s.poll_until_line(proc, "done")
    s.session.poll(1.2)     # one more symbol pass while it lives
    minflt, _majflt = proc_stat_faults(proc.pid)
    proc.stdin.write("x\n")
    proc.stdin.flush()
    s.poll_while(proc)
    bundle = s.close()
    assert proc.returncode == 0

    folded = bundle.text("bpf/fault_stacks.folded").splitlines()
    mine = [ln for ln in folded if ln.startswith("sc-faulter;")]
    # the user frames end in sc_fault_touch; kernel frames may follow
    assert any(re.search(r";main;sc_fault_outer;sc_fault_touch[ ;]", ln) for ln in mine), mine[:5]
    meta = json.loads(bundle.text("bpf/fault_stacks.json"))
    assert meta["sample_period"] == period and meta["sampler"] == sampler
    est = next(p["faults_estimated"] for p in meta["processes"] if p["pid"] == proc.pid)
    # 1-in-N sampling of F faults: the error is at most about N per CPU
    # when the process runs alone, and behaves like sqrt(F * N) when other
    # processes interleave their faults on the same CPUs. The perf event
    # counts user- and kernel-mode faults as minflt does; the tracepoint
    # user-mode ones only, which here are nearly all of them.
    tolerance = 4 * math.sqrt(minflt * period) + period * os.cpu_count()
    assert abs(est - minflt) <= tolerance, (est, minflt, tolerance)
    touched = sum(int(ln.rsplit(" ", 1)[1]) for ln in mine if "sc_fault_touch" in ln)
    assert abs(touched - 16 * 16384) <= tolerance, (touched, tolerance)
    if options.get("kernel_stacks"):
        # the tracepoint fires on entry to the fault handler, before
        # handle_mm_fault: the kernel stack ends in exc_page_fault
        assert any(";sc_fault_touch;" in ln and ";exc_page_fault_[k]" in ln for ln in mine), mine[:5]


@needs_bpf
@needs_gcc
@pytest.mark.bpf
def test_fault_sampler_open_a_fifth_of_the_time_still_estimates_a_steady_faulter(tmp_path):
    """The default duty cycle (fault_duty.py): the sampler is open 0.1 s in every 0.5 s, and the
    counts are scaled by the window over the time it was open."""
    exe = compile_c(FAULT_C, str(tmp_path / "sc-faulter"))
    s = DirectSession(str(tmp_path))
    sampler = s.writer.manifest["bpf"]["fault_sampler"]
    assert sampler["kind"] == "perf" and sampler["duty"]["duty_pct"] == 20, sampler
    # 160 x 64 MiB: 2.6M fresh pages, several seconds, many cycles
    proc = subprocess.Popen([exe, "160"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    s.poll_until_line(proc, "done")
    s.session.poll(1.2)
    minflt, _ = proc_stat_faults(proc.pid)
    proc.stdin.write("x\n")
    proc.stdin.flush()
    s.poll_while(proc)
    bundle = s.close()
    meta = json.loads(bundle.text("bpf/fault_stacks.json"))
    duty = meta["duty"]
    assert duty["phases"] >= 8 and 0.1 < duty["open_share"] < 0.45, duty
    assert duty["scale"] == pytest.approx(duty["window_s"] / duty["open_s"], rel=0.01)
    est = next(p["faults_estimated"] for p in meta["processes"] if p["pid"] == proc.pid)
    # a steady faulter: the error is the phase it started and ended in (at
    # most one open phase's worth each) plus the sampling error
    n = meta["sample_period"] * duty["scale"]
    tolerance = 0.25 * minflt + 4 * math.sqrt(minflt * n)
    assert abs(est - minflt) <= tolerance, (est, minflt, tolerance, duty)
    mine = [ln for ln in bundle.text("bpf/fault_stacks.folded").splitlines() if ln.startswith("sc-faulter;")]
    assert any(";sc_fault_outer;sc_fault_touch" in ln for ln in mine), mine[:5]
    assert bundle.manifest["bpf"]["fault_sampler"]["duty"]["open_s"] == duty["open_s"]


@needs_bpf
@needs_gcc
@pytest.mark.bpf
def test_a_light_faulter_is_counted_through_the_carry_between_phases(tmp_path):
    """About 640 faults a second: fewer than 128 per CPU in a 0.1 s phase. A
    sampler that started each phase afresh would record none of them; the
    per-CPU carry hands each phase's rest on to the next one."""
    exe = compile_c(LIGHT_FAULT_C, str(tmp_path / "sc-light"))
    s = DirectSession(str(tmp_path))
    sampler = s.writer.manifest["bpf"]["fault_sampler"]
    assert sampler["kind"] == "perf" and sampler["event_period"] == 16, sampler
    proc = subprocess.Popen([exe, "240"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    s.poll_until_line(proc, "ready")
    s.poll_until_line(proc, "done")         # 12 s, 24 cycles
    minflt, _ = proc_stat_faults(proc.pid)
    bundle = release_after(s, proc, live_s=1.2)
    meta = json.loads(bundle.text("bpf/fault_stacks.json"))
    duty = meta["duty"]
    assert duty["carry"] is True and duty["carry_error"] is None and duty["count_errors"] == 0, duty
    assert duty["carried"] > 0 and duty["faults_open"] >= duty["carried"], duty
    mine = [p for p in meta["processes"] if p["pid"] == proc.pid]
    assert mine and mine[0]["samples"] >= 3, (mine, minflt, duty)
    print(f"sc-light: {minflt} faults, {mine[0]['samples']} samples, estimated {mine[0]['faults_estimated']}; "
          f"open {duty['open_share']:.0%}, {duty['faults_open']} faults while open, {duty['carried']} carried")
    # ~7,700 faults, ~1,500 of them while open: ~12 samples, so about +-30 %
    # one sigma, and the estimate is scaled by window / open
    assert 0.3 * minflt <= mine[0]["faults_estimated"] <= 3 * minflt, (mine, minflt, duty)
    folded = [ln for ln in bundle.text("bpf/fault_stacks.folded").splitlines() if ln.startswith("sc-light;")]
    assert any(";sc_light_touch" in ln for ln in folded), folded[:5]


@needs_bpf
@pytest.mark.bpf
def test_major_faults_per_process_match_majflt(tmp_path):
    """A cold file read through mmap: its major faults, per process."""
    script = cold_mmap_reader(tmp_path / "cold.bin")
    s = DirectSession(str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    s.poll_until_line(proc, "done")
    _minflt, majflt = proc_stat_faults(proc.pid)
    bundle = release_after(s, proc)
    doc = json.loads(bundle.text("bpf/majfault_by_proc"))
    counted = sum(r["majfaults"] for r in doc["processes"] if r["pid"] == proc.pid)
    assert majflt > 100, f"the file was not cold: only {majflt} major faults"
    # every major fault is counted (no sampling); python's own start-up
    # may add a few before we read /proc
    assert majflt <= counted <= majflt + 20, (counted, majflt)


# -- (c) brk / mmap growth of a known program ---------------------------------


@needs_bpf
@needs_gcc
@pytest.mark.bpf
def test_brk_and_mmap_growth_is_attributed_to_the_program(tmp_path):
    exe = compile_c(GROW_C, str(tmp_path / "sc-grower"))
    s = DirectSession(str(tmp_path), heap_trace=True)
    proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    s.poll_until_line(proc, "done")
    s.session.poll(1.2)     # a symbol pass runs while it lives
    proc.stdin.write("x\n")
    proc.stdin.flush()
    s.poll_while(proc)
    bundle = s.close()
    assert proc.returncode == 0
    entries = [e for e in json.loads(bundle.text("bpf/heap_growth"))["entries"] if e["pid"] == proc.pid]
    assert entries and all(e["comm"] == "sc-grower" for e in entries)
    brk = next(e for e in entries if e["syscall"] == "brk")
    # 32 x sbrk(1 MiB); libc's own start-up may add a few pages
    assert 32 << 20 <= brk["bytes"] <= (32 << 20) + (1 << 20), brk["bytes"]
    assert brk["calls"] >= 32
    # glibc's sbrk() keeps no frame pointer: the stack stops in libc, but
    # it is symbolized (the process was alive when it was read)
    grower = max(brk["stacks"], key=lambda st: st["bytes"])
    assert grower["bytes"] >= 32 << 20 and grower["frames"][-1] in ("brk", "__brk", "sbrk"), brk["stacks"]
    anon = next(e for e in entries if e["syscall"] == "mmap" and e["kind"] == "anon")
    assert anon["bytes"] >= 4 * (16 << 20)
    top = max(anon["stacks"], key=lambda st: st["bytes"])
    assert top["bytes"] == 4 * (16 << 20) and top["calls"] == 4, top
    assert "sc_map_phase" in top["frames"], top
    if capabilities.task_regs_problem() is None:
        # the wrapper's caller, which the walk skips, put back from the SP word
        at = top["frames"].index("sc_map_phase")
        assert top["frames"][at:at + 3] == ["sc_map_phase", "sc_map_grower", "mmap"], top
        leaf = json.loads(bundle.text("bpf/heap_growth"))["leaf_frames"]
        assert leaf["recovered"] >= 4 and leaf["counted_in"] == "calls", leaf


# -- (d) without root, and with --no-bpf ----------------------------------------


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to switch to an ordinary user")
def test_collection_without_root_says_why_bpf_is_absent():
    # pytest's tmp_path lives under a 0700 directory of root's: use our own
    out = tempfile.mkdtemp(prefix="snapcollect-nonroot-")
    try:
        os.chmod(out, 0o777)
        env = dict(os.environ, PYTHONPATH=REPO, HOME=out)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + SNAPCOLLECT
                           + ["collect", "-d", "2", "-q", "-o", out], cwd=out, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        bundle = open_bundle(r.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert bundle.manifest["bpf"]["enabled"] is False
    for name in ARTIFACTS:
        entry = bundle.entry(name)
        assert entry is not None, f"{name} not in the manifest"
        assert entry["status"] == "unavailable", entry
        assert "root" in entry["reason"], entry
        assert entry["remedy"].startswith("run as root"), entry
    data = _data(bundle)
    assert all(st == "unavailable" and "to fix: run as root" in why for st, why in data.available.values())


def test_cli_no_bpf_collects_and_says_why(tmp_path):
    r = subprocess.run(SNAPCOLLECT + ["collect", "-d", "2", "-q", "--no-bpf", "-o", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    bundle = open_bundle(r.stdout.strip().splitlines()[-1])
    data = _data(bundle)
    for name in ARTIFACTS:
        status, why = data.available[name]
        assert status != "ok" and "no-bpf" in (why or ""), (name, status, why)


# -- (f) symbols without bcc name what bcc names -----------------------------------


@needs_bpf
@needs_gcc
@pytest.mark.bpf
def test_symbols_without_bcc_match_bccs_on_the_same_stacks(tmp_path):
    """The reader's symbolizer (procsyms.py: /proc/PID/maps + ELF symbol
    tables) against bcc's symbol cache, on the addresses of the same
    recorded stacks of a live test program: the same function for every
    frame of the program and of the C library (of aliases at one address,
    either name: bcc's choice among them is not defined)."""
    from snapcollect.collect.bcc_loader import load_bcc
    from snapcollect.collect.bpf.procsyms import ProcSymbolizer

    bcc = load_bcc()
    exe = compile_c(FAULT_C, str(tmp_path / "sc-faulter"))
    s = DirectSession(str(tmp_path), fault_sample=16)
    proc = subprocess.Popen([exe, "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        s.poll_until_line(proc, "done")
        maps = s.session.bpf
        stacks = maps.table("stacks")
        ids = {k.ustack for k, _v in maps.items("fault_counts") if k.tgid == proc.pid and k.ustack >= 0}
        assert ids, "no stacks recorded for the test program"
        ours = ProcSymbolizer()
        ours.warm(proc.pid)
        theirs = bcc.SymbolCache(proc.pid)
        compared = 0
        seen = set()
        differ = []
        for sid in sorted(ids):
            for addr in stacks.addresses(sid):
                name, _off, module = theirs.resolve(addr, False)
                if not name or not module:
                    continue
                path = module
                module = os.path.basename(module.decode())
                if module != "sc-faulter" and not module.startswith("libc"):
                    continue
                got = ours.user_frame(proc.pid, addr)
                # aliases (several names at one address) name the same code
                if got != name.decode() and (module == "sc-faulter" or got.startswith("[")
                                             or theirs.resolve_name(path, got.encode()) !=
                                             theirs.resolve_name(path, name)):
                    differ.append((hex(addr), module, got, name.decode()))
                compared += 1
                seen.add(name.decode())
        assert not differ, differ
        assert compared and {"sc_fault_touch", "sc_fault_outer", "main"} <= seen, seen
    finally:
        proc.stdin.write("x\n")
        proc.stdin.flush()
        s.poll_while(proc)
        s.close()
