"""The page-fault sampler's duty cycle: the perf event page-faults open part of the time.

Kernel interfaces: perf_event_open(2) of the software event page-faults
(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS) on every online CPU,
ioctl PERF_EVENT_IOC_SET_BPF with the loaded program ``on_fault_sample``,
read(2) of the event's count, close(2); BPF_MAP_LOOKUP_ELEM /
BPF_MAP_UPDATE_ELEM of the per-CPU array ``fault_carry``.

Why: while any page-faults event exists, every page fault of every task
goes through perf's software-event path (a static key turns it on; then a
per-CPU hash lookup and a counter update per fault), whatever the sample
period. On a program that does nothing but fault (~1.7 us a fault here)
that alone measured +4.5 % (``perf stat -e page-faults -a``, no BPF at
all), and snapcollect's 1-in-128 sampler +4.9-5.7 %. An event that is
only disabled (PERF_EVENT_IOC_DISABLE) keeps the static key on: +1.1 %.
So the sampler is opened for ``on_s`` of every ``cycle_s`` and closed for
the rest; the last close of the event turns the static key off, and a
fault costs nothing extra while it is closed. Estimated fault counts are
the samples x the period x ``window / time open``.

What it costs in accuracy, and says in the artifact: faults of a burst
that falls entirely in a closed phase are not seen (a cycle is 0.5 s).
What a phase counted is not lost at its close: a new event starts
counting at 0, so the events sample 1 in N/8 (``program.fault_step``) and
the BPF program records 1 in N through a per-CPU carry (the map
``fault_carry``, which outlives the events). At a close each event's
count is read (read(2) of the perf fd: the faults it saw) and what it had
counted since its last overflow, count mod N/8, is added to its CPU's
carry (``FaultCarry``). A CPU that takes a few faults per phase gets its
sample in a later phase, and the sum of the counts is the exact number
of faults while the sampler was open (``faults_open``).

``cycle_s``/``on_s`` are per collection; ``share`` 1.0 (``--fault-duty
100``) keeps the events the loader attached open for the whole window, as
before. The loader's own events are used for the first phase, then
closed; later phases open the reader's own.
"""

from __future__ import annotations

import ctypes as ct
import fcntl
import os
import platform
import struct
import threading
import time

from snapcollect.collect.bpf.perfbuf import (PERF_ATTR_SIZE_VER0, PERF_FLAG_FD_CLOEXEC, PERF_TYPE_SOFTWARE,
                                             SYSCALL_NR, _Attr, online_cpus)

PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_EVENT_IOC_SET_BPF = 0x40042408      # _IOW('$', 8, __u32)
CYCLE_S = 0.5
DEFAULT_DUTY_PCT = 20
EPSILON_S = 1e-6                         # a change due this close to now is due now (float steps)
JOIN_S = 1.0                             # for the thread to notice it is stopped
MAX_OPEN_ERRORS = 3                      # phases that failed to open before giving up

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


