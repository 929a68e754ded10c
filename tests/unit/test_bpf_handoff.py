"""Kernel objects handed from the loader to the reader: fds over a unix
socket (collect/bpf/handoff.py), map layouts as plain descriptions
(bpfsys.py), perf ring records (perfbuf.py)."""

from __future__ import annotations

import ctypes as ct
import os
import socket
import struct
import threading

import pytest

from snapcollect.collect.bpf import handoff
from snapcollect.collect.bpf.bpfsys import Layout, describe_ctype
from snapcollect.collect.bpf.perfbuf import PERF_RECORD_LOST, PERF_RECORD_SAMPLE, online_cpus, parse_records


def test_more_fds_than_one_message_carries_arrive_in_order(tmp_path):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    files = []
    for i in range(handoff.FDS_PER_MESSAGE + 7):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"x")
        files.append(os.open(p, os.O_RDONLY))
    sender = threading.Thread(target=handoff.send, args=(theirs, {"maps": [{"fd": 3}]}, files))
    sender.start()
    doc, fds = handoff.receive(ours)
    sender.join()
    assert doc == {"maps": [{"fd": 3}]} and len(fds) == len(files)
    assert [os.fstat(a).st_ino for a in fds] == [os.fstat(b).st_ino for b in files]
    handoff.close_all(fds + files)


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1, 2]", b'{"description": {}, "total_fds": 5}'])
def test_a_broken_handoff_is_one_error_and_leaves_no_fd_open(payload):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    socket.send_fds(theirs, [b'{"fds": 1}'], [r])
    if payload:
        theirs.send(payload)
    theirs.close()
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(handoff.HandoffError):
        handoff.receive(ours)
    assert len(os.listdir("/proc/self/fd")) <= before
    os.close(r)
    os.close(w)


class Key(ct.Structure):
    _fields_ = [("tgid", ct.c_uint32), ("ustack", ct.c_int), ("kstack", ct.c_int), ("pad", ct.c_uint32),
                ("comm", ct.c_char * 16)]


class Stack(ct.Structure):
    _fields_ = [("ip", ct.c_ulonglong * 4)]


def test_a_described_layout_reads_what_ctypes_wrote():
    key = Key(tgid=4242, ustack=-17, kstack=3, comm=b"worker")
    layout = Layout(describe_ctype(Key))
    got = layout.decode(bytes(key))
    assert (got.tgid, got.ustack, got.kstack) == (4242, -17, 3)
    assert bytes(got.comm).rstrip(b"\0") == b"worker"
    stack = Layout(describe_ctype(Stack)).decode(bytes(Stack(ip=(1, 2, 0, 0))))
    assert stack.ip == [1, 2, 0, 0]
    assert Layout(describe_ctype(ct.c_uint64)).decode(struct.pack("=Q", 9)) == 9
    with pytest.raises(ValueError):
        layout.decode(b"short")


def _record(rtype: int, body: bytes) -> bytes:
    return struct.pack("=IHH", rtype, 0, 8 + len(body)) + body


def test_perf_records_samples_and_lost_counts_and_a_cut_record_is_left():
    sample = _record(PERF_RECORD_SAMPLE, struct.pack("=I", 5) + b"hello" + b"\0\0\0")
    lost = _record(PERF_RECORD_LOST, struct.pack("=QQ", 1, 12))
    other = _record(3, b"\0" * 8)
    data = sample + other + lost + sample[:10]
    assert list(parse_records(data)) == [("sample", b"hello"), ("lost", 12)]
    assert list(parse_records(struct.pack("=IHH", 9, 0, 2))) == []     # a size below the header


def test_online_cpus_ranges(tmp_path):
    p = tmp_path / "online"
    p.write_text("0-3,5,7-8\n")
    assert online_cpus(str(p)) == [0, 1, 2, 3, 5, 7, 8]
