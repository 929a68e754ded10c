"""Kernel log from /dev/kmsg (3.5+), or from ``dmesg`` when that is denied.

/dev/kmsg gives one record per read(2): ``prio,seq,ts_us,flags[,...];text``
followed by optional `` KEY=value`` continuation lines. Opened
O_NONBLOCK, a read returns EAGAIN once the buffer is drained and EPIPE
when records were overwritten before we read them (the next read goes
on from the oldest record still there). Sample::

    6,1302,5461278900,-;Out of memory: Killed process 4242 (python3) ...
    4,1303,5461279111,-;oom_reaper: reaped process 4242 (python3), ...

``prio`` is the syslog value (facility << 3 | level); ``ts_us`` is the
kernel's printk clock in microseconds since boot, which tracks
CLOCK_MONOTONIC (both exclude suspend). Records in the buffer when the
window opens are stored as ``before_window`` (the last ``MAX_BEFORE`` of
them: the OOM report that brought the user here is usually among them);
records that arrive during the window follow as they come.

With ``kernel.dmesg_restrict = 1`` only root (CAP_SYSLOG) may read the
log; then ``dmesg --raw`` is tried (``<prio>[seconds.micros] text``), and
without it the stream is recorded as denied.
"""

from __future__ import annotations

import errno
import os
import re

from snapcollect.collect.sources import Outcome
from snapcollect.collect.sources.commands import run_one

DEVICE = "/dev/kmsg"
MAX_BEFORE = 2000
MAX_RECORDS = 50000        # during the window; a log storm must not fill the disk
_READ_SIZE = 16384          # larger than any record (CONSOLE_EXT_LOG_MAX 8192)
_DMESG_RE = re.compile(r"^<(\d+)>\[\s*(\d+)\.(\d+)\]\s?(.*)$")


def parse_record(raw: bytes, before_window: bool) -> dict | None:
    """One /dev/kmsg record -> the stream record (None if malformed)."""
    # The kernel escapes most bytes it does not print itself (\xNN), but a
    # record can still hold bytes that are not UTF-8: keep them, losslessly
    # (surrogate escapes, which the JSON stream stores as \udcNN).
    text = raw.decode("utf-8", "surrogateescape")
    head, sep, body = text.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        prio = int(fields[0])
        seq = int(fields[1])
        ts_us = int(fields[2])
    except (ValueError, IndexError):
        return None
    msg = body.split("\n", 1)[0]
    return {"seq": seq, "ts_us": ts_us, "prio": prio & 7, "facility": prio >> 3, "text": msg,
            "before_window": before_window}


def parse_dmesg_raw(text: str, before_window: bool) -> list[dict]:
    """``dmesg --raw`` output -> records; seq is the line's position."""
    out = []
    for n, line in enumerate(text.splitlines()):
        m = _DMESG_RE.match(line)
        if not m:
            continue
        prio = int(m.group(1))
        ts_us = int(m.group(2)) * 1_000_000 + int(m.group(3).ljust(6, "0")[:6])
        out.append({"seq": n, "ts_us": ts_us, "prio": prio & 7, "facility": prio >> 3,
                    "text": m.group(4), "before_window": before_window})
    return out


class KernelLog:
    """The kernel log source of one run."""

    def __init__(self) -> None:
        self.fd = -1
        self.mode = None            # "kmsg", "dmesg", or None (unavailable)
        self.status = Outcome("ok")
        self.lost = 0               # records overwritten before we read them
        self.dropped = 0            # records over MAX_RECORDS, not stored
        self.count = 0
        self._last_ts = -1          # dmesg mode: newest record stored

    def open(self, deadline_mono: float) -> None:
        """Open /dev/kmsg, or fall back to dmesg; sets ``status`` if neither works."""
        perm = False
        try:
            self.fd = os.open(DEVICE, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self.mode = "kmsg"
            return
        except OSError as exc:
            why = f"{DEVICE}: {exc.strerror}"
            if exc.errno in (errno.EPERM, errno.EACCES):
                perm = True
                why += " (kernel.dmesg_restrict = 1 allows root only)"
        probe = run_one(["dmesg", "--raw"], deadline_mono, cap=1)
        if probe.has_data:
            self.mode = "dmesg"
            return
        if probe.status in ("denied", "timeout"):
            status = probe.status
        else:
            status = "denied" if perm else ("missing" if probe.status == "missing" else "error")
        self.status = Outcome(status, b"", f"{why}; dmesg fallback: {probe.reason}")

    def fileno(self) -> int:
        return self.fd

    def _read_kmsg(self, before_window: bool, limit: int) -> list[dict]:
        out: list[dict] = []
        while True:
            try:
                raw = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    self.lost += 1
                    continue
                break
            if not raw:
                break
            rec = parse_record(raw, before_window)
            if rec is None:
                continue
            if len(out) >= limit and not before_window:
                self.dropped += 1
                continue
            out.append(rec)
            if before_window and len(out) > 2 * MAX_BEFORE:
                del out[:len(out) - MAX_BEFORE]
        return out

    def backlog(self, deadline_mono: float) -> list[dict]:
        """Everything in the buffer now, marked before_window (the last MAX_BEFORE)."""
        if self.mode == "kmsg":
            recs = self._read_kmsg(True, MAX_BEFORE)[-MAX_BEFORE:]
        elif self.mode == "dmesg":
            got = run_one(["dmesg", "--raw"], deadline_mono, cap=8 * 1024 * 1024)
            recs = parse_dmesg_raw(got.text, True)[-MAX_BEFORE:] if got.has_data else []
        else:
            return []
        if recs:
            self._last_ts = recs[-1]["ts_us"]
        self.count += len(recs)
        return recs

    def poll(self) -> list[dict]:
        """Records that arrived since the last call (kmsg mode only; never blocks)."""
        if self.mode != "kmsg":
            return []
        recs = self._read_kmsg(False, max(0, MAX_RECORDS - self.count))
        self.count += len(recs)
        return recs

    def final(self, deadline_mono: float) -> list[dict]:
        """Last records at the end of the window."""
        if self.mode == "dmesg":
            got = run_one(["dmesg", "--raw"], deadline_mono, cap=8 * 1024 * 1024)
            if not got.has_data:
                return []
            recs = [r for r in parse_dmesg_raw(got.text, False) if r["ts_us"] > self._last_ts]
            recs = recs[:max(0, MAX_RECORDS - self.count)]
            self.count += len(recs)
            return recs
        return self.poll()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def manifest_extra(self) -> dict:
        out = {"source": self.mode or "none"}
        if self.lost:
            out["lost"] = self.lost
        if self.dropped:
            out["dropped"] = self.dropped
        return out
