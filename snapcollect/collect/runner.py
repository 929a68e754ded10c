"""``snapcollect collect``: one bounded run, from start snapshot to final manifest.

The run on CLOCK_MONOTONIC, t0 = start, D = --duration, I = --interval::

    t0               priorities lowered, host info, kernel log opened, start snapshot
    t0 + s           BPF process started; the run waits for its attach (B s,
                     at most --bpf-start-timeout)
    w0 = t0 + s + B  the window opens: kernel log backlog, tick 0
    w0 + k*I         ticks k = 0 .. floor(D / I), on a fixed schedule
    window end       end snapshot, BPF process told to finish || top-N detail
    <= t0 + D + 5 s + B   final manifest, rename .partial -> .tar.zst

One deadline bounds everything: t0 + D + 5 s, moved by B, the time the
BPF start really took (compiles take 0.5 s on one host and 11 s on
another; both are recorded: ``bpf.start_s``, ``window.opened_late_s``,
``deadline_s``). The window is shortened if the start snapshot ate into
the time the end phase needs. The start snapshot is taken before the BPF
compile, not during it: clang's memory would otherwise show up in the
host's figures at the start. The BPF session runs in a process of its
own (collect/bpf_hook.py), so its memory is not the collector's. Between ticks the main
thread waits in select(2) on the kernel log and the signal self-pipe (or
in the BPF session's poll), so kernel messages and Ctrl-C are handled as
they come. The bundle's path is the last line on stdout; everything else
goes to stderr.
"""

from __future__ import annotations

import os
import select
import sys
import textwrap
import time
import traceback

from snapcollect import __version__, invocation
from snapcollect.bundle import names
from snapcollect.bundle.names import HOST_INFO, KMSG, PROCS_TOP
from snapcollect.bundle.writer import BundleWriter, DiskFull
from snapcollect.collect import degrade, headroom, output, own_processes, priority
from snapcollect.collect.bpf_hook import BpfHook
from snapcollect.collect.deepdive_hook import COST_NOTICE, DeepDiveHook, measured_cost_line
from snapcollect.collect.clock import Deadline, TickSchedule, now
from snapcollect.collect.detail import collect_detail
from snapcollect.collect import host_speed
from snapcollect.collect.jobs import Jobs
from snapcollect.collect.privacy import Privacy
from snapcollect.collect.progress import Progress
from snapcollect.collect.sampler import Sampler
from snapcollect.collect.quiet import quiet_output
from snapcollect.collect.signals import StopFlag, StoppedBeforeStart
from snapcollect.collect.snapshot import HostLayout, take_snapshot
from snapcollect.collect.sources import cgroups, host, numa, taskstats
from snapcollect.collect.sources.kmsg import KernelLog
from snapcollect.errors import SnapcollectError

# The next three are for a healthy host; a slow one gets them times its
# host_speed factor (1-8), measured at start-up and recorded.
SLACK_S = 5.0              # wall time allowed beyond --duration, everything included
START_SNAPSHOT_S = 1.5     # the start snapshot's own bound
END_RESERVE_S = 1.5        # kept for the end phase even if the set-up ran late
CLOSE_RESERVE_S = 0.3      # kept for the final manifest and the rename

EXIT_DISK_FULL = 1
EXIT_ERROR = 1


def _iso(t_wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_wall)) + f".{int(t_wall % 1 * 1000):03d}Z"


