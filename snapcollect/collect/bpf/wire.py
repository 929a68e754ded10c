"""The line protocol between the collector and its BPF process.

The BPF session (compile, attach, event intake, symbolisation) runs in a
process of its own, so that bcc and LLVM (about 130 MB during a compile)
never enter the collector's address space, and so that a compile that
overruns, or an OOM kill of that process, costs the BPF artifacts and
nothing else. The two talk in JSON lines over pipes.

Collector -> BPF process (its stdin)::

    {"op": "config", "options": {...}, "clock": {...}, "deadline_mono": 1234.5}
    {"op": "finish", "deadline_mono": 1300.0}
    (end of file: stop at once)

BPF process -> collector (a pipe of its own)::

    {"op": "call", "method": "declare_stream", "args": ["bpf/oom_kill"], "kw": {"status": "ok", "reason": null}}
    {"op": "started", "enabled": true, "pending": ["bpf/fault_stacks.json", ...]}
    {"op": "finished"}

``call`` replays one bundle-writer call on the collector's writer: one of
the methods of ``protocols.BpfWriter`` (``METHODS``), and no other;
``pending`` names the artifacts the process still means to write at
finish, so that the collector can record them as lost if the process
dies first. Monotonic times are CLOCK_MONOTONIC, the same
clock in both processes. Anything else on the pipe is ignored, counted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import sys
from typing import Any, Callable

from snapcollect.collect.protocols import BpfWriter

# The calls a message may replay, one per method of BpfWriter
# (tests/unit/test_protocols.py keeps the two equal). A table, not a
# lookup on the writer: a method name from the pipe picks an entry here or
# is refused, whatever else the writer object has (close, add_tick, ...).
_CALLS: dict[str, Callable[..., None]] = {
    "add_file": lambda w, *a, **kw: w.add_file(*a, **kw),
    "add_missing": lambda w, *a, **kw: w.add_missing(*a, **kw),
    "declare_stream": lambda w, *a, **kw: w.declare_stream(*a, **kw),
    "add_records": lambda w, *a, **kw: w.add_records(*a, **kw),
    "merge_manifest": lambda w, *a, **kw: w.merge_manifest(*a, **kw),
}
METHODS = tuple(_CALLS)

# the options of `snapcollect collect` that the BPF session reads
OPTIONS = ("no_bpf", "fault_sample", "fault_duty", "kernel_stacks", "heap_trace", "swap_residency",
           "thp_fallback")


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict | None:
    """One message, or None when the line is not one of ours."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        return None
    return msg


def _pack(value):
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    return value


def _unpack(value):
    if isinstance(value, dict) and set(value) == {"__bytes__"}:
        return base64.b64decode(value["__bytes__"])
    return value


def call_message(method: str, args: tuple, kw: dict) -> dict:
    return {"op": "call", "method": method, "args": [_pack(a) for a in args],
            "kw": {k: _pack(v) for k, v in kw.items()}}


def apply_call(message: dict, writer: BpfWriter) -> str | None:
    """Replay a ``call`` message on ``writer``; the artifact name it concerns.

    Raises ValueError for a call that is not an BpfWriter method (a
    hostile or broken process cannot make the collector call anything
    else); arguments the method does not take raise its TypeError.
    """
    method = message.get("method")
    args, kw = message.get("args"), message.get("kw")
    call = _CALLS.get(method) if isinstance(method, str) else None
    if call is None or not isinstance(args, list) or not isinstance(kw, dict):
        raise ValueError(f"not a writer call: {str(method)[:40]!r}")
    if not all(isinstance(k, str) for k in kw):
        raise ValueError("keyword names must be strings")
    call(writer, *[_unpack(a) for a in args], **{k: _unpack(v) for k, v in kw.items()})
    return args[0] if args and isinstance(args[0], str) and method != "merge_manifest" else None


class PipeWriter:
    """The bundle writer as the BPF session sees it, inside the BPF process.

    An BpfWriter: every call is sent to the collector; the manifest
    is kept locally as well, because the session reads back what it merged.
    """

    def __init__(self, out, clock: dict):
        self._out = out
        self.manifest: dict = {"clock": clock}

    def _send(self, method: str, *args, **kw) -> None:
        self._out.write(encode(call_message(method, args, kw)))
        self._out.flush()

    def send(self, message: dict) -> None:
        self._out.write(encode(message))
        self._out.flush()

    def add_file(self, name: str, data: bytes | str, *, status: str = "ok", reason: str | None = None,
                 **extra: Any) -> None:
        self._send("add_file", name, data, status=status, reason=reason, **extra)

    def add_missing(self, name: str, status: str, reason: str, **extra: Any) -> None:
        self._send("add_missing", name, status, reason, **extra)

    def declare_stream(self, name: str, *, status: str = "ok", reason: str | None = None,
                       **extra: Any) -> None:
        self._send("declare_stream", name, status=status, reason=reason, **extra)

    def add_records(self, name: str, records: list[dict]) -> None:
        self._send("add_records", name, records)

    def merge_manifest(self, key: str, **fields: Any) -> None:
        self.manifest[key] = {**(self.manifest.get(key) or {}), **fields}
        self._send("merge_manifest", key, **fields)


def read_commands(fd: int):
    """The collector's messages on ``fd``, one a line; yields None at end of file."""
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            yield None
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = decode(line)
            if msg is not None:
                yield msg


def readable(fd: int, timeout_s: float) -> bool:
    """Whether ``fd`` has something to read within ``timeout_s`` (a signal: no)."""
    try:
        return bool(select.select([fd], [], [], max(timeout_s, 0.0))[0])
    except InterruptedError:
        return False


def process_main(run: Callable[[int, Any], int], prog: str, description: str, argv=None) -> int:
    """The entry of a BPF process (child.py, deepdive_child.py): ``--out-fd N``.

    Messages go out on fd N; fd 1 is pointed at stderr first so that
    nothing a loader (bcc, clang) prints can be taken for a message. Then
    ``run(0, out)`` reads the commands on stdin. 3 when the collector
    stopped reading: nothing is left to tell it.
    """
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--out-fd", type=int, required=True)
    ns = ap.parse_args(argv)
    out = os.fdopen(ns.out_fd, "wb", buffering=1 << 16)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        return run(0, out)
    except BrokenPipeError:
        return 3
