"""The page-fault sampler's duty cycle: the perf event page-faults open part of the time.

Kernel interfaces: perf_event_open(2) of the software event page-faults
(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS) on every online CPU,
ioctl PERF_EVENT_IOC_SET_BPF with the loaded program ``on_fault_sample``,
close(2).

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
that falls entirely in a closed phase are not seen (a cycle is 0.5 s);
each phase starts counting afresh, so up to N-1 faults per CPU and phase
(N/2 on average) are never sampled: a CPU that takes fewer than N faults
in a 0.1 s phase gives no sample at all, so a host that faults lightly
(under about 10 N faults a second per CPU) is under-counted or not seen.
Where that matters, ``--fault-duty 100`` keeps the counter running.

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


def schedule(duty_pct: int, cycle_s: float = CYCLE_S) -> tuple[float, float]:
    """(cycle_s, on_s) for a duty of ``duty_pct`` percent (1..100)."""
    pct = min(max(int(duty_pct), 1), 100)
    return cycle_s, cycle_s * pct / 100.0


class FaultDuty:
    """Opens and closes the sampler on schedule; ``step(now)`` from the poll loop.

    ``fds``: the per-CPU events the loader attached (open now). ``opener``
    is ``open_sampler``'s signature, replaceable in tests."""

    def __init__(self, fds: list[int], prog_fd: int | None, period: int, duty_pct: int, now: float,
                 cpus: list[int] | None = None, opener=open_sampler, closer=os.close):
        self.cycle_s, self.on_s = schedule(duty_pct)
        self.duty_pct = min(max(int(duty_pct), 1), 100)
        self.fds = list(fds)
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
        for fd in self.fds:
            try:
                self.closer(fd)
            except OSError:
                pass
        self.fds = []
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
                "open_errors": self.errors[:MAX_OPEN_ERRORS]}

    def scale(self, window_s: float) -> float:
        """Factor from faults seen while open to faults over the window (1.0 when always open)."""
        if self.duty_pct >= 100 or self.open_s <= 0 or window_s <= 0:
            return 1.0
        return max(window_s / self.open_s, 1.0)