def _clock_pair() -> tuple[float, float]:
    """(wall, monotonic) read as close together as possible."""
    best = None
    for _ in range(3):
        m1 = time.monotonic()
        w = time.time()
        m2 = time.monotonic()
        if best is None or m2 - m1 < best[2]:
            best = (w, (m1 + m2) / 2, m2 - m1)
    return best[0], best[1]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class Run:
    """State of one collection."""

    def __init__(self, args, dest: output.Destination, t0_wall: float, t0_mono: float, progress: Progress,
                 stop: StopFlag, privacy: Privacy, messages=None, priority_set: dict | None = None):
        self.args = args
        self.messages = messages          # our own lines; stderr may be silenced (--quiet)
        self.dest = dest
        self.privacy = privacy
        self.priority = priority_set or {}
        self.t0_wall = t0_wall
        self.t0_mono = t0_mono
        self.duration = float(args.duration)
        self.interval = float(args.interval)
        self.speed = host_speed.measure()
        self.slack_s = self.speed.scale(SLACK_S)
        self.hard = Deadline(t0_mono + self.duration + self.slack_s)
        self.progress = progress
        self.stop = stop
        self.jobs = Jobs()
        self.kmsg = KernelLog()
        self.pending_kmsg: list[dict] = []
        self.phase = "starting"
        self.phases: dict[str, float] = {}
        self.incomplete: list[str] = []
        self.window: dict = {}
        self.sampler: Sampler | None = None
        self.sched: TickSchedule | None = None
        self.writer: BundleWriter | None = None
        self.bpf: BpfHook | None = None
        self.deepdive: DeepDiveHook | None = None      # --pid/--comm only
        self.delays: taskstats.DelayAccounting | None = None
        self.layout: HostLayout | None = None
        self.deadline_moved_s = 0.0
        self.written: list[str] | None = None    # where execute() appends the bundle's path
        self.detail_top = args.top
        self.page_kb = os.sysconf("SC_PAGE_SIZE") // 1024

    # -- helpers -----------------------------------------------------------

    def _show(self, force: bool = False) -> None:
        bound = True                        # outside sampling: the deadline bounds what is left
        if self.sched is None:              # setting up: the window has not opened
            elapsed, left = 0.0, self.hard.remaining()
        elif self.phase == "sampling":
            elapsed, left, bound = now() - self.sched.start, self.sched.end - now(), False
        else:
            elapsed = self.window.get("end_mono", now()) - self.sched.start
            left = self.hard.remaining()
        hint = "Ctrl-C: stop+keep" if not self.stop.stopped else "Ctrl-C again: skip the rest"
        self.progress.update(self.phase, max(0.0, elapsed), self.duration, left,
                             self.sampler.ticks if self.sampler else 0, bound=bound, force=force, hint=hint)

    def _timed(self, key: str, t_start: float) -> None:
        self.phases[key] = round(now() - t_start, 3)

    def _flush_kmsg(self) -> None:
        if self.pending_kmsg:
            recs, self.pending_kmsg = self.pending_kmsg, []
            self.writer.add_records(KMSG, recs)

    def _wait_until(self, t_mono: float) -> bool:
        """Wait for ``t_mono`` while draining the kernel log; False if stopped."""
        while not self.stop.stopped:
            left = t_mono - now()
            if left <= 0:
                return True
            rest = min(left, 0.2)
            if rest > 0.002 and not self.stop.stopped:
                fds = [self.stop.wakeup_r]
                if self.kmsg.mode == "kmsg":
                    fds.append(self.kmsg.fileno())
                try:
                    select.select(fds, [], [], rest)
                except InterruptedError:
                    pass
                self.stop.drain_wakeup()
            self.pending_kmsg.extend(self.kmsg.poll())
            self._show()
        return False

    # -- phases ------------------------------------------------------------

    def _manifest(self) -> dict:
        return {
            "tool_version": __version__,
            "host": host.hostname(),
            "kernel": os.uname().release,
            "started_at": _iso(self.t0_wall),
            "duration_requested_s": self.duration,
            "interval_s": self.interval,
            "top_n": self.args.top,
            "deadline_s": self.duration + self.slack_s,
            "host_speed": self.speed.manifest(),
            "uid": os.getuid(),
            "clock": {"wall": self.t0_wall, "monotonic": self.t0_mono},
            # Completed at the close with the commands it ran (own_processes).
            "collector_pids": own_processes.pids(),
            "privacy": self.privacy.manifest(),
        }

    def _setup(self) -> HostLayout:
        w = self.writer
        w.add_file(HOST_INFO, host.info_bytes())
        self.kmsg.open(Deadline.after(1.0).at)
        if self.kmsg.mode is None:
            w.declare_stream(KMSG, status=self.kmsg.status.status, reason=self.kmsg.status.reason,
                             source="none")
        else:
            w.declare_stream(KMSG, source=self.kmsg.mode)
        return HostLayout(nodes=numa.nodes(), cgroup=cgroups.find_hierarchy())

    # -- delay accounting (collect/sources/taskstats.py) --------------------

    def _delays_open(self) -> None:
        """kernel.task_delayacct on for the window (root, not --no-delayacct)."""
        self.delays = taskstats.DelayAccounting(disabled=bool(getattr(self.args, "no_delayacct", False)))
        self.writer.merge_manifest("delayacct", **self.delays.manifest())
        if not self.delays.on:
            self.writer.declare_stream(names.DELAY_TASKSTATS, status="unavailable", reason=self.delays.state)
        else:
            self.writer.declare_stream(names.DELAY_TASKSTATS)

    def _delays_read(self, phase: str, force: bool = False) -> None:
        d = self.delays
        if d is None or not d.on or self.sampler is None or self.sampler.last_pass is None:
            return
        if not force and not d.due(now()):
            return
        layout = self.layout
        root = layout.cgroup[1] if layout is not None and layout.cgroup else None
        procs = taskstats.followed(self.sampler.last_pass.rows, self.sampler.state.known, root,
                                   layout.cgroups_chosen if layout is not None else ())
        own = set(own_processes.pids())
        known = self.sampler.state.known
        starts = {}
        for p, _c in procs:          # stat field 22, as the process pass read it
            k = known.get(p)
            if k is not None and k.starttime.isdigit():
                starts[p] = int(k.starttime)
        recs = d.read([(p, c) for p, c in procs if p not in own], phase, starts)
        if recs:
            self.writer.add_records(names.DELAY_TASKSTATS, recs)

    def _delays_close(self) -> None:
        """The sysctl back as it was: every exit path of execute() comes here."""
        if self.delays is None:
            return
        self.delays.restore()
        if self.writer is not None:
            self.writer.merge_manifest("delayacct", **self.delays.manifest())

    def _sample(self) -> None:
        """The window: ticks on the fixed schedule until the end or a signal."""
        w0_wall, w0 = _clock_pair()
        self.window = {"start": w0_wall, "start_mono": w0}
        if self.deadline_moved_s:
            self.window["opened_late_s"] = self.deadline_moved_s
            self.window["opened_late_by"] = "the BPF start (compile and attach)"
        self.pending_kmsg.extend(self.kmsg.backlog(Deadline.after(1.0).at))
        self._flush_kmsg()
        sched = self.sched = TickSchedule(w0, self.interval, self.duration)
        latest_end = self.hard.at - self.speed.scale(END_RESERVE_S)
        if sched.end > latest_end:
            sched.shorten(latest_end)
            self.window["shortened"] = (f"set-up took {w0 - self.t0_mono:.1f} s; the window was cut to "
                                        f"{sched.end - w0:.1f} s to keep the run within "
                                        f"{self.duration + self.slack_s:g} s")
        self.phase = "sampling"
        last_wall, last_mono = w0_wall, w0
        k: int | None = 0
        while k is not None:
            if not self._wait_until(sched.slot(k)):
                break
            last_wall, last_mono = time.time(), now()
            tick_deadline = min(sched.slot(k) + 0.9 * self.interval, latest_end)
            self.sampler.take(k, tick_deadline)
            self._delays_read("start" if k == 0 else "tick", force=k == 0)
            self._flush_kmsg()
            self._show()
            if self.stop.stopped:
                break
            k = sched.next_after(k, now())
        if self.stop.stopped:
            last_wall, last_mono = _clock_pair()
        self.window.update(end=last_wall, end_mono=last_mono)

    def _finish(self, layout: HostLayout) -> None:
        """End snapshot, then top-N detail while BPF finishes, all before the deadline."""
        self.phase = "finishing"
        self._show(force=True)
        w = self.writer
        end = Deadline(self.hard.at - CLOSE_RESERVE_S)
        t = now()
        skip = "skipped: the run was stopped by a second signal" if self.stop.hurry else None
        snap_deadline = end.sooner(max(0.5, min(self.speed.scale(2.0), end.remaining() * 0.4)))
        if not take_snapshot(names.END, w, layout, self.jobs, snap_deadline, self.stop, skip_reason=skip,
                             speed=self.speed.factor):
            self.incomplete.append("end snapshot")
        self._timed("end_snapshot_s", t)
        if not self.stop.hurry:
            self._delays_read("end", force=True)
        self._show(force=True)
        # BPF finish (detach, drain, aggregate, symbolise) costs CPU in the
        # BPF process: asked for after the end snapshot so that the
        # snapshot's reads and commands stay close together in time.
        self.bpf.finish_async(end.at)
        if self.deepdive is not None:
            self.deepdive.finish_async(end.at)
        # pmap's own page faults must not reach the fault stacks: detail
        # starts once the probes are off (a few ms on a quiet host, more on
        # a loaded one), keeping at least 1.5 s of the end phase for it.
        if not self.bpf.wait_detached(min(3.0, max(end.remaining() - 1.5, 0.0))):
            self.writer.merge_manifest("bpf", detail_before_detach=True)
        if self.deepdive is not None:
            self.deepdive.wait_detached(min(3.0, max(end.remaining() - 1.5, 0.0)))

        t = now()
        last = self.sampler.last_pass
        if self.stop.hurry:
            w.add_missing(PROCS_TOP, "missing", "skipped: the run was stopped by a second signal")
            self.incomplete.append("process detail")
        elif not collect_detail(w, self.jobs, last, self.sampler.last_pass_k, self.detail_top, self.page_kb,
                                Deadline(end.at - 0.1), self.stop):
            self.incomplete.append("process detail")
        self._timed("detail_s", t)

        t = now()
        if not self.bpf.wait_finish(end.at):
            self.incomplete.append("BPF finish")
        if self.deepdive is not None and not self.deepdive.wait_finish(end.at):
            self.incomplete.append("deep dive finish")
        self._timed("bpf_finish_s", t)
        self.pending_kmsg.extend(self.kmsg.final(end.sooner(0.5).at))
        self._flush_kmsg()
        if self.kmsg.mode is not None:
            w.declare_stream(KMSG, **self.kmsg.manifest_extra())

    def _move_deadline(self, waited_s: float) -> None:
        """The window opens after the BPF start: the deadline moves by what it took."""
        if waited_s <= 0:
            return
        self.hard = Deadline(self.hard.at + waited_s)
        self.deadline_moved_s = round(waited_s, 3)
        outcome = self.bpf.outcome
        if outcome is not None and (waited_s >= 1.0 or not outcome.attached) and not self.args.quiet:
            # a lasting line, terminal or not: the run ends later than asked,
            # or without BPF
            self.progress.clear()
            _say(textwrap.fill("snapcollect: " + outcome.text, 79, subsequent_indent="  "), self.messages)

    def _start_deep_dive(self) -> None:
        """--pid/--comm: its cost said first, then measured and said again."""
        if not self.args.deep_dive or self.stop.stopped:
            return
        self.deepdive = DeepDiveHook(self.args, self.writer, self.stop)
        self.progress.clear()
        _say(textwrap.fill("snapcollect: " + COST_NOTICE, 79, subsequent_indent="  "), self.messages)
        self.phase = "deep-dive setup"
        self.deepdive.start()
        line = measured_cost_line(self.writer.manifest.get("deepdive") or {})
        if line:
            self.progress.clear()
            _say(textwrap.fill("snapcollect: " + line, 79, subsequent_indent="  "), self.messages)

    def collect(self) -> None:
        """All phases; exceptions (DiskFull, bugs) propagate to ``execute``."""
        t = now()
        layout = self.layout = self._setup()
        self._delays_open()
        self.sampler = Sampler(self.writer, self.jobs, layout.nodes, self.interval, layout=layout)
        self.progress.say(f"snapcollect: {self.duration:g} s window; "
                          "Ctrl-C to stop early and keep what was collected")
        self._show(force=True)
        if not take_snapshot(names.START, self.writer, layout, self.jobs,
                             self.hard.sooner(self.speed.scale(START_SNAPSHOT_S)), self.stop,
                             speed=self.speed.factor):
            self.incomplete.append("start snapshot")
        self._timed("start_snapshot_s", t)

        t = now()
        # what memory is left decides what is left out: BPF, then detail
        room = headroom.measure()
        self.detail_top, why = degrade.detail_top(self.args.top, room)
        if why:
            self.writer.merge_manifest("degraded", detail=why)
        self.bpf = BpfHook(self.args, self.writer, self.stop, room=lambda: room)
        if not self.stop.stopped:
            self.phase = "BPF setup"
            self._show(force=True)
            self.bpf.start()
            self._start_deep_dive()
            if self.bpf.proc is not None or self.deepdive is not None:   # the window waited for them
                self._move_deadline(now() - t)
        elif not self.args.no_bpf:
            self.writer.merge_manifest("bpf", enabled=False, reason="not started: the run was stopped early")
        else:
            self.writer.merge_manifest("bpf", enabled=False, reason="--no-bpf")
        self._timed("bpf_start_s", t)

        t = now()
        if not self.stop.stopped:
            self._sample()
        else:
            self.window = {}
        self._timed("window_s", t)
        self._finish(layout)

    def execute(self) -> int:
        self.writer = self.dest.open_writer(self._manifest(), scrub=self.privacy.scrub)

        stopped_by, stop_reason, code, message = "deadline", None, 0, None
        try:
            self.collect()
        except DiskFull as exc:
            stopped_by, code = "disk_full", EXIT_DISK_FULL
            ticks = self.sampler.ticks if self.sampler else 0
            stop_reason = (f"the output file system filled up after {ticks} samples "
                           f"({exc.strerror}); the bundle holds what was written before")
            message = f"output file system full: bundle truncated after {ticks} samples"
        except Exception as exc:  # noqa: BLE001 - finish the bundle, one clear line, no traceback
            stopped_by, code = "error", EXIT_ERROR
            stop_reason = f"internal error in phase {self.phase!r}: {type(exc).__name__}: {exc}"
            message = stop_reason + " (bundle kept)"
            if os.environ.get("SNAPCOLLECT_DEBUG"):
                traceback.print_exc()
        if stopped_by == "deadline" and self.stop.stopped:
            stopped_by, code = "signal", self.stop.exit_code
            win = self.window
            got = (win.get("end_mono", now()) - win["start_mono"]) if win.get("start_mono") else 0.0
            stop_reason = (f"stopped by {self.stop.name} after {got:.1f} s of the "
                           f"{self.duration:g} s window")
            if self.stop.hurry and self.incomplete:
                stop_reason += f"; a second signal skipped: {', '.join(self.incomplete)}"
        elif stopped_by == "deadline" and self.incomplete:
            stop_reason = f"ran out of time for: {', '.join(self.incomplete)}"

        try:
            self._delays_close()
        except Exception:  # noqa: BLE001 - the manifest write may fail on a full disk; the sysctl is back
            pass
        if self.bpf is not None:
            self.bpf.abandon()     # a no-op after a normal finish
        if self.deepdive is not None:
            self.deepdive.abandon()
        cost = host.self_cost()
        if self.bpf is not None and self.bpf.process_cost:
            # the collector's own peak RSS and its BPF process's, each measured by the kernel
            cost["bpf_process"] = self.bpf.process_cost
        if self.deepdive is not None and self.deepdive.process_cost:
            cost["deepdive_process"] = self.deepdive.process_cost
        final = {
            "ended_at": _iso(time.time()),
            "complete": stopped_by == "deadline" and not self.incomplete,
            "stopped_by": stopped_by,
            "stop_reason": stop_reason,
            "priority": self.priority,
            # moved by the BPF start (the window waited for it)
            "deadline_s": round(self.duration + self.slack_s + self.deadline_moved_s, 3),
            "ticks": self.sampler.ticks if self.sampler else 0,
            "skipped_ticks": self.sched.skipped if self.sched else 0,
            "window": self.window,
            "phases": self.phases,
            "wall_s": round(now() - self.t0_mono, 3),
            "collector_pids": own_processes.pids(),
            **cost,
        }
        if self.kmsg is not None:
            self.kmsg.close()
        self.progress.clear()
        out_path = self.writer.close(**final)
        if out_path.endswith(names.PARTIAL_SUFFIX):
            message = (message or "the bundle could not be finished") + \
                "; it ends at the last whole sample (snapcollect show can read it)"
        if message:
            _say(f"snapcollect: {message}: {out_path}", self.messages)
        elif stopped_by == "signal":
            _say(f"snapcollect: {stop_reason}; the bundle is marked incomplete: {out_path}", self.messages)
        elif not self.args.quiet:
            bad = sum(1 for a in self.writer.artifacts() if a.get("status") != "ok")
            size = os.path.getsize(out_path) if os.path.exists(out_path) else 0
            _say(f"snapcollect: wrote {_size(size)}, {final['ticks']} samples; {bad} artifacts not "
                 f"collected\n  see: {invocation.command()} show {out_path}")
        _say(out_path, sys.stdout)
        # The command line prints the one-screen summary of it on a terminal.
        if self.written is not None:
            self.written.append(out_path)
        return code


