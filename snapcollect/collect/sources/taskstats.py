"""Per-process delay accounting through the taskstats generic-netlink family.

Kernel interface: ``Documentation/accounting/taskstats.rst`` and
``delay-accounting.rst``; the struct is ``include/uapi/linux/taskstats.h``.
One request per process: ``TASKSTATS_CMD_GET`` with
``TASKSTATS_CMD_ATTR_TGID``; the reply nests ``TASKSTATS_TYPE_AGGR_TGID``
-> ``TASKSTATS_TYPE_STATS`` (``struct taskstats``), summed by the kernel
over the process's threads, exited ones included. The family's id is
dynamic: resolved once with ``CTRL_CMD_GETFAMILY``.

Tasks accumulate delays only while ``kernel.task_delayacct`` is 1 (off by
default since 5.14; the boot parameter ``delayacct`` turns it on). As root
the collector sets it for the window and puts the old value back on every
exit path (``DelayAccounting.restore``, called from the runner's close and
from an ``atexit`` hook for anything that escapes it), so figures measured
after switching it on cover the window only. The kernel gives a task its
delay record at fork, and only while accounting is on
(``delayacct_tsk_init``): processes started before it was switched on
report zero delays for the whole window, whatever they waited. So each
record says whether its process was counted: its start time
(``/proc/PID/stat`` field 22, clock ticks since boot, ``CLOCK_BOOTTIME``
based) against the boot-relative time of the switch, taken just before
writing the sysctl. A process started in the same clock tick as the switch
cannot be told apart and is taken as not counted. Threads it started
since the switch do have records: an old process's figures, if any, are
those threads' only. When accounting was already on at the start every
process counts.

Cost: one netlink round trip per process per read, at most
``MAX_PIDS`` processes, every ``EVERY_S`` seconds, each reply awaited at
most ``CALL_TIMEOUT_S``; a process gone in between (ESRCH) is skipped.
"""

from __future__ import annotations

import atexit
import errno
import os
import socket
import struct
import time

SYSCTL = "/proc/sys/kernel/task_delayacct"

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
TASKSTATS_CMD_GET = 1
TASKSTATS_GENL_VERSION = 1
TASKSTATS_CMD_ATTR_TGID = 2
TASKSTATS_TYPE_TGID = 2
TASKSTATS_TYPE_STATS = 3
TASKSTATS_TYPE_AGGR_TGID = 5

MAX_PIDS = 64            # processes read per pass: the top ones plus those of followed cgroups
EVERY_S = 5.0            # a read every ~5 s between the start and the end reads
CALL_TIMEOUT_S = 0.05    # a reply is a copy of a struct: a late one means a stuck kernel, skip it

# struct taskstats, one place: field -> (offset, first version it is in).
# Offsets follow the header's alignment (ac_sched, ac_uid, ac_etime and
# ac_tgetime are __attribute__((aligned(8)))). Version 15 (6.16) put a
# max and a min after every delay total, moving everything after
# cpu_delay_total; version 16 moved them to the end again, so 16+ share
# the offsets of 14 and version 15 has its own table.
FIELDS = {
    "cpu_count": (16, 1), "cpu_delay_total": (24, 1),
    "blkio_count": (32, 1), "blkio_delay_total": (40, 1),
    "swapin_count": (48, 1), "swapin_delay_total": (56, 1),
    "freepages_count": (312, 7), "freepages_delay_total": (320, 7),
    "thrashing_count": (328, 9), "thrashing_delay_total": (336, 9),
    "compact_count": (352, 11), "compact_delay_total": (360, 11),
    "wpcopy_count": (400, 13), "wpcopy_delay_total": (408, 13),
    "irq_count": (416, 14), "irq_delay_total": (424, 14),
}
FIELDS_V15 = {
    "cpu_count": 16, "cpu_delay_total": 24,
    "blkio_count": 48, "blkio_delay_total": 56,
    "swapin_count": 80, "swapin_delay_total": 88,
    "freepages_count": 352, "freepages_delay_total": 360,
    "thrashing_count": 384, "thrashing_delay_total": 392,
    "compact_count": 424, "compact_delay_total": 432,
    "wpcopy_count": 488, "wpcopy_delay_total": 496,
    "irq_count": 520, "irq_delay_total": 528,
}
COMM_OFFSET, COMM_LEN = 80, 32
COMM_OFFSET_V15 = 128


def offsets(version: int) -> dict[str, int]:
    """The fields a struct of ``version`` has, by offset."""
    if version == 15:
        return dict(FIELDS_V15)
    return {name: off for name, (off, since) in FIELDS.items() if version >= since}


