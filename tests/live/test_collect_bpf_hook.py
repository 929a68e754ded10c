"""The runner's side of BPF: real collections with a stand-in BPF process.

Real collections on this host (in-process, so that the stand-in process
of tests/unit/fake_bpf_process.py can take the BPF process's place): a
start as slow as a compile on a slow host moves the window and the
deadline and says so; a start over --bpf-start-timeout is killed and the
run goes on without BPF; a BPF process killed in the window costs only
what it had not written; --no-bpf starts no process at all.
"""

from __future__ import annotations

import os
import sys

import pytest

from snapcollect.collect.options import CollectOptions
from snapcollect.bundle import open_bundle
from snapcollect.collect import bpf_hook, runner

pytestmark = pytest.mark.live

FAKE = os.path.join(os.path.dirname(__file__), "..", "unit", "fake_bpf_process.py")


def _args(tmp_path, **kw):
    ns = CollectOptions(duration=2.0, interval=1.0, output=str(tmp_path), top=3, quiet=True).but(**kw)
    return ns


def _use_fake(monkeypatch, *flags):
    monkeypatch.setattr(bpf_hook, "bpf_process_command",
                        lambda out_fd: [sys.executable, FAKE, "--out-fd", str(out_fd), *flags])


def _whole_window(m) -> bool:
    """Every tick of a 2 s window at 1 s was scheduled (0, 1, 2 s); on a
    loaded machine one may be skipped as late (skipped_ticks), never cut."""
    return m["ticks"] + m["skipped_ticks"] == 3 and m["ticks"] >= 2


def _run(tmp_path, capsys, **kw) -> tuple[int, object, str]:
    code = runner.run_collection(_args(tmp_path, **kw))
    cap = capsys.readouterr()
    return code, open_bundle(cap.out.strip().splitlines()[-1]), cap.err


def test_slow_bpf_start_opens_the_window_later_and_moves_the_deadline(tmp_path, monkeypatch, capsys):
    _use_fake(monkeypatch, "--start-s", "2.5")
    code, b, _ = _run(tmp_path, capsys)
    m = b.manifest
    assert code == 0 and b.complete
    assert m["bpf"]["enabled"] is True and m["bpf"]["start_s"] >= 2.5
    # the whole window, not a window cut by the compile
    assert "shortened" not in m["window"] and _whole_window(m), m
    assert m["window"]["opened_late_s"] == pytest.approx(m["bpf"]["start_s"], abs=0.05)
    slack = runner.SLACK_S * m["host_speed"]["factor"]      # a slow host gets a longer end phase
    # The manifest rounds the factor to 2 decimals: the slack it gives is
    # off by up to SLACK_S x 0.005 from the one the collector used.
    assert m["deadline_s"] == pytest.approx(2.0 + slack + m["bpf"]["start_s"], abs=0.01 + runner.SLACK_S * 0.005)
    assert m["window"]["start_mono"] - m["clock"]["monotonic"] >= 2.5
    assert m["bpf_process"]["exit"] == "exited with status 0"
    assert b.status("bpf/fault_stacks.json")[0] == "ok"


def test_bpf_start_over_its_timeout_runs_without_bpf_and_says_so(tmp_path, monkeypatch, capsys):
    _use_fake(monkeypatch, "--start-s", "60")
    code, b, err = _run(tmp_path, capsys, quiet=False, bpf_start_timeout=1.0)
    m = b.manifest
    assert code == 0 and b.complete and _whole_window(m), m
    assert m["bpf"]["enabled"] is False and "--bpf-start-timeout" in m["bpf"]["reason"]
    assert m["bpf_process"]["exit"] == "killed by SIGKILL"
    assert "runs without BPF" in err
    assert not [a for a in b.artifacts() if a["name"] == "bpf/fault_stacks.json" and a["status"] == "ok"]


def test_bpf_process_killed_in_the_window_keeps_the_bundle(tmp_path, monkeypatch, capsys):
    _use_fake(monkeypatch, "--die-after-start")
    code, b, _ = _run(tmp_path, capsys)
    m = b.manifest
    assert code == 0 and _whole_window(m) and b.status("series/procs")[0] == "ok"
    assert "killed by SIGKILL" in m["bpf"]["error"]
    assert b.status("bpf/fault_stacks.json")[0] == "missing"
    assert b.status("bpf/oom_kill")[0] == "ok"
    assert m["bpf_process"]["pid"] in m["collector_pids"][1:]


def test_no_bpf_starts_no_process(tmp_path, monkeypatch, capsys):
    _use_fake(monkeypatch)
    code, b, _ = _run(tmp_path, capsys, no_bpf=True, duration=1.0)
    assert code == 0 and b.complete
    assert b.manifest["bpf"] == {"enabled": False, "reason": "--no-bpf"}
    assert "bpf_process" not in b.manifest and "opened_late_s" not in b.manifest["window"]
    assert not [a for a in b.artifacts() if a["name"].startswith("bpf/")]