def _say(text: str, stream=None) -> None:
    """Print, unless the terminal is gone (after SIGHUP): the bundle is written anyway."""
    try:
        print(text, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _print_bpf(args) -> int:
    try:
        from snapcollect.collect.bpf.host_plan import print_programs
    except ImportError as exc:
        raise SnapcollectError(f"BPF support is not available: {exc}") from None
    return print_programs(args)


def run_collection(args, stop: StopFlag | None = None, written: list[str] | None = None) -> int:
    """Entry point of ``snapcollect collect``; returns the exit code.

    ``stop``: the flag main() installed on its first line (signals during
    start-up are in it); installed here if not given. ``written``: gets the
    bundle's path appended once it is written.
    """
    if args.print_bpf:
        return _print_bpf(args)
    # before any thread starts: nice and the I/O priority are per thread
    lowered = priority.lower_own()
    stop = (stop or StopFlag()).install()
    progress = None
    try:
        with quiet_output(args.quiet) as messages:
            t0_wall, t0_mono = _clock_pair()
            privacy = Privacy.for_args(args)
            dest = output.resolve(args.output, privacy.host_label(host.hostname()), t0_wall)
            progress = Progress.for_args(args.quiet)
            stop.check_not_stopped()
            run = Run(args, dest, t0_wall, t0_mono, progress, stop, privacy, messages, lowered)
            run.written = written
            # Threads still blocked in a /proc read or in bcc when this returns
            # are daemon threads: they do not hold up the exit.
            return run.execute()
    except StoppedBeforeStart as exc:
        _say(f"snapcollect: stopped by {exc} before the collection started; no bundle written")
        return stop.exit_code
    finally:
        if progress is not None:
            progress.clear()
        stop.restore()