def parse_stats(data: bytes) -> dict | None:
    """``struct taskstats`` bytes -> {version, comm, <field>: int}; None if too short."""
    if len(data) < 64:
        return None
    version = struct.unpack_from("=H", data, 0)[0]
    out: dict = {"version": version}
    comm_at = COMM_OFFSET_V15 if version == 15 else COMM_OFFSET
    if len(data) >= comm_at + COMM_LEN:
        out["comm"] = data[comm_at:comm_at + COMM_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
    for name, off in offsets(version).items():
        if off + 8 <= len(data):          # an older kernel's shorter struct: the field is not there
            out[name] = struct.unpack_from("=Q", data, off)[0]
    return out


# -- netlink messages ----------------------------------------------------------

def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def build_message(msg_type: int, cmd: int, version: int, attrs: bytes, seq: int) -> bytes:
    body = struct.pack("=BBH", cmd, version, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST, seq, 0) + body


def getfamily_request(seq: int = 1) -> bytes:
    return build_message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, _attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"), seq)


def tgid_request(family: int, tgid: int, seq: int) -> bytes:
    return build_message(family, TASKSTATS_CMD_GET, TASKSTATS_GENL_VERSION,
                         _attr(TASKSTATS_CMD_ATTR_TGID, struct.pack("=I", tgid)), seq)


def attrs(data: bytes) -> list[tuple[int, bytes]]:
    """Netlink attributes of ``data`` (type without the nested/byte-order bits, payload)."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4 or pos + length > len(data):
            break
        out.append((kind & 0x3FFF, data[pos + 4:pos + length]))
        pos += (length + 3) & ~3
    return out


def parse_reply(data: bytes) -> tuple[int, bytes]:
    """One reply -> (0, genl attributes) or (errno, b"")."""
    if len(data) < 16:
        return errno.EPROTO, b""
    length, msg_type = struct.unpack_from("=IH", data, 0)
    if msg_type == NLMSG_ERROR:
        code = struct.unpack_from("=i", data, 16)[0] if len(data) >= 20 else -errno.EPROTO
        return -code if code else 0, b""
    if length < 20 or length > len(data):
        return errno.EPROTO, b""
    return 0, data[20:length]


def family_id(payload: bytes) -> int | None:
    for kind, val in attrs(payload):
        if kind == CTRL_ATTR_FAMILY_ID and len(val) >= 2:
            return struct.unpack_from("=H", val)[0]
    return None


def stats_of(payload: bytes) -> dict | None:
    """TASKSTATS_TYPE_AGGR_TGID -> TASKSTATS_TYPE_STATS, parsed."""
    for kind, val in attrs(payload):
        if kind == TASKSTATS_TYPE_AGGR_TGID:
            for inner, data in attrs(val):
                if inner == TASKSTATS_TYPE_STATS:
                    return parse_stats(data)
    return None


class Client:
    """A taskstats netlink socket; ``stats(tgid)`` is one round trip."""

    def __init__(self, timeout_s: float = CALL_TIMEOUT_S):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.sock.settimeout(max(timeout_s, 0.5))     # the family lookup once, a little more patient
        self.seq = 1
        self.sock.send(getfamily_request(self.seq))
        code, payload = parse_reply(self.sock.recv(65536))
        fam = family_id(payload) if code == 0 else None
        if fam is None:
            self.close()
            raise OSError(code or errno.ENOENT, "no TASKSTATS generic-netlink family")
        self.family = fam
        self.sock.settimeout(timeout_s)

    def stats(self, tgid: int) -> dict | None:
        """The process's summed taskstats; None if it is gone (ESRCH) or the reply is late or odd."""
        self.seq += 1
        try:
            self.sock.send(tgid_request(self.family, tgid, self.seq))
            while True:
                data = self.sock.recv(65536)
                if len(data) >= 12 and struct.unpack_from("=I", data, 8)[0] not in (self.seq, 0):
                    continue                 # a late answer to an earlier request
                break
        except (socket.timeout, OSError):
            return None
        code, payload = parse_reply(data)
        return stats_of(payload) if code == 0 else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# -- the sysctl ----------------------------------------------------------------

def read_sysctl(path: str = SYSCTL) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def write_sysctl(value: int, path: str = SYSCTL) -> bool:
    try:
        with open(path, "w") as f:
            f.write(f"{value}\n")
        return True
    except OSError:
        return False


def starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: when the process started, clock ticks since boot."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(4096)
        return int(stat[stat.rfind(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _boot_param() -> bool:
    """Whether the kernel was booted with ``delayacct`` (then every task has a record)."""
    try:
        with open("/proc/cmdline") as f:
            return "delayacct" in f.read().split()
    except OSError:
        return False


KEEP = ("swapin_count", "swapin_delay_total", "freepages_count", "freepages_delay_total",
        "thrashing_count", "thrashing_delay_total", "compact_count", "compact_delay_total",
        "blkio_count", "blkio_delay_total", "wpcopy_count", "wpcopy_delay_total",
        "irq_count", "irq_delay_total")


class DelayAccounting:
    """The window's delay accounting: switch it on, read the followed processes, switch it back."""

    def __init__(self, disabled: bool = False, path: str = SYSCTL, client_factory=Client):
        self.path = path
        self.old: int | None = None
        self.changed = False
        self.client: Client | None = None
        self.last_read = -1e9
        self.reads = 0
        self.calls = 0
        self.cpu_s = 0.0
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.switch_tick: int | None = None   # clock tick since boot of the switch (enabled for the window)
        self.boot_param = _boot_param()
        self.state = self._open(disabled, client_factory)

    def _open(self, disabled: bool, client_factory) -> str:
        self.old = read_sysctl(self.path)
        try:
            self.client = client_factory()
        except OSError as exc:
            return f"unavailable: no taskstats ({exc.strerror or exc})"
        if self.old == 1:
            return "already on"
        if self.old is None:
            return "already on (no kernel.task_delayacct sysctl: a kernel before 5.14 accounts always)"
        if disabled:
            return "off: --no-delayacct"
        if os.geteuid() != 0:
            return "off: not root"
        # Before the write: a task forked in a later tick than this one got a delay record.
        switch_tick = int(time.clock_gettime(time.CLOCK_BOOTTIME) * self.hz)
        if not write_sysctl(1, self.path):
            return "off: could not set kernel.task_delayacct"
        self.switch_tick = switch_tick
        self.changed = True
        atexit.register(self.restore)
        return "enabled for the window"

    @property
    def on(self) -> bool:
        return self.client is not None and (self.state.startswith("already on") or self.changed)

    def manifest(self) -> dict:
        return {"state": self.state, "sysctl_before": self.old, "restored": not self.changed,
                "reads": self.reads, "calls": self.calls, "cpu_s": round(self.cpu_s, 4),
                "max_pids": MAX_PIDS, "every_s": EVERY_S, "clk_tck": self.hz,
                "switched_on_tick": self.switch_tick, "boot_param": self.boot_param,
                "note": "counts since each task started while delay accounting was on; "
                        "with 'enabled for the window' that is the window only, and processes started "
                        "before it was switched on have no delay record (they read as zero): each "
                        "record's 'counted' is false for them (starttime <= switched_on_tick)"}

    def due(self, t_mono: float) -> bool:
        return self.on and t_mono - self.last_read >= EVERY_S

    def counted(self, starttime: int | None) -> bool | None:
        """Whether a process started at ``starttime`` (ticks since boot) has a delay record;
        None when its start time is unknown."""
        if self.switch_tick is None:
            return True                 # already on: every process counts
        if starttime is None:
            return None
        return starttime > self.switch_tick

    def read(self, procs, phase: str, starts=None) -> list[dict]:
        """One record per process answered: t, pid, comm, phase, starttime, counted, the counts and totals (ns).

        ``procs``: (pid, comm) pairs, most important first. The kernel fills
        only the delay fields of a thread group's sum (ac_comm stays empty),
        so the name comes from the caller's process pass. ``starts``: pid ->
        starttime (stat field 22) from the process pass; a pid missing there
        has its stat read here.
        """
        if not self.on:
            return []
        c0 = time.thread_time()
        self.last_read = time.monotonic()
        t = time.time()
        out = []
        names = dict(procs)
        for pid in list(names)[:MAX_PIDS]:
            self.calls += 1
            st = self.client.stats(int(pid))
            if st is None:
                continue
            start = (starts or {}).get(pid)
            if start is None:
                start = starttime(int(pid))
            rec = {"t": round(t, 3), "pid": int(pid), "comm": st.get("comm") or names[pid] or "", "phase": phase,
                   "version": st["version"], "starttime": start, "counted": self.counted(start)}
            rec.update({k: st[k] for k in KEEP if k in st})
            out.append(rec)
        self.reads += 1
        self.cpu_s += time.thread_time() - c0
        return out

    def restore(self) -> None:
        """The sysctl back as it was; idempotent (runner close, then atexit)."""
        if self.changed and self.old is not None:
            if write_sysctl(self.old, self.path):
                self.changed = False
        if self.client is not None:
            self.client.close()
            self.client = None


CGROUP_PIDS_CAP = 32     # processes taken from each followed memory cgroup


def followed(rows, known, cgroup_root: str | None, groups) -> list[tuple[int, str]]:
    """The processes to read, most important first: those in the followed
    memory cgroups (capped each), the largest by swap, then by RSS.

    ``rows``: the last process pass's (pid, rss pages, uid, raw comm);
    ``known``: its pid -> Known (VmSwap of the status reads).
    """
    comm = {pid: c.decode("utf-8", "replace") for pid, _rss, _uid, c in rows}
    out: dict[int, str] = {}
    for group in groups or ():
        if cgroup_root is None or group in ("", "/"):
            continue
        try:
            with open(os.path.join(cgroup_root, group.lstrip("/"), "cgroup.procs")) as f:
                pids = [int(x) for x in f.read(65536).split()[:CGROUP_PIDS_CAP] if x.isdigit()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            out.setdefault(pid, comm.get(pid, ""))
    by_swap = sorted(((k.swap_kb or 0), pid) for pid, k in (known or {}).items()
                     if pid in comm and (k.swap_kb or 0) > 0)
    for _swap, pid in reversed(by_swap):
        out.setdefault(pid, comm[pid])
    for pid, rss, _uid, _c in sorted(rows, key=lambda r: -r[1]):
        if len(out) >= MAX_PIDS or rss <= 0:
            break                        # no RSS: a kernel thread, no page of its own to wait for
        out.setdefault(pid, comm[pid])
    return list(out.items())[:MAX_PIDS]
