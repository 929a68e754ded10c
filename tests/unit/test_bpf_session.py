"""BpfSession when BPF cannot run: every artifact unavailable, with a reason
and a remedy, and the collection goes on. No compile happens here."""

from __future__ import annotations

import time
import types

import pytest

from snapcollect.collect.options import CollectOptions
from snapcollect.bundle.reader import open_bundle
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect.bpf import capabilities, host_plan
from snapcollect.collect.bpf.capabilities import Problem
from snapcollect.collect.bpf.session import BpfSession
from snapcollect.parsers.bpf_events import ARTIFACTS


def _args(**kw):
    return CollectOptions(**kw)


def _run(tmp_path, args, deadline_s=60.0):
    path = str(tmp_path / "b.tar.zst")
    w = BundleWriter(path, {"clock": {"wall": time.time(), "monotonic": time.monotonic()}})
    s = BpfSession.start(args, w, time.monotonic() + deadline_s)
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


def test_no_bcc(tmp_path, monkeypatch):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    monkeypatch.setattr(capabilities, "bcc_problem",
                        lambda: (None, Problem("the bcc Python bindings are not installed",
                                               "install Debian's python3-bpfcc")))
    bundle, _ = _run(tmp_path, _args())
    _assert_all_unavailable(bundle, "bcc", "python3-bpfcc")


@pytest.mark.parametrize("which, words, remedy", [
    ("tracefs", "tracefs is not mounted", "mount -t tracefs nodev /sys/kernel/tracing"),
    ("headers", "no kernel headers", "apt-get install linux-headers-$(uname -r)"),
])
def test_no_tracefs_or_headers(tmp_path, monkeypatch, which, words, remedy):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    monkeypatch.setattr(capabilities, "bcc_problem", lambda: (types.SimpleNamespace(), None))
    if which == "tracefs":
        monkeypatch.setattr(capabilities, "tracefs_problem",
                            lambda: (None, Problem("tracefs is not mounted (no /sys/kernel/tracing/events)",
                                                   capabilities.MOUNT_REMEDY)))
    else:
        monkeypatch.setattr(capabilities, "tracefs_problem", lambda: ("/nonexistent", None))
        monkeypatch.setattr(capabilities, "find_headers", lambda release=None: (None, None))
    bundle, _ = _run(tmp_path, _args())
    _assert_all_unavailable(bundle, words, remedy)


def test_too_little_time_to_compile(tmp_path, monkeypatch):
    monkeypatch.setattr(capabilities, "privilege_problem", lambda: None)
    monkeypatch.setattr(capabilities, "bcc_problem", lambda: (types.SimpleNamespace(), None))
    monkeypatch.setattr(capabilities, "tracefs_problem", lambda: ("/nonexistent", None))
    monkeypatch.setattr(capabilities, "find_headers", lambda release=None: ("/usr/src/h", "6.1"))
    monkeypatch.setattr(host_plan, "read_formats", lambda where: ({}, {}, {}))
    bundle, _ = _run(tmp_path, _args(), deadline_s=0.3)
    for name in ARTIFACTS:
        e = bundle.entry(name)
        assert e["status"] == "unavailable" and e["remedy"], e
    # with no format files every tracepoint artifact says so; the perf
    # event one says there was no time to compile
    assert "left of the BPF start's time" in bundle.entry("bpf/majfault_by_proc")["reason"]


def test_compile_errors_become_remedies():
    p = capabilities.compile_problem("fatal error: 'linux/kconfig.h' file not found")
    assert p.remedy == capabilities.HEADERS_REMEDY and "kconfig.h" in p.reason
    p = capabilities.compile_problem("bpf: Failed to load program: Operation not permitted")
    assert p.remedy == capabilities.ROOT_REMEDY
