"""``snapcollect doctor``: per capability works / does not / why / fix."""

from __future__ import annotations

import json

import pytest

from snapcollect.collect.options import CollectOptions
from snapcollect.collect import doctor
from snapcollect.collect.bpf import capabilities
from snapcollect.collect.bpf.capabilities import Problem


@pytest.fixture
def no_compile(monkeypatch):
    # the real compile is exercised by the live tests
    monkeypatch.setattr(doctor, "check_bpf_load",
                        lambda args: [doctor.Check("BPF compile", True, "0.50 s", group="bpf")])


def test_text_output_fits_80_columns_and_exit_is_0_when_core_works(no_compile, capsys):
    rc = doctor.run_doctor(CollectOptions(json=False))
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    assert "core collection: works" in out and rc == 0
    for name in ("/proc memory files", "free disk space", "root", "PSI", "cgroup memory controller",
                 "/dev/kmsg", "command numastat", "bcc (python3-bpfcc)", "kernel headers", "tracefs"):
        assert name in out, name


def test_missing_pieces_say_why_and_how_to_fix(monkeypatch, capsys):
    monkeypatch.setattr(capabilities, "privilege_problem",
                        lambda: Problem("not running as root (uid 1000)", capabilities.ROOT_REMEDY))
    monkeypatch.setattr(capabilities, "bcc_problem",
                        lambda: (None, Problem("the bcc Python bindings are not installed",
                                               "install Debian's python3-bpfcc")))
    monkeypatch.setattr(capabilities, "find_headers", lambda release=None: (None, None))
    monkeypatch.setattr(capabilities, "tracefs_problem",
                        lambda: (None, Problem("tracefs is not mounted", capabilities.MOUNT_REMEDY)))
    monkeypatch.setattr(doctor.shutil, "which", lambda cmd: None if cmd == "numastat" else f"/usr/bin/{cmd}")
    rc = doctor.run_doctor(CollectOptions(json=True))
    doc = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert rc == 0 and doc["core_ok"] and not doc["bpf_ok"]
    assert checks["root"]["fix"].startswith("run as root")
    assert "python3-bpfcc" in checks["bcc (python3-bpfcc)"]["fix"]
    assert "linux-headers" in checks["kernel headers"]["fix"]
    assert checks["tracefs"]["fix"].startswith("mount tracefs")
    assert checks["command numastat"]["fix"] == "apt-get install numactl"
    assert checks["BPF compile"]["detail"].startswith("not tried: needs root, bcc")
    assert not checks["tracepoints"]["ok"]


def test_core_failure_exits_1(monkeypatch, no_compile, capsys):
    monkeypatch.setattr(doctor, "check_disk", lambda path=".": doctor.Check(
        "free disk space", False, "3 MiB free in /x", "give -o DIR", True))
    assert doctor.run_doctor(CollectOptions(json=False)) == 1
    assert "core collection: DOES NOT WORK" in capsys.readouterr().out


def test_old_mark_victim_is_explained(monkeypatch, tmp_path):
    ev = tmp_path / "events" / "oom" / "mark_victim"
    ev.mkdir(parents=True)
    (ev / "format").write_text("name: mark_victim\nformat:\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n")
    checks = {c.name: c for c in doctor.check_tracepoints(str(tmp_path))}
    assert checks["tracepoint oom:mark_victim"].ok and "6.8" in checks["tracepoint oom:mark_victim"].detail
    assert not checks["tracepoint vmscan:mm_vmscan_wakeup_kswapd"].ok
    assert "does not exist" in checks["tracepoint vmscan:mm_vmscan_wakeup_kswapd"].detail
