"""The runner's side of BPF, with stand-in sessions that misbehave.

Real collections on this host (in-process, so the stand-in session can be
injected): a session whose start overruns its deadline is abandoned and
the window is shortened to keep the run's bound; one whose poll or finish
raises leaves a note and the run goes on; a good one is polled between
ticks and finished after the end snapshot.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import types

import pytest

from snapcollect.bundle import open_bundle
from snapcollect.collect import runner

pytestmark = pytest.mark.live


def _args(tmp_path, **kw):
    ns = argparse.Namespace(duration=2.0, interval=1.0, output=str(tmp_path), top=3, no_bpf=False,
                            fault_sample=None, kernel_stacks=False, print_bpf=False, quiet=True)
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def _install_session(monkeypatch, cls):
    mod = types.ModuleType("snapcollect.collect.bpf.session")
    mod.BpfSession = cls
    monkeypatch.setitem(sys.modules, "snapcollect.collect.bpf.session", mod)


def _run(tmp_path, capsys, **kw) -> tuple[int, object]:
    code = runner.run_collection(_args(tmp_path, **kw))
    out = capsys.readouterr().out.strip().splitlines()
    return code, open_bundle(out[-1])


def test_good_session_is_polled_and_finished(tmp_path, monkeypatch, capsys):
    calls = {"poll": 0, "finish": 0, "start_deadline": None}

    class Good:
        @classmethod
        def start(cls, args, writer, deadline_mono):
            calls["start_deadline"] = deadline_mono - writer.manifest["clock"]["monotonic"]
            writer.merge_manifest("bpf", enabled=True, compile_s=0.01)
            writer.declare_stream("bpf/oom_kill")
            return cls()

        def poll(self, timeout_s):
            assert 0 < timeout_s <= 0.25
            calls["poll"] += 1
            time.sleep(timeout_s)

        def finish(self):
            calls["finish"] += 1

    _install_session(monkeypatch, Good)
    code, b = _run(tmp_path, capsys)
    assert code == 0 and b.complete
    assert calls["poll"] >= 4 and calls["finish"] == 1
    assert 3.0 <= calls["start_deadline"] <= runner.BPF_BUDGET_S + 0.01
    assert b.manifest["bpf"] == {"enabled": True, "compile_s": 0.01}
    assert b.status("bpf/oom_kill")[0] == "ok"


def test_start_overrunning_its_deadline_is_abandoned_and_window_cut(tmp_path, monkeypatch, capsys):
    release = threading.Event()

    class Slow:
        @classmethod
        def start(cls, args, writer, deadline_mono):
            release.wait(60)     # a compile that ignores its deadline
            return cls()

    _install_session(monkeypatch, Slow)
    code, b = _run(tmp_path, capsys)
    release.set()
    m = b.manifest
    assert code == 0
    assert m["bpf"]["enabled"] is False and "abandoned" in m["bpf"]["reason"]
    # set-up took ~4 s of the 5 s slack: the 2 s window was cut to keep the bound
    assert "shortened" in m["window"]
    assert m["ticks"] + m["skipped_ticks"] <= 2
    assert m["window"]["end_mono"] <= m["clock"]["monotonic"] + m["deadline_s"] - runner.END_RESERVE_S + 0.01
    assert b.status("proc/meminfo@end")[0] == "ok"


def test_poll_and_finish_errors_are_noted_not_fatal(tmp_path, monkeypatch, capsys):
    class Broken:
        @classmethod
        def start(cls, args, writer, deadline_mono):
            return cls()

        def poll(self, timeout_s):
            raise RuntimeError("perf buffer gone")

        def finish(self):
            raise ValueError("cannot detach")

    _install_session(monkeypatch, Broken)
    code, b = _run(tmp_path, capsys)
    m = b.manifest
    assert code == 0
    assert "perf buffer gone" in m["bpf"]["error"] or "cannot detach" in m["bpf"]["error"]
    assert not b.complete and "BPF finish" in m["stop_reason"]
    assert m["ticks"] >= 2 and b.status("series/procs")[0] == "ok"


def test_import_error_and_no_bpf(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "snapcollect.collect.bpf.session", None)   # import fails
    code, b = _run(tmp_path, capsys)
    assert code == 0 and b.complete
    assert b.manifest["bpf"]["enabled"] is False and "could not be loaded" in b.manifest["bpf"]["reason"]
    code, b = _run(tmp_path, capsys, no_bpf=True, duration=1.0)
    assert b.manifest["bpf"] == {"enabled": False, "reason": "--no-bpf"}
    assert not [a for a in b.artifacts() if a["name"].startswith("bpf/")]
