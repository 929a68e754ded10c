"""The BPF reader: one collection's BPF window, without bcc.

The runner's BPF process (child.py) drives it::

    session = ReaderSession.start(args, writer, deadline_mono)  # loader: compile + attach
    while window open: session.poll(timeout_s)                 # drain events
    session.finish()                                           # detach, aggregate, write

``start`` never raises for BPF trouble: when BPF cannot run every BPF
artifact is recorded as ``unavailable`` with a reason and a remedy, and
``poll`` just waits. It does
not import bcc: a process that does is ~76 MB resident from the import
alone, and the reader lives for the whole window. Instead ``start`` runs
the loader (loader.py) as a short-lived process of its own, which
compiles, loads and attaches exactly as an in-process session would and
hands over every map fd and every fd that holds an attachment
(handoff.py), then exits. The loader's peak RSS and CPU (wait4(2)) go to
``manifest["bpf"]["loader"]``; this process's own peak (VmHWM of
/proc/self/status: the wait4 figure of a process includes the children
it waited for, the loader among them) to ``reader_peak_rss_kb``.

Then everything runs here on the handed-over fds: the event channel
through perf buffers this process opens (perfbuf.py), records through
intake.py, map reads through bpf(2) (fdmaps.py, bpfsys.py), stacks
through procsyms.py, the artifacts through artifacts.py, as in
an in-process bcc session did. Detaching is closing the fds that hold the attachments: the
loader has exited, so these are the last references.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from snapcollect.bundle.names import BPF_TRACEPOINT_FORMATS
from snapcollect.collect.bpf import aggregates, capabilities, handoff, program, wire
from snapcollect.collect.bpf.fault_duty import DEFAULT_DUTY_PCT, PERF_COUNT_SW_PAGE_FAULTS, FaultCarry, FaultDuty
from snapcollect.collect.bpf.artifacts import ArtifactWriter, read_errors
from snapcollect.collect.bpf.capabilities import Problem
from snapcollect.collect.bpf.fault_regions import RegionNamer
from snapcollect.collect.bpf.fdmaps import FdMaps
from snapcollect.collect.bpf.intake import EventIntake
from snapcollect.collect.bpf.perfbuf import PerfBuffers
from snapcollect.collect.bpf.procsyms import ProcSymbolizer
from snapcollect.collect.bpf.symbolize import StackResolver
from snapcollect.collect.protocols import BpfWriter

FORMATS_ARTIFACT = BPF_TRACEPOINT_FORMATS
PERF_PAGES = 64                 # per CPU, 256 KiB
RESOLVE_EVERY_S = 1.0
RESOLVE_BUDGET_S = 0.05         # per second of the window, for symbols of live processes
FINISH_SYMBOLS_S = 1.0          # at the end, for what is left (the runner's end phase is short)
FINISH_DRAIN_POLLS = 8
FINISH_WARM_S = 0.2
LOADER_EXIT_WAIT_S = 5.0        # after its handoff, for the loader to be reaped
HANDOFF_MARGIN_S = 1.0          # past the deadline the loader was given


def loader_command(sock_fd: int) -> list[str]:
    return [sys.executable, "-m", "snapcollect.collect.bpf.loader", "--sock-fd", str(sock_fd)]


def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM), KiB; 0 when unreadable."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _kill(pid: int) -> None:
    # by pid, not Popen.kill: that polls first and would reap the loader
    # before wait4 reads its peak RSS (the pid cannot be reused before wait4)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _is_page_faults(what) -> bool:
    """A handed-over perf link ``[type, config]`` is the page-faults sampler."""
    return isinstance(what, list) and len(what) == 2 and what[1] == PERF_COUNT_SW_PAGE_FAULTS \
        and what[0] == 1        # PERF_TYPE_SOFTWARE


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exited with status {os.WEXITSTATUS(status)}"


class ReaderSession:
    def __init__(self, args, writer: BpfWriter, deadline_mono: float,
                 own_tgids: frozenset[int] = frozenset(), command=loader_command):
        self.args = args
        self.own_tgids = frozenset(own_tgids) | {os.getpid()}
        self.writer = writer
        self.deadline = deadline_mono
        self.command = command
        self.bpf = None               # the FdMaps while enabled: "is BPF on"
        self.plan: program.Plan | None = None
        self.clock = writer.manifest.get("clock") or {"wall": time.time(), "monotonic": time.monotonic()}
        self.info: dict = {"enabled": False}
        self.unavailable: dict[str, Problem] = {}
        self.links: list[int] = []     # fds holding attachments
        self.other_fds: list[int] = []  # program fds: closed at the end
        self.buffers: PerfBuffers | None = None
        self.intake = EventIntake(writer, self.clock, self._oom_kernel_stack)
        self.resolver: StackResolver | None = None
        self.regions: RegionNamer | None = None
        self.fault_sampler: dict = {}
        self.duty: FaultDuty | None = None
        self._sampler_fds: list[int] = []     # the loader's page-faults events, one per CPU
        self._sampler_cpus: list[int] = []    # the CPU of each of them
        self._sampler_prog: int | None = None
        self._last_resolve = 0.0
        self._resolve_every = RESOLVE_EVERY_S
        self._finished = False
        self._recorded: set[str] = set()

    # -- start -----------------------------------------------------------

    @classmethod
    def start(cls, args, writer: BpfWriter, deadline_mono: float,
              own_tgids: frozenset[int] = frozenset(), **kw) -> "ReaderSession":
        session = cls(args, writer, deadline_mono, own_tgids, **kw)
        try:
            session._start()
        except OSError:
            raise   # the bundle itself failed (disk full): the runner handles it
        except Exception as exc:  # noqa: BLE001 - BPF trouble must not stop the collection
            session._give_up(Problem(f"BPF set-up failed: {exc.__class__.__name__}: {exc}",
                                     "check `snapcollect doctor`; run with --no-bpf to skip BPF"))
        session._publish_info()
        return session

    def _give_up(self, problem: Problem, artifacts=program.ARTIFACTS) -> None:
        self._close()
        for a in artifacts:
            self.unavailable.setdefault(a, problem)
        self._record_unavailable()

    def _record_unavailable(self) -> None:
        for name, problem in self.unavailable.items():
            if name in self._recorded:
                continue
            self._recorded.add(name)
            if name in program.STREAMS:
                self.writer.declare_stream(name, status="unavailable", reason=problem.reason,
                                           remedy=problem.remedy)
            else:
                self.writer.add_missing(name, "unavailable", problem.reason, remedy=problem.remedy)

    def _start(self) -> None:
        if self.args.no_bpf:
            self._give_up(Problem("BPF disabled with --no-bpf", "run without --no-bpf (as root)"))
            return
        problem = capabilities.privilege_problem()
        if problem:
            self._give_up(problem)
            return
        doc, fds = self._run_loader()
        if doc is None:
            return
        load = doc.get("load") or {}
        self.info.update(load.get("info") or {})
        for artifact, (why, remedy) in (load.get("unavailable") or {}).items():
            self.unavailable[artifact] = Problem(str(why), str(remedy))
        if load.get("formats") is not None:
            self.writer.add_file(FORMATS_ARTIFACT, json.dumps(load["formats"], indent=1, sort_keys=True))
        plan = load.get("plan")
        if plan:
            self.plan = program.Plan(text="", probes=list(plan.get("probes") or []),
                                     fault_period=int(plan["fault_period"]),
                                     fault_step=int(plan.get("fault_step") or plan["fault_period"]),
                                     kernel_stacks=bool(plan["kernel_stacks"]))
        index_kinds = {int(link["fd"]): link["kind"] for link in doc.get("links") or []}
        sampler = {int(link["fd"]): int(link.get("cpu", -1)) for link in doc.get("links") or []
                   if link["kind"] == "perf_event" and _is_page_faults(link.get("what"))}
        sampler_prog = next((int(link["fd"]) for link in doc.get("links") or []
                             if link["kind"] == "program" and link.get("what") == program.FAULT_PERF_FUNCTION),
                            None)
        map_fds = {int(m["fd"]) for m in doc.get("maps") or []}
        for i, fd in enumerate(fds):
            if i in map_fds:
                continue
            if i in sampler:
                self._sampler_fds.append(fd)
                self._sampler_cpus.append(sampler[i])
            (self.links if index_kinds.get(i) in ("tracepoint", "raw_tracepoint", "perf_event", "kprobe")
             else self.other_fds).append(fd)
            if i == sampler_prog:
                self._sampler_prog = fd
        if load.get("problem") or not doc.get("maps"):
            why = load.get("problem") or ["the BPF loader handed over no maps", "check `snapcollect doctor`"]
            handoff.close_all(fds)
            self.links, self.other_fds = [], []
            self._give_up(Problem(str(why[0]), str(why[1])))
            return
        try:
            self.bpf = FdMaps(doc["maps"], fds)
        except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
            for i in map_fds:
                if i < len(fds):
                    os.close(fds[i])
            self._give_up(Problem(f"the maps the BPF loader handed over are unusable: {exc}",
                                  "check `snapcollect doctor`"))
            return
        self.fault_sampler = load.get("fault_sampler") or {}
        if self.fault_sampler:
            self.info["fault_sampler"] = dict(self.fault_sampler,
                                              sampling_error=aggregates.sampling_error(self.plan.fault_period))
        if all(a in self.unavailable for a in program.ARTIFACTS):
            self._close()
        else:
            self.resolver = StackResolver(ProcSymbolizer(), self.bpf, self.unavailable)
            self.regions = RegionNamer(self.own_tgids)
            try:
                self.buffers = PerfBuffers(self.bpf.table("events").raw, self.intake.take,
                                           self.intake.on_lost, pages=PERF_PAGES)
            except (OSError, KeyError) as exc:
                self._give_up(Problem(f"could not open the perf buffers of the events map: {exc}",
                                      "run as root, or lower /proc/sys/kernel/perf_event_paranoid"))
                return
            self.info["enabled"] = True
            self.info["attached_mono"] = time.monotonic()
            self._start_duty(self.info["attached_mono"])
        for name in program.STREAMS:
            if name not in self.unavailable:
                self.writer.declare_stream(name)
        self._record_unavailable()

    def _start_duty(self, now: float) -> None:
        """The perf sampler's duty cycle (fault_duty.py); the tracepoint fallback is always on."""
        if self.fault_sampler.get("kind") != "perf" or not self._sampler_fds:
            return
        pct = getattr(self.args, "fault_duty", None) or DEFAULT_DUTY_PCT
        # the duty cycle owns these fds from now on: they leave the links
        self.links = [fd for fd in self.links if fd not in self._sampler_fds]
        carry = None
        if self.plan.fault_step < self.plan.fault_period and "fault_carry" in self.bpf.tables:
            carry = FaultCarry(self.bpf.table("fault_carry").raw)
        self.duty = FaultDuty(self._sampler_fds, self._sampler_prog, self.plan.fault_step, pct, now,
                              fd_cpus=self._sampler_cpus, carry=carry)
        self.info["fault_sampler"]["duty"] = self.duty.stats(0.0)
        self.duty.start_thread()

    def _stop_duty(self, now: float) -> None:
        if self.duty is not None:
            self.duty.stop(now)

    def _run_loader(self) -> tuple[dict | None, list[int]]:
        """Start the loader, take its handoff, reap it; (None, []) after a give-up."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(self.command(theirs.fileno()), pass_fds=(theirs.fileno(),),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True)
        except OSError as exc:
            ours.close()
            theirs.close()
            self._give_up(Problem(f"the BPF loader could not be started: {exc.strerror or exc}",
                                  "check `snapcollect doctor`"))
            return None, []
        theirs.close()
        # its faults after the attach are snapcollect's, not the incident's
        self.own_tgids |= {proc.pid}
        doc, fds, why = None, [], None
        try:
            ours.settimeout(max(self.deadline - time.monotonic(), 0.0) + HANDOFF_MARGIN_S)
            ours.send(json.dumps({"options": {k: getattr(self.args, k) for k in wire.OPTIONS},
                                  "deadline_mono": self.deadline}).encode())
            doc, fds = handoff.receive(ours)
        except socket.timeout:
            why = Problem(f"the BPF loader did not hand over within {time.monotonic() - t0:.1f} s, "
                          "the BPF start's time", "give a larger --bpf-start-timeout, or --no-bpf")
        except (OSError, handoff.HandoffError) as exc:
            why = Problem(f"the BPF loader's handoff failed: {exc}", "check `snapcollect doctor`")
        finally:
            ours.close()
        if why is not None:
            _kill(proc.pid)
        self.info["loader"] = ended = self._reap(proc, t0)
        if why is not None:
            if ended["exit"] != "exited with status 0":
                # killed mid-compile (the OOM killer's first choice) or failed: say which
                why = Problem(f"{why.reason} (the loader {ended['exit']})", why.remedy)
            self._give_up(why)
            return None, []
        return doc, fds

    @staticmethod
    def _reap(proc: subprocess.Popen, t0: float) -> dict:
        end = time.monotonic() + LOADER_EXIT_WAIT_S
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = status
                # ru_maxrss is kB on Linux
                return {"pid": proc.pid, "peak_rss_kb": usage.ru_maxrss,
                        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                        "wall_s": round(time.monotonic() - t0, 3), "exit": _describe_exit(status)}
            if time.monotonic() > end:
                _kill(proc.pid)
                end = time.monotonic() + LOADER_EXIT_WAIT_S
            time.sleep(0.01)

    def _oom_kernel_stack(self, stack_id: int) -> list[str]:
        return self.resolver.kernel_frames("sys_stacks", stack_id)

    def _publish_info(self) -> None:
        info = dict(self.info)
        info["unavailable"] = {a: {"reason": p.reason, "remedy": p.remedy}
                               for a, p in sorted(self.unavailable.items())}
        info["reader_peak_rss_kb"] = peak_rss_kb()
        self.writer.merge_manifest("bpf", **info)     # keeps what the runner noted beside it

    def pending_artifacts(self) -> list[str]:
        return [name for name in program.FILES if name not in self.unavailable]

    # -- window ------------------------------------------------------------

    def poll(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for events and store them; returns at the timeout."""
        end = time.monotonic() + max(timeout_s, 0.0)
        if self.buffers is None or self._finished:
            time.sleep(max(end - time.monotonic(), 0.0))
            return
        while True:
            left = end - time.monotonic()
            try:
                self.buffers.poll(int(max(left, 0) * 1000))
                self.resolver.warm(self.intake.take_new_tasks())
                now = time.monotonic()
                if now - self._last_resolve >= self._resolve_every:
                    self.resolver.resolve_pass(RESOLVE_BUDGET_S)
                    self._name_regions(RESOLVE_BUDGET_S)
                    self._last_resolve = time.monotonic()
                    # reading big maps costs too: keep the passes under ~10 % of a CPU
                    self._resolve_every = max(RESOLVE_EVERY_S, 10 * (self._last_resolve - now))
            except Exception:  # noqa: BLE001 - keep collecting the rest
                self.intake.decode_errors += 1
            self.intake.flush()
            if time.monotonic() >= end:
                return

    # -- finish ------------------------------------------------------------

    def finish(self, deadline_mono: float | None = None, on_detached=None) -> None:
        if self._finished:
            return
        self._finished = True
        if self.bpf is None or self.buffers is None:
            self._publish_info()
            return
        t0 = time.monotonic()
        intake = self.intake
        try:
            self._detach()
            if on_detached is not None:
                on_detached()
            for _ in range(FINISH_DRAIN_POLLS):
                self.buffers.poll(0)
            self.resolver.warm(intake.take_new_tasks(), budget_s=FINISH_WARM_S)
        except Exception:  # noqa: BLE001
            intake.decode_errors += 1
        intake.flush()
        intake.declare_streams(self.unavailable)
        self._name_regions(FINISH_WARM_S)
        errors = read_errors(self.bpf)
        now = time.monotonic()
        sym_deadline = (min(deadline_mono - 0.3, now + 2 * FINISH_SYMBOLS_S) if deadline_mono
                        else now + FINISH_SYMBOLS_S)
        window_s = self.info["detached_mono"] - self.info["attached_mono"]
        duty = None
        if self.duty is not None:
            duty = dict(self.duty.stats(window_s), scale=round(self.duty.scale(window_s), 4))
            self.info["fault_sampler"].update(duty=duty, sampling_error=aggregates.sampling_error(
                self.plan.fault_period, duty["scale"], carried=bool(duty.get("carry"))))
        files = ArtifactWriter(self.writer, self.bpf, self.resolver, self.plan, self.unavailable,
                               self.own_tgids, sampler_kind=self.fault_sampler.get("kind", "tracepoint"),
                               duty=duty, regions=self.regions)
        failures = files.write_all(errors, sym_deadline)
        if failures:
            self.info.setdefault("write_errors", []).extend(failures)
        self.info.update(events_lost=intake.lost, decode_errors=intake.decode_errors,
                         records=dict(intake.written), dropped=dict(intake.dropped), errors=errors,
                         finish_s=round(time.monotonic() - t0, 3))
        self.info["symbols"] = self.resolver.stats()
        self._close()
        self._publish_info()

    def _name_regions(self, budget_s: float) -> None:
        """Name the fault regions of live processes (their maps vanish at exit)."""
        if self.regions is None or program.FAULT_FILES_ARTIFACT in self.unavailable:
            return
        try:
            keys = [(k.tgid, k.region) for k, _v in self.bpf.items("fault_regions")]
            self.regions.observe(keys, budget_s)
        except Exception:  # noqa: BLE001 - a map read failing costs the names, not the window
            self.info["fault_region_errors"] = self.info.get("fault_region_errors", 0) + 1

    def _detach(self) -> None:
        """The probes off: these fds are the last that hold them."""
        handoff.close_all(self.links)
        self.links = []
        self.info["detached_mono"] = now = time.monotonic()
        self._stop_duty(now)

    def _close(self) -> None:
        handoff.close_all(self.links)
        self.links = []
        self._stop_duty(time.monotonic())
        if self.buffers is not None:
            self.buffers.close()
            self.buffers = None
        if self.resolver is not None:
            self.resolver.symbols.close()
        if self.bpf is not None:
            self.bpf.close()
            self.bpf = None
        handoff.close_all(self.other_fds)
        self.other_fds = []