def open_sampler(cpu: int, period: int, prog_fd: int) -> int:
    """One CPU's page-faults event sampling 1 in ``period``, running ``prog_fd``."""
    nr = SYSCALL_NR.get(platform.machine())
    if nr is None:
        raise OSError(38, f"perf_event_open number unknown on {platform.machine()}")
    attr = _Attr(type=PERF_TYPE_SOFTWARE, size=PERF_ATTR_SIZE_VER0, config=PERF_COUNT_SW_PAGE_FAULTS,
                 sample_period=period)
    fd = _libc.syscall(nr, ct.byref(attr), ct.c_int(-1), ct.c_int(cpu), ct.c_int(-1),
                       ct.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ct.get_errno()
        raise OSError(err, f"perf_event_open(page-faults, cpu {cpu}): {os.strerror(err)}")
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
    except OSError:
        os.close(fd)
        raise
    return fd


def read_count(fd: int) -> int:
    """The faults a page-faults event counted since it was opened (read_format 0: one u64)."""
    raw = os.read(fd, 8)
    if len(raw) != 8:
        raise OSError(5, f"short read of a perf event count ({len(raw)} bytes)")
    return struct.unpack("=Q", raw)[0]


class FaultCarry:
    """The BPF program's per-CPU carry (``fault_carry``, a one-slot per-CPU
    array of u64): what a closed event had counted since its last overflow
    is added to its CPU's slot. Only while no event is open, so the
    program does not write it at the same time."""

    KEY = struct.pack("=I", 0)

    def __init__(self, raw_map):
        self.raw = raw_map

    def add(self, faults_by_cpu: dict[int, int]) -> None:
        value = self.raw.lookup(self.KEY)
        if value is None:
            raise OSError(2, "fault_carry has no slot 0")
        slots = list(struct.unpack(f"={len(value) // 8}Q", value[:len(value) // 8 * 8]))
        for cpu, faults in faults_by_cpu.items():
            if 0 <= cpu < len(slots) and faults > 0:
                slots[cpu] += int(faults)
        self.raw.update(self.KEY, struct.pack(f"={len(slots)}Q", *slots) + value[len(slots) * 8:])


def schedule(duty_pct: int, cycle_s: float = CYCLE_S) -> tuple[float, float]:
    """(cycle_s, on_s) for a duty of ``duty_pct`` percent (1..100)."""
    pct = min(max(int(duty_pct), 1), 100)
    return cycle_s, cycle_s * pct / 100.0


class FaultDuty:
    """Opens and closes the sampler on schedule; ``step(now)`` from the poll loop.

    ``fds``: the per-CPU events the loader attached (open now), on the
    CPUs ``fd_cpus`` (-1: not known, nothing carried). ``period``: the
    events' sample_period. ``carry``: a ``FaultCarry`` when the program
    records through one, else None. ``opener``, ``closer`` and ``counter``
    are ``open_sampler``'s, ``os.close``'s and ``read_count``'s
    signatures, replaceable in tests."""

    def __init__(self, fds: list[int], prog_fd: int | None, period: int, duty_pct: int, now: float,
                 cpus: list[int] | None = None, opener=open_sampler, closer=os.close,
                 fd_cpus: list[int] | None = None, carry: FaultCarry | None = None, counter=read_count):
        self.cycle_s, self.on_s = schedule(duty_pct)
        self.duty_pct = min(max(int(duty_pct), 1), 100)
        self.fds = list(fds)
        self.fd_cpus = list(fd_cpus) if fd_cpus is not None and len(fd_cpus) == len(fds) else [-1] * len(fds)
        self.carry = carry
        self.counter = counter
        self.faults_open = 0           # what the closed events counted: faults while open
        self.carried = 0               # of which added to the carry at a close
        self.count_errors = 0
        self.carry_error: str | None = None
        self.prog_fd = prog_fd
        self.period = period
        self.opener = opener
        self.closer = closer
        self.cpus = cpus
        self.start = now
        self.opened_at: float | None = now if self.fds else None
        self.open_s = 0.0
        self.phases = 1 if self.fds else 0
        self.errors: list[str] = []
        self.stopped_at: float | None = None
        # cycling needs the program to attach again; without it, stay open
        self.cycling = self.duty_pct < 100 and prog_fd is not None and bool(self.fds)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def next_change(self, now: float) -> float | None:
        """When ``step`` has something to do next after ``now`` (monotonic s); None: never."""
        if not self.cycling or self.stopped_at is not None:
            return None
        phase_start = self.start + ((now - self.start) // self.cycle_s) * self.cycle_s
        if now - phase_start < self.on_s - EPSILON_S:
            return phase_start + self.on_s
        return phase_start + self.cycle_s

    def step(self, now: float) -> None:
        """Close or open, whichever the schedule says for ``now``."""
        if not self.cycling or self.stopped_at is not None:
            return
        into = (now - self.start) % self.cycle_s
        want_open = into < self.on_s - EPSILON_S
        if self.opened_at is not None and not want_open:
            self._close(now)
        elif self.opened_at is None and want_open:
            self._open(now)

    def _close(self, now: float) -> None:
        rest: dict[int, int] = {}
        for fd, cpu in zip(self.fds, self.fd_cpus):
            try:
                count = self.counter(fd)
            except OSError:
                count = None
                self.count_errors += 1
            try:
                self.closer(fd)
            except OSError:
                pass
            if count is None:
                continue
            self.faults_open += count
            if cpu >= 0 and self.period > 0:
                rest[cpu] = rest.get(cpu, 0) + count % self.period
        # the events are all closed: the program cannot run and write the carry meanwhile
        if self.carry is not None and rest:
            try:
                self.carry.add(rest)
                self.carried += sum(rest.values())
            except OSError as exc:
                self.carry_error = str(exc)
                self.carry = None       # counts from now on start afresh at each phase
        self.fds = []
        self.fd_cpus = []
        if self.opened_at is not None:
            self.open_s += max(now - self.opened_at, 0.0)
        self.opened_at = None

    def _open(self, now: float) -> None:
        cpus = self.cpus if self.cpus is not None else online_cpus()
        fds = []
        try:
            for cpu in cpus:
                fds.append(self.opener(cpu, self.period, self.prog_fd))
        except OSError as exc:
            for fd in fds:
                self.closer(fd)
            self.errors.append(str(exc))
            if len(self.errors) >= MAX_OPEN_ERRORS:
                self.cycling = False        # stays closed: the estimate uses the time it was open
            return
        self.fds = fds
        self.fd_cpus = list(cpus)
        self.opened_at = now
        self.phases += 1

    def run(self, stopping: threading.Event, clock=time.monotonic) -> None:
        """Follow the schedule until ``stopping`` is set: the body of the duty thread.

        A thread of its own rather than the reader's poll loop, whose symbol
        passes run for tens of ms: a phase that closes late is measured
        (``open_s``) but makes the open share uneven over the window, and the
        estimate of a process that faulted only part of the window would
        take the error. The thread waits for the GIL at most a switch
        interval (5 ms)."""
        while not stopping.is_set():
            now = clock()
            change = self.next_change(now)
            if change is None:
                return
            if stopping.wait(max(change - now, 0.0)):
                return
            self.step(clock())

    def start_thread(self) -> None:
        """Follow the schedule in a thread of its own (``run``) when there is one to follow."""
        if self.cycling and self._thread is None:
            self._thread = threading.Thread(target=self.run, args=(self._stopping,), name="fault-duty",
                                            daemon=True)
            self._thread.start()

    def stop(self, now: float) -> None:
        """The window ends: stop the thread, close what is open (the probes are off)."""
        if self.stopped_at is not None:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(JOIN_S)
            self._thread = None
        self._close(now)
        self.stopped_at = now

    def stats(self, window_s: float) -> dict:
        """For the manifest and bpf/fault_stacks.json: how long the sampler was open."""
        share = (self.open_s / window_s) if window_s > 0 else 0.0
        return {"duty_pct": self.duty_pct, "cycle_s": self.cycle_s, "on_s": round(self.on_s, 3),
                "open_s": round(self.open_s, 3), "window_s": round(window_s, 3),
                "open_share": round(min(share, 1.0), 4), "phases": self.phases,
                "open_errors": self.errors[:MAX_OPEN_ERRORS],
                "event_period": self.period, "carry": self.carry is not None,
                "faults_open": self.faults_open if self.stopped_at is not None else None,
                "carried": self.carried, "count_errors": self.count_errors,
                "carry_error": self.carry_error}

    def scale(self, window_s: float) -> float:
        """Factor from faults seen while open to faults over the window (1.0 when always open)."""
        if self.duty_pct >= 100 or self.open_s <= 0 or window_s <= 0:
            return 1.0
        return max(window_s / self.open_s, 1.0)
