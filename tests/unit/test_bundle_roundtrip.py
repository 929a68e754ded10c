"""Bundle writer and reader: round trip, archives cut anywhere, full disks."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading

import pytest

from snapcollect.bundle import names, open_bundle
from snapcollect.bundle import writer as writer_mod
from snapcollect.bundle.writer import BundleWriter, DiskFull, WriterClosed
from snapcollect.errors import BundleError

MEMINFO = "MemTotal:       24684084 kB\nMemFree:        24406544 kB\nMemAvailable:   24361304 kB\n"


def _path(tmp_path, name="b"):
    return str(tmp_path / f"{name}{names.SUFFIX}")


def _write_sample(path: str, ticks: int = 5) -> dict:
    w = BundleWriter(path, {"host": "h", "kernel": "6.18", "started_at": "2026-01-01T00:00:00.000Z"})
    w.add_file("proc/meminfo@start", MEMINFO)
    w.add_missing("proc/slabinfo@start", "denied", "/proc/slabinfo: permission denied")
    w.declare_stream("kmsg", source="kmsg")
    for k in range(ticks):
        w.add_tick(k, 1000.0 + k, 50.0 + k, {"proc/meminfo": MEMINFO, "procs": f"1 (init) S {k}\t0\t\n"},
                   {"proc/pressure/memory": ("missing", "no PSI")} if k == 0 else None, dur_s=0.01)
        w.add_records("kmsg", [{"seq": k, "ts_us": k * 10, "prio": 6, "facility": 0, "text": f"line {k}",
                                "before_window": False}])
    return {"w": w}


def test_round_trip(tmp_path):
    path = _path(tmp_path)
    w = _write_sample(path)["w"]
    out = w.close(ended_at="2026-01-01T00:00:05.000Z", complete=True, stopped_by="deadline")
    assert out == path and not os.path.exists(path + names.PARTIAL_SUFFIX)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    b = open_bundle(path)
    assert b.complete and b.read_problem is None
    assert b.text("proc/meminfo@start") == MEMINFO
    assert b.status("proc/slabinfo@start") == ("denied", "/proc/slabinfo: permission denied")
    assert [s.k for s in b.series("procs")] == [0, 1, 2, 3, 4]
    assert b.series("procs")[3].text == "1 (init) S 3\t0\t\n"
    assert b.series("proc/meminfo")[0].t == 1000.0
    assert [r["text"] for r in b.records("kmsg")] == [f"line {k}" for k in range(5)]
    series = b.entry("series/proc/meminfo")
    assert series["samples"] == 5 and series["status"] == "ok"
    psi = b.entry("series/proc/pressure/memory")
    assert psi["samples"] == 0 and psi["status"] == "missing" and "no PSI" in psi["reason"]
    kmsg = b.entry("kmsg")
    assert kmsg["records"] == 5 and kmsg["source"] == "kmsg"
    assert b.ticks[0]["dur_s"] == 0.01
    # sha256 of a file artifact is that of its bytes
    import hashlib
    assert b.entry("proc/meminfo@start")["sha256"] == hashlib.sha256(MEMINFO.encode()).hexdigest()


def test_never_overwrites(tmp_path):
    path = _path(tmp_path)
    open(path, "w").close()
    with pytest.raises(FileExistsError):
        BundleWriter(path, {})
    path2 = _path(tmp_path, "c")
    open(path2 + names.PARTIAL_SUFFIX, "w").close()
    with pytest.raises(FileExistsError):
        BundleWriter(path2, {})


def _cut_points(data: bytes) -> list[int]:
    """About a hundred cut points spread over the whole archive, both ends included."""
    return list(range(0, len(data) + 1, max(1, len(data) // 97)))


def test_archive_cut_anywhere_reads_up_to_last_member(tmp_path):
    """A collector killed at any byte: the reader opens what is there, never a traceback."""
    path = _path(tmp_path)
    w = _write_sample(path, ticks=20)["w"]
    # Simulate SIGKILL: no close; the .partial holds the flushed members.
    w._fh.flush()
    partial = open(path + names.PARTIAL_SUFFIX, "rb").read()
    full = open_bundle(path + names.PARTIAL_SUFFIX)
    assert not full.complete and full.stopped_by == "killed"
    assert len(full.series("procs")) == 20, "every flushed tick must be readable"
    assert "archive ends early" in (full.read_problem or "")

    seen_ticks = []
    for cut in _cut_points(partial) + [len(partial)]:
        p = str(tmp_path / f"cut{cut}{names.SUFFIX}")
        with open(p, "wb") as fh:
            fh.write(partial[:cut])
        try:
            b = open_bundle(p)
        except BundleError as exc:
            # Only before the first manifest is complete may it refuse.
            assert "manifest" in str(exc) or "not a" in str(exc)
            assert not seen_ticks
            continue
        assert not b.complete
        assert b.incomplete_reason
        n = len(b.series("procs"))
        assert not seen_ticks or n >= seen_ticks[-1], "a longer prefix never loses samples"
        seen_ticks.append(n)
    assert seen_ticks and seen_ticks[-1] == 20
    w._fh.close()


def test_garbage_and_wrong_files(tmp_path):
    p = tmp_path / "x.tar.zst"
    p.write_bytes(b"hello world")
    with pytest.raises(BundleError, match="not zstd"):
        open_bundle(str(p))
    with pytest.raises(BundleError, match="no such file"):
        open_bundle(str(tmp_path / "nope.tar.zst"))
    with pytest.raises(BundleError, match="directory"):
        open_bundle(str(tmp_path))
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 64)
    with pytest.raises(BundleError):
        open_bundle(str(p))


def test_newer_format_version_is_refused(tmp_path):
    path = _path(tmp_path)
    w = BundleWriter(path, {})
    w.manifest["format_version"] = 99
    w.close(ended_at="x")
    with pytest.raises(BundleError, match="format version 99"):
        open_bundle(path)


def test_disk_full_keeps_reserve_for_final_manifest(tmp_path, monkeypatch):
    """When space cannot be allocated the writer raises DiskFull before
    writing, and the final manifest still goes into the reserve."""
    path = _path(tmp_path)
    w = BundleWriter(path, {"host": "h"}, reserve_bytes=64 * 1024)
    w.add_file("proc/meminfo@start", MEMINFO)

    def no_space(fd, mode, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_mod, "_allocate", no_space)
    with pytest.raises(DiskFull):
        w.add_file("procs/1/smaps", b"x" * (1024 * 1024))
    out = w.close(ended_at="t", complete=False, stopped_by="disk_full", stop_reason="disk full")
    assert out == path
    b = open_bundle(path)
    assert b.stopped_by == "disk_full" and not b.complete
    assert b.text("proc/meminfo@start") == MEMINFO
    assert b.data("procs/1/smaps") is None


def test_statvfs_fallback_when_fallocate_unsupported(tmp_path, monkeypatch):
    def unsupported(fd, mode, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(writer_mod, "_allocate", unsupported)
    path = _path(tmp_path)
    w = BundleWriter(path, {})
    w.add_file("a", b"a" * 100_000)
    assert w._use_fallocate is False

    class FakeStat:
        f_bavail = 10
        f_frsize = 4096

    monkeypatch.setattr(writer_mod.os, "statvfs", lambda p: FakeStat)
    with pytest.raises(DiskFull, match="KiB left"):
        w.add_file("b", b"b" * 100_000)
    w.close(ended_at="t")
    assert open_bundle(path).data("a") == b"a" * 100_000


def test_reserve_released_on_close(tmp_path):
    path = _path(tmp_path)
    w = BundleWriter(path, {})
    w.add_file("a", os.urandom(1000))
    assert w._alloc_end > 0 or not w._use_fallocate
    w.close(ended_at="t")
    st = os.stat(path)
    # Blocks beyond EOF were given back (allow one extra fs block of slack).
    assert st.st_blocks * 512 <= st.st_size + 64 * 1024


def test_closed_writer_refuses_late_writes(tmp_path):
    path = _path(tmp_path)
    w = BundleWriter(path, {})
    w.close(ended_at="t")
    with pytest.raises(WriterClosed):
        w.add_file("late", b"x")
    with pytest.raises(WriterClosed):
        w.add_records("bpf/x", [{"a": 1}])
    with pytest.raises(WriterClosed):
        w.add_missing("late2", "timeout", "late")


def test_concurrent_writers_do_not_corrupt(tmp_path):
    """The main loop and the BPF session write from different threads."""
    path = _path(tmp_path)
    w = BundleWriter(path, {})

    def stream(name):
        for i in range(200):
            w.add_records(name, [{"i": i, "pad": "y" * 300}])

    threads = [threading.Thread(target=stream, args=(f"bpf/s{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for k in range(100):
        w.add_tick(k, float(k), float(k), {"procs": "z" * 500})
    for t in threads:
        t.join()
    w.merge_manifest("bpf", enabled=True)
    w.merge_manifest("bpf", compile_s=0.5)
    w.close(ended_at="t", complete=True)
    b = open_bundle(path)
    assert b.read_problem is None
    for n in range(3):
        assert [r["i"] for r in b.records(f"bpf/s{n}")] == list(range(200))
    assert len(b.series("procs")) == 100
    assert b.manifest["bpf"] == {"enabled": True, "compile_s": 0.5}


def test_manifest_is_json_with_required_fields(tmp_path):
    path = _path(tmp_path)
    w = BundleWriter(path, {"host": "h", "kernel": "k", "tool_version": "0"})
    w.close(ended_at="t", complete=True, stopped_by="deadline")
    m = open_bundle(path).manifest
    assert m["format"] == names.FORMAT and m["format_version"] == names.FORMAT_VERSION
    assert m["artifacts"] == []
    json.dumps(m)
