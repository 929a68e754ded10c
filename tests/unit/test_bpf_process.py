"""The BPF process as the collector supervises it, with a stand-in process.

tests/unit/fake_bpf_process.py speaks the protocol of collect/bpf/wire.py:
a start as slow as a compile on a slow host (11 s in a qemu guest), a
process killed after its start, a process that sends what is not a
writer call. The same decision functions serve collect (BpfHook) and
doctor (check_bpf_load); both are run against the same stand-in.
"""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

from snapcollect.collect.options import CollectOptions
from snapcollect.collect import bpf_hook, bpf_start, doctor
from snapcollect.collect.bpf import wire
from snapcollect.collect.headroom import Headroom

from collect_fakes import NoStop, RecordingWriter

FAKE = os.path.join(os.path.dirname(__file__), "fake_bpf_process.py")
PLENTY = Headroom(8 << 20, "MemAvailable")


def fake(*flags):
    def command(out_fd: int) -> list[str]:
        return [sys.executable, FAKE, "--out-fd", str(out_fd), *flags]
    return command


def _hook(limit_s, *flags, room=PLENTY):
    args = CollectOptions(bpf_start_timeout=limit_s)
    w = RecordingWriter()
    return bpf_hook.BpfHook(args, w, NoStop(), command=fake(*flags), room=lambda: room), w


def test_slow_start_is_waited_for_and_recorded():
    hook, w = _hook(10.0, "--start-s", "1.5")
    t = time.monotonic()
    hook.start()
    waited = time.monotonic() - t
    assert waited >= 1.5
    assert hook.enabled and hook.outcome.attached
    assert hook.outcome.waited_s == pytest.approx(w.manifest["bpf"]["start_s"], abs=0.001)
    assert 1.5 <= w.manifest["bpf"]["start_s"] <= waited + 0.01
    assert w.manifest["bpf"]["start_limit_s"] == 10.0
    hook.finish_async(time.monotonic() + 5)
    assert hook.wait_finish(time.monotonic() + 5)
    assert w.files["bpf/fault_stacks.json"] == b'{"samples": 0}'
    assert w.records["bpf/oom_kill"] == [{"t": 1.0, "pid": 42, "comm": "victim"}]
    assert w.manifest["bpf"]["process"]["exit"] == "exited with status 0"
    assert w.manifest["bpf"]["process"]["peak_rss_kb"] > 1000
    assert not w.missing


def test_start_over_the_limit_is_killed_and_the_run_goes_on_without_bpf():
    hook, w = _hook(1.0, "--start-s", "30")
    t = time.monotonic()
    hook.start()
    assert time.monotonic() - t < 1.0 + bpf_hook.EXIT_WAIT_S + 0.5
    assert not hook.enabled and not hook.outcome.attached
    bpf = w.manifest["bpf"]
    assert bpf["enabled"] is False and "--bpf-start-timeout" in bpf["reason"]
    hook.finish_async(time.monotonic() + 2)
    hook.wait_finish(time.monotonic() + 2)
    assert hook.process_cost["exit"] == "killed by SIGKILL"


def test_a_kill_of_the_bpf_process_loses_only_what_it_had_not_written():
    hook, w = _hook(10.0, "--die-after-start")
    hook.start()
    assert hook.enabled
    hook.finish_async(time.monotonic() + 3)
    hook.wait_finish(time.monotonic() + 3)
    # what came before the kill is kept, what was pending is named as lost
    assert w.records["bpf/oom_kill"][0]["comm"] == "victim"
    for name in ("bpf/fault_stacks.json", "bpf/majfault_by_proc"):
        status, reason = w.missing[name]
        assert status == "missing" and "killed by SIGKILL" in reason
    assert "killed by SIGKILL" in w.manifest["bpf"]["error"]
    assert w.manifest["bpf"]["process"]["exit"] == "killed by SIGKILL"


def test_messages_that_are_not_writer_calls_are_counted_not_applied():
    hook, w = _hook(10.0, "--hostile")
    hook.start()
    hook.finish_async(time.monotonic() + 3)
    hook.wait_finish(time.monotonic() + 3)
    assert w.manifest["bpf"]["bad_messages"] == 3
    assert w.streams == {"bpf/oom_kill"} and "x" not in w.files


def test_apply_call_refuses_anything_but_the_writer_methods():
    w = RecordingWriter()
    with pytest.raises(ValueError):
        wire.apply_call({"op": "call", "method": "__init__", "args": [], "kw": {}}, w)
    with pytest.raises(ValueError):
        wire.apply_call({"op": "call", "method": "add_file", "args": ["a", "b"], "kw": {1: 2}}, w)
    msg = wire.decode(wire.encode(wire.call_message("add_file", ("bpf/x", b"\x00\xff"), {})))
    assert wire.apply_call(msg, w) == "bpf/x" and w.files["bpf/x"] == b"\x00\xff"


def test_short_of_memory_no_process_is_started():
    hook, w = _hook(10.0, room=Headroom(40 * 1024, "cgroup v1 /footprint limit"))
    hook.start()
    assert hook.proc is None and not hook.enabled
    reason = w.manifest["bpf"]["reason"]
    assert "40 MiB left under cgroup v1 /footprint limit" in reason and "without BPF" in reason


def _doctor(limit_s, *flags, room=PLENTY):
    args = CollectOptions(bpf_start_timeout=limit_s)
    return {c.name: c for c in doctor.check_bpf_load(args, command=fake(*flags), room=lambda: room)}


@pytest.mark.parametrize("limit_s, attached", [(5.0, True), (0.5, False)])
def test_doctor_predicts_what_collect_does(limit_s, attached):
    checks = _doctor(limit_s, "--start-s", "1.2")
    hook, w = _hook(limit_s, "--start-s", "1.2")
    hook.start()
    hook.finish_async(time.monotonic() + 3)
    hook.wait_finish(time.monotonic() + 3)
    assert checks["BPF start"].ok is attached
    assert hook.outcome.attached is attached and hook.enabled is attached
    # doctor measured the real duration even when it is over the limit
    took = float(re.match(r"took (\d+\.\d) s here", checks["BPF start"].detail).group(1))
    assert 1.2 <= took < 5.0
    if attached:
        assert f"window opens {took:.1f} s later" in checks["BPF start"].detail
    else:
        assert "without BPF" in checks["BPF start"].detail
        assert "--bpf-start-timeout 30" in checks["BPF start"].fix


def test_doctor_short_of_memory_says_collect_will_not_start_bpf():
    checks = _doctor(5.0, room=Headroom(40 * 1024, "cgroup v2 /x limit"))
    assert not checks["memory for the BPF compile"].ok
    assert checks["memory for the BPF compile"].detail == bpf_start.may_start(
        CollectOptions(), Headroom(40 * 1024, "cgroup v2 /x limit")).reason
    assert not checks["BPF start"].ok and "BPF compile" not in checks


def test_doctor_names_each_perf_event_once():
    checks = doctor.check_bpf_load(CollectOptions(bpf_start_timeout=5.0), command=fake(),
                                   room=lambda: PLENTY)
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    assert [n for n in names if n.startswith("perf event")] == [
        "perf event major-faults (per-process counts)", "perf event page-faults (fault stack sampler)"]


def test_outcome_and_suggestion():
    assert bpf_start.outcome(11.0, 30.0).attached
    late = bpf_start.outcome(None, 5.0)
    assert not late.attached and late.waited_s == 5.0
    assert bpf_start.suggested_timeout_s(11.0) == 30 and bpf_start.suggested_timeout_s(20.0) == 45
