"""BPF maps through bpf(2) itself, without bcc: what the reader process uses.

Kernel interface: the bpf(2) system call (syscall(2) by number, through
ctypes: the C library has no wrapper) with BPF_MAP_LOOKUP_ELEM,
BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY and
BPF_OBJ_GET_INFO_BY_FD on map file descriptors another process created
and passed on (handoff.py).

Keys and values are raw bytes; ``Layout`` turns them into objects read
by attribute (``key.tgid``, ``bytes(key.comm)``), the way bcc's ctypes
structures are read, from a plain description of the C type that the
loader made from bcc's own (``describe_ctype``). No C struct is written
twice: a map added to memevents.bpf.c is described by the loader as it
is compiled.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import platform
import struct
import sys
from types import SimpleNamespace

CMD = {"lookup": 1, "update": 2, "delete": 3, "next_key": 4, "info": 15}
BPF_ANY = 0
# syscall numbers of bpf(2); the architectures the collector runs on
SYSCALL_NR = {"x86_64": 321, "aarch64": 280}
MAX_KEY_SIZE = 512
MAX_VALUE_SIZE = 1 << 16
MAP_TYPES = {1: "hash", 2: "array", 4: "perf_event_array", 5: "percpu_hash", 6: "percpu_array",
             7: "stack_trace", 27: "ringbuf"}

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


class BpfError(OSError):
    pass


class _ElemAttr(ct.Structure):
    # union bpf_attr, the BPF_MAP_*_ELEM member: map_fd, key, value/next_key, flags
    _fields_ = [("map_fd", ct.c_uint32), ("pad", ct.c_uint32), ("key", ct.c_uint64),
                ("value", ct.c_uint64), ("flags", ct.c_uint64)]


class _InfoAttr(ct.Structure):
    # union bpf_attr, the BPF_OBJ_GET_INFO_BY_FD member
    _fields_ = [("bpf_fd", ct.c_uint32), ("info_len", ct.c_uint32), ("info", ct.c_uint64)]


class MapInfo(ct.Structure):
    # struct bpf_map_info, its first members (the kernel fills what fits)
    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
                ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32), ("map_flags", ct.c_uint32),
                ("name", ct.c_char * 16)]


def _nr() -> int:
    nr = SYSCALL_NR.get(platform.machine())
    if nr is None:
        raise BpfError(errno.ENOSYS, f"bpf(2) number unknown on {platform.machine()}")
    return nr


def bpf(cmd: int, attr: ct.Structure) -> int:
    res = _libc.syscall(_nr(), ct.c_int(cmd), ct.byref(attr), ct.c_uint(ct.sizeof(attr)))
    if res < 0:
        err = ct.get_errno()
        raise BpfError(err, os.strerror(err))
    return res


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    bpf(CMD["info"], _InfoAttr(bpf_fd=fd, info_len=ct.sizeof(info), info=ct.addressof(info)))
    return info


class RawMap:
    """One map by its fd: raw byte keys and values."""

    def __init__(self, fd: int, key_size: int, value_size: int, max_entries: int):
        if not (0 < key_size <= MAX_KEY_SIZE and 0 <= value_size <= MAX_VALUE_SIZE):
            raise BpfError(errno.EINVAL, f"map sizes out of range: key {key_size}, value {value_size}")
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries

    def _attr(self, key, value=None, flags=0) -> _ElemAttr:
        return _ElemAttr(map_fd=self.fd, key=ct.addressof(key) if key is not None else 0,
                         value=ct.addressof(value) if value is not None else 0, flags=flags)

    def lookup(self, key: bytes) -> bytes | None:
        kbuf = ct.create_string_buffer(bytes(key), self.key_size)
        vbuf = ct.create_string_buffer(self.value_size)
        try:
            bpf(CMD["lookup"], self._attr(kbuf, vbuf))
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return vbuf.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        kbuf = ct.create_string_buffer(bytes(key), self.key_size)
        vbuf = ct.create_string_buffer(bytes(value), self.value_size)
        bpf(CMD["update"], self._attr(kbuf, vbuf, flags))

    def delete(self, key: bytes) -> None:
        kbuf = ct.create_string_buffer(bytes(key), self.key_size)
        bpf(CMD["delete"], self._attr(kbuf))

    def keys(self, limit: int | None = None):
        """Every key, at most ``limit`` (default: the map's size): a map
        another process keeps filling cannot make this loop for ever."""
        limit = self.max_entries if limit is None else limit
        cur = None
        nxt = ct.create_string_buffer(self.key_size)
        for _ in range(limit):
            kbuf = None if cur is None else ct.create_string_buffer(cur, self.key_size)
            try:
                bpf(CMD["next_key"], self._attr(kbuf, nxt))
            except BpfError as exc:
                if exc.errno == errno.ENOENT:
                    return
                raise
            cur = nxt.raw
            yield cur

    def items(self):
        """(key bytes, value bytes) of every key still there when read."""
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:
                yield key, value


# -- layouts ---------------------------------------------------------------

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I",
              (4, True): "i", (8, False): "Q", (8, True): "q"}


def describe_ctype(t) -> dict:
    """A plain (JSON) description of a ctypes type: bcc's Key/Leaf classes."""
    if isinstance(t, type) and issubclass(t, (ct.Structure, ct.Union)):
        fields = []
        for spec in t._fields_:
            name, ftype = spec[0], spec[1]
            fields.append([name, getattr(t, name).offset, describe_ctype(ftype)])
        return {"struct": fields, "size": ct.sizeof(t)}
    if isinstance(t, type) and issubclass(t, ct.Array):
        return {"array": describe_ctype(t._type_), "len": t._length_, "size": ct.sizeof(t)}
    if t is ct.c_char:
        return {"char": 1, "size": 1}
    code = getattr(t, "_type_", None)
    if isinstance(code, str) and code in "bBhHiIlLqQ?":
        return {"int": ct.sizeof(t), "signed": code.islower() and code != "?", "size": ct.sizeof(t)}
    return {"bytes": ct.sizeof(t), "size": ct.sizeof(t)}


class Layout:
    """Decodes raw bytes by a ``describe_ctype`` description."""

    def __init__(self, desc: dict):
        self.desc = desc
        self.size = int(desc.get("size", 0))

    def decode(self, raw: bytes):
        if len(raw) < self.size:
            raise ValueError(f"{len(raw)} bytes for a {self.size}-byte value")
        return _decode(self.desc, raw, 0)


def _decode(desc: dict, raw: bytes, off: int):
    if "struct" in desc:
        return SimpleNamespace(**{name: _decode(sub, raw, off + int(o)) for name, o, sub in desc["struct"]})
    if "array" in desc:
        elem = desc["array"]
        n = int(desc["len"])
        if "char" in elem:
            return raw[off:off + n]
        step = int(elem["size"])
        return [_decode(elem, raw, off + i * step) for i in range(n)]
    if "int" in desc:
        code = _INT_CODES.get((int(desc["int"]), bool(desc.get("signed"))))
        if code is None:
            return raw[off:off + int(desc["int"])]
        return struct.unpack_from("=" + code, raw, off)[0]   # the kernel's byte order is ours
    return raw[off:off + int(desc.get("size", 0))]


def encode_int(value: int, size: int, signed: bool = False) -> bytes:
    return int(value).to_bytes(size, sys.byteorder, signed=signed)
