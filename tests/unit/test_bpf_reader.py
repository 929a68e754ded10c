"""When BPF cannot run: every artifact unavailable, with a reason and a
remedy, and the collection goes on. The loader's checks (loader.load) run
in this process; the reader (ReaderSession) gets what a loader would hand
over from a stand-in loader process. No compile happens here."""

from __future__ import annotations

import json
import sys
import time
import types

import pytest

from snapcollect.collect.options import CollectOptions
from snapcollect.bundle.reader import open_bundle
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect.bpf import capabilities, host_plan, loader
from snapcollect.collect.bpf.capabilities import Problem
from snapcollect.collect.bpf.reader import ReaderSession
from snapcollect.parsers.bpf_events import ARTIFACTS


def _args(**kw):
    return CollectOptions(**kw)


STAND_IN = """
import json, socket, sys
from snapcollect.collect.bpf import handoff
sock = socket.socket(fileno=int(sys.argv[2]))
request = json.loads(sock.recv(65536))
handoff.send(sock, json.loads(sys.argv[1]), [])
"""


def stand_in_loader(problem: Problem | None, formats=None):
    """argv of a loader that hands over no maps and says why."""
    doc = {"load": {"info": {"compile_s": 0.5}, "unavailable": {},
                    "problem": [problem.reason, problem.remedy] if problem else None,
                    "formats": formats, "fault_sampler": {}, "plan": None},
           "maps": [], "links": []}
    return lambda fd: [sys.executable, "-c", STAND_IN, json.dumps(doc), str(fd)]


def _run(tmp_path, args, deadline_s=60.0, **kw):
    path = str(tmp_path / "b.tar.zst")
    w = BundleWriter(path, {"clock": {"wall": time.time(), "monotonic": time.monotonic()}})
    s = ReaderSession.start(args, w, time.monotonic() + deadline_s, **kw)
    t0 = time.monotonic()
    s.poll(0.2)
    waited = time.monotonic() - t0
    s.finish()
    w.close(complete=True)
    return open_bundle(path), waited


def _assert_all_unavailable(bundle, words: str, remedy: str):
    for name in ARTIFACTS:
        e = bundle.entry(name)
        assert e is not None, name
        assert e["status"] == "unavailable" and words in e["reason"], e
        assert remedy in e["remedy"], e
    assert bundle.manifest["bpf"]["enabled"] is False
    assert set(bundle.manifest["bpf"]["unavailable"]) == set(ARTIFACTS)


def test_no_bpf(tmp_path):
    bundle, waited = _run(tmp_path, _args(no_bpf=True))
    _assert_all_unavailable(bundle, "--no-bpf", "run without --no-bpf")
    assert waited >= 0.15, "poll() waits its timeout even without BPF"


def test_not_root(tmp_path, monkeypatch):
    monkeypatch.setattr(capabilities, "privilege_problem",
                        lambda: Problem("not running as root (uid 1000): loading BPF programs needs root",
                                        capabilities.ROOT_REMEDY))
    bundle, _ = _run(tmp_path, _args())
    _assert_all_unavailable(bundle, "not running as root", "run as root")


def test_the_loaders_reason_makes_every_artifact_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    why = Problem("the bcc Python bindings are not installed", "install Debian's python3-bpfcc")
    bundle, _ = _run(tmp_path, _args(), command=stand_in_loader(why, formats={"oom:mark_victim": "fmt"}))
    _assert_all_unavailable(bundle, "bcc", "python3-bpfcc")
    info = bundle.manifest["bpf"]
    assert info["compile_s"] == 0.5 and info["loader"]["exit"] == "exited with status 0"
    assert info["loader"]["peak_rss_kb"] > 0 and info["reader_peak_rss_kb"] > 0
    assert bundle.entry("bpf/tracepoint_formats")["status"] == "ok"


def test_a_loader_that_dies_before_its_handoff(tmp_path, monkeypatch):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    bundle, _ = _run(tmp_path, _args(), command=lambda fd: [sys.executable, "-c", "import sys; sys.exit(4)"])
    _assert_all_unavailable(bundle, "handoff failed", "doctor")
    assert "(the loader exited with status 4)" in bundle.entry("bpf/oom_kill")["reason"]
    assert bundle.manifest["bpf"]["loader"]["exit"] == "exited with status 4"


def test_no_bcc(monkeypatch):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    monkeypatch.setattr(capabilities, "bcc_problem",
                        lambda: (None, Problem("the bcc Python bindings are not installed",
                                               "install Debian's python3-bpfcc")))
    loaded = loader.load(_args(), time.monotonic() + 60)
    assert loaded.bpf is None and "bcc" in loaded.problem.reason
    doc, fds = loader.describe(loaded)
    assert fds == [] and doc["maps"] == [] and "python3-bpfcc" in doc["load"]["problem"][1]


@pytest.mark.parametrize("which, words, remedy", [
    ("tracefs", "tracefs is not mounted", "mount -t tracefs nodev /sys/kernel/tracing"),
    ("headers", "no kernel headers", "apt-get install linux-headers-$(uname -r)"),
])
def test_no_tracefs_or_headers(monkeypatch, which, words, remedy):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    monkeypatch.setattr(capabilities, "bcc_problem", lambda: (types.SimpleNamespace(), None))
    if which == "tracefs":
        monkeypatch.setattr(capabilities, "tracefs_problem",
                            lambda: (None, Problem("tracefs is not mounted (no /sys/kernel/tracing/events)",
                                                   capabilities.MOUNT_REMEDY)))
    else:
        monkeypatch.setattr(capabilities, "tracefs_problem", lambda: ("/nonexistent", None))
        monkeypatch.setattr(capabilities, "find_headers", lambda release=None: (None, None))
    loaded = loader.load(_args(), time.monotonic() + 60)
    assert loaded.bpf is None and words in loaded.problem.reason and remedy in loaded.problem.remedy


def test_too_little_time_to_compile(monkeypatch):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    monkeypatch.setattr(capabilities, "bcc_problem", lambda: (types.SimpleNamespace(), None))
    monkeypatch.setattr(capabilities, "tracefs_problem", lambda: ("/nonexistent", None))
    monkeypatch.setattr(capabilities, "find_headers", lambda release=None: ("/usr/src/h", "6.1"))
    monkeypatch.setattr(host_plan, "read_formats", lambda where: ({}, {}, {}))
    loaded = loader.load(_args(), time.monotonic() + 0.3)
    assert loaded.bpf is None and "left of the BPF start's time" in loaded.problem.reason
    # with no format files every tracepoint artifact says so
    assert "bpf/oom_kill" in loaded.unavailable and loaded.formats == {}


def test_compile_errors_become_remedies():
    p = capabilities.compile_problem("fatal error: 'linux/kconfig.h' file not found")
    assert p.remedy == capabilities.HEADERS_REMEDY and "kconfig.h" in p.reason
    p = capabilities.compile_problem("bpf: Failed to load program: Operation not permitted")
    assert p.remedy == capabilities.ROOT_REMEDY


def test_the_reader_process_never_imports_bcc():
    """Only the loader may: bcc pulls LLVM into the address space for good."""
    import subprocess

    code = ("import sys, snapcollect.collect.bpf.child, snapcollect.collect.bpf.reader, "
            "snapcollect.collect.bpf_hook; print(sorted(m for m in sys.modules if m.split('.')[0] == 'bcc'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
