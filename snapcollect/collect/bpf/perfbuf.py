"""The event channel without bcc: perf buffers opened by the reader.

The BPF programs write records with ``bpf_perf_event_output`` into the
BPF_MAP_TYPE_PERF_EVENT_ARRAY map ``events``, slot = CPU. This module
opens, per online CPU, a perf software event PERF_COUNT_SW_BPF_OUTPUT
(perf_event_open(2), PERF_SAMPLE_RAW), maps its ring (1 header page + a
power of two of data pages), and puts the event's fd in the map's slot
for that CPU (bpf(2) BPF_MAP_UPDATE_ELEM). ``poll`` waits on the fds and
parses what the kernel wrote between the ring's data_tail and data_head
(struct perf_event_mmap_page): PERF_RECORD_SAMPLE carries one raw
record, PERF_RECORD_LOST the count of records the kernel dropped.

Kernel interfaces: perf_event_open(2), mmap(2) of perf events,
PERF_EVENT_IOC_ENABLE, /sys/devices/system/cpu/online.
"""

from __future__ import annotations

import ctypes as ct
import fcntl
import mmap
import os
import platform
import select
import struct

from snapcollect.collect.bpf.bpfsys import BpfError, RawMap, encode_int

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_ATTR_SIZE_VER0 = 64
SYSCALL_NR = {"x86_64": 298, "aarch64": 241}
DATA_HEAD = 1024          # offsets in struct perf_event_mmap_page
DATA_TAIL = 1032
HEADER = struct.Struct("=IHH")
MAX_READ_PER_CPU = 1 << 20   # bytes parsed per ring per poll: one busy CPU cannot starve the rest

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


class _Attr(ct.Structure):
    # struct perf_event_attr as of PERF_ATTR_SIZE_VER0
    _fields_ = [("type", ct.c_uint32), ("size", ct.c_uint32), ("config", ct.c_uint64),
                ("sample_period", ct.c_uint64), ("sample_type", ct.c_uint64),
                ("read_format", ct.c_uint64), ("flags", ct.c_uint64), ("wakeup_events", ct.c_uint32),
                ("bp_type", ct.c_uint32), ("config1", ct.c_uint64)]


def online_cpus(path: str = "/sys/devices/system/cpu/online") -> list[int]:
    """``0-3,5`` -> [0, 1, 2, 3, 5]."""
    with open(path) as fh:
        text = fh.read().strip()
    cpus: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _open_output_event(cpu: int) -> int:
    nr = SYSCALL_NR.get(platform.machine())
    if nr is None:
        raise OSError(38, f"perf_event_open number unknown on {platform.machine()}")
    attr = _Attr(type=PERF_TYPE_SOFTWARE, size=PERF_ATTR_SIZE_VER0, config=PERF_COUNT_SW_BPF_OUTPUT,
                 sample_period=1, sample_type=PERF_SAMPLE_RAW, wakeup_events=1)
    fd = _libc.syscall(nr, ct.byref(attr), ct.c_int(-1), ct.c_int(cpu), ct.c_int(-1),
                       ct.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ct.get_errno()
        raise OSError(err, f"perf_event_open(BPF_OUTPUT, cpu {cpu}): {os.strerror(err)}")
    return fd


def parse_records(data: bytes):
    """(kind, payload) of the whole records in ``data``: ("sample", raw
    bytes) or ("lost", count); stops at a record that does not fit."""
    off = 0
    while off + HEADER.size <= len(data):
        rtype, _misc, size = HEADER.unpack_from(data, off)
        if size < HEADER.size or off + size > len(data):
            return
        body = data[off + HEADER.size:off + size]
        if rtype == PERF_RECORD_SAMPLE and len(body) >= 4:
            (n,) = struct.unpack_from("=I", body)
            yield "sample", body[4:4 + n]
        elif rtype == PERF_RECORD_LOST and len(body) >= 16:
            yield "lost", struct.unpack_from("=QQ", body)[1]
        off += size


class Ring:
    """One CPU's perf event and its mapped ring."""

    def __init__(self, cpu: int, pages: int):
        self.cpu = cpu
        self.fd = _open_output_event(cpu)
        self.page = mmap.PAGESIZE
        self.size = pages * self.page
        try:
            self.mem = mmap.mmap(self.fd, self.page + self.size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            fcntl.ioctl(self.fd, PERF_EVENT_IOC_ENABLE, 0)
        except OSError:
            os.close(self.fd)
            raise

    def read(self) -> bytes:
        """The bytes written since the last read, the ring's tail moved past them."""
        head, tail = struct.unpack_from("=QQ", self.mem, DATA_HEAD)
        avail = min(head - tail, MAX_READ_PER_CPU)
        if avail <= 0:
            return b""
        start = self.page + tail % self.size
        end = start + avail
        limit = self.page + self.size
        if end <= limit:
            data = self.mem[start:end]
        else:       # wrapped
            data = self.mem[start:limit] + self.mem[self.page:self.page + end - limit]
        # only whole records count as read: a record cut by the read limit is read next time
        used = 0
        while used + HEADER.size <= len(data):
            size = HEADER.unpack_from(data, used)[2]
            if size < HEADER.size or used + size > len(data):
                break
            used += size
        struct.pack_into("=Q", self.mem, DATA_TAIL, tail + used)
        return data[:used]

    def close(self) -> None:
        try:
            self.mem.close()
        finally:
            os.close(self.fd)


class PerfBuffers:
    """``on_sample(raw bytes)`` and ``on_lost(count)`` are called from ``poll``."""

    def __init__(self, events_map: RawMap, on_sample, on_lost, pages: int = 64):
        if pages & (pages - 1):
            raise ValueError("perf ring pages must be a power of two")
        self.on_sample = on_sample
        self.on_lost = on_lost
        self.rings: list[Ring] = []
        self._poller = select.poll()
        try:
            for cpu in online_cpus():
                if cpu >= events_map.max_entries:
                    continue
                ring = Ring(cpu, pages)
                self.rings.append(ring)
                events_map.update(encode_int(cpu, 4), encode_int(ring.fd, 4))
                self._poller.register(ring.fd, select.POLLIN)
        except (OSError, BpfError):
            self.close()
            raise

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records and hand them on; returns how many."""
        try:
            self._poller.poll(max(int(timeout_ms), 0))
        except InterruptedError:
            pass
        return self.drain()

    def drain(self) -> int:
        n = 0
        for ring in self.rings:
            for kind, payload in parse_records(ring.read()):
                if kind == "sample":
                    self.on_sample(payload)
                    n += 1
                else:
                    self.on_lost(payload)
        return n

    def close(self) -> None:
        for ring in self.rings:
            try:
                ring.close()
            except OSError:
                pass
        self.rings = []
