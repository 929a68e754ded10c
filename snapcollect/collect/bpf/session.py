"""Run the BPF collectors for one collection window.

The runner drives it::

    session = BpfSession.start(args, writer, deadline_mono)   # compile + attach
    while window open: session.poll(timeout_s)               # drain events
    session.finish()                                         # detach, aggregate, write

``start`` never raises: when BPF cannot run (no root, no bcc, no kernel
headers, no tracefs, a probe that will not attach, not enough time) every
BPF artifact is recorded as ``unavailable`` with a reason and a remedy,
and ``poll`` just waits. All programs are one BPF object, compiled once
before the window opens; compile time and the RSS during the compile go
to ``writer.manifest["bpf"]``. The collector runs it in a process of its
own (collect/bpf/child.py), ``writer`` then being a wire.PipeWriter; it
may be any protocols.BpfWriter.

This module only orders the steps; each concern has its own module:
host_plan.py (what to compile on this kernel), compile.py (text -> loaded
object), attach.py (probes on and off), intake.py (event records ->
streams), symbolize.py + symbols.py (stacks -> frames), artifacts.py
(final maps -> files). Kernel interface of its own: the perf buffer of
the ``events`` map (through bcc: perf_event_open PERF_COUNT_SW_BPF_OUTPUT
per CPU and its mmap'd ring).
"""

from __future__ import annotations

import json
import os
import time

from snapcollect.bundle.names import BPF_TRACEPOINT_FORMATS
from snapcollect.collect.bpf import aggregates, capabilities, host_plan, program
from snapcollect.collect.bpf import compile as bpf_compile
from snapcollect.collect.bpf.artifacts import ArtifactWriter, read_errors
from snapcollect.collect.bpf.attach import Attachments
from snapcollect.collect.bpf.capabilities import Problem
from snapcollect.collect.bpf.intake import EventIntake
from snapcollect.collect.bpf.maps import BccMaps
from snapcollect.collect.bpf.symbolize import StackResolver
from snapcollect.collect.bpf.symbols import Symbolizer
from snapcollect.collect.protocols import BpfWriter

FORMATS_ARTIFACT = BPF_TRACEPOINT_FORMATS
PERF_PAGES = 64                 # per CPU, 256 KiB
MIN_COMPILE_S = 1.0             # do not start a compile with less time left
RESOLVE_EVERY_S = 1.0
RESOLVE_BUDGET_S = 0.05         # per second of the window, for symbols of live processes
FINISH_SYMBOLS_S = 1.0          # at the end, for what is left (the runner's end phase is short)
FINISH_DRAIN_POLLS = 8          # whatever is still in the perf buffers after the detach
FINISH_WARM_S = 0.2


class BpfSession:
    """One collection's BPF programs; see the module docstring."""

    def __init__(self, args, writer: BpfWriter, deadline_mono: float,
                 own_tgids: frozenset[int] = frozenset()):
        self.args = args
        # The collector and this process: their faults (the compile, the
        # symbol tables) are snapcollect's cost, not the incident's stacks.
        self.own_tgids = frozenset(own_tgids) | {os.getpid()}
        self.writer = writer
        self.deadline = deadline_mono
        self.bpf = None
        self.bcc = None
        self.plan: program.Plan | None = None
        self.clock = writer.manifest.get("clock") or {"wall": time.time(), "monotonic": time.monotonic()}
        self.info: dict = {"enabled": False}
        self.unavailable: dict[str, Problem] = {}
        self.attachments: Attachments | None = None
        self.intake = EventIntake(writer, self.clock, self._oom_kernel_stack)
        self.resolver: StackResolver | None = None
        self._last_resolve = 0.0
        self._resolve_every = RESOLVE_EVERY_S
        self._finished = False
        self._recorded: set[str] = set()

    # -- start -----------------------------------------------------------

    @classmethod
    def start(cls, args, writer: BpfWriter, deadline_mono: float,
              own_tgids: frozenset[int] = frozenset()) -> "BpfSession":
        """Compile and attach everything, bounded by ``deadline_mono``; never raises."""
        session = cls(args, writer, deadline_mono, own_tgids)
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
        if self.bpf is not None and set(artifacts) >= set(program.ARTIFACTS):
            self._close_bpf()
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
        bcc, problem = capabilities.bcc_problem()
        if problem:
            self._give_up(problem)
            return
        self.bcc = bcc
        where, problem = capabilities.tracefs_problem()
        if problem:
            self._give_up(problem)
            return
        problem = capabilities.headers_problem()
        if problem:
            self._give_up(problem)
            return
        formats, reasons, remedies = host_plan.read_formats(where)
        self.plan = plan = host_plan.make_plan(self.args, formats, reasons, remedies)
        self.writer.add_file(FORMATS_ARTIFACT, json.dumps(
            {tp: text for tp, text in formats.items() if text}, indent=1, sort_keys=True))
        for artifact, (why, remedy) in plan.missing.items():
            self.unavailable[artifact] = Problem(why, remedy)
        headers, headers_release = capabilities.find_headers()
        self.info.update(kernel=os.uname().release, headers=headers, headers_release=headers_release,
                         fault_sample_period=plan.fault_period, kernel_stacks=plan.kernel_stacks,
                         stack_map_entries=program.STACK_ENTRIES, tracepoint_fields=plan.fields)

        left = self.deadline - time.monotonic()
        if left < MIN_COMPILE_S:
            self._give_up(Problem(f"only {max(left, 0):.1f} s left of the BPF start's time; compiling "
                                  "the BPF programs takes longer", "give a larger --bpf-start-timeout"))
            return
        compiled = bpf_compile.compile_program(self.bcc, plan.text, self.deadline - 0.5)
        self.info.update(compiled.info)
        if compiled.bpf is None:
            self._give_up(compiled.problem)
            return
        self.bpf = compiled.bpf
        self.attachments = Attachments(self.bcc, self.bpf, plan)
        self.info["attach"] = self.attachments.attach(self.unavailable)
        fault_sampler = self.attachments.fault_sampler
        if fault_sampler:
            self.info["fault_sampler"] = dict(fault_sampler,
                                              sampling_error=aggregates.sampling_error(plan.fault_period))
        if all(a in self.unavailable for a in program.ARTIFACTS):
            self._close_bpf()
        else:
            self.info["enabled"] = True
            maps = BccMaps(self.bpf)
            self.resolver = StackResolver(Symbolizer(self.bcc), maps, self.unavailable)
            self.bpf[b"events"].open_perf_buffer(self.intake.on_event, page_cnt=PERF_PAGES,
                                                 lost_cb=self.intake.on_lost)
            self.info["attached_mono"] = time.monotonic()
        for name in program.STREAMS:
            if name not in self.unavailable:
                self.writer.declare_stream(name)
        self._record_unavailable()

    def _oom_kernel_stack(self, stack_id: int) -> list[str]:
        return self.resolver.kernel_frames("sys_stacks", stack_id)

    def _publish_info(self) -> None:
        info = dict(self.info)
        info["unavailable"] = {a: {"reason": p.reason, "remedy": p.remedy}
                               for a, p in sorted(self.unavailable.items())}
        self.writer.merge_manifest("bpf", **info)     # keeps what the runner noted beside it

    def pending_artifacts(self) -> list[str]:
        """The artifacts finish() will write, lost if the process dies first."""
        return [name for name in program.FILES if name not in self.unavailable]

    # -- window ------------------------------------------------------------

    def poll(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for events and store them; returns at the timeout."""
        end = time.monotonic() + max(timeout_s, 0.0)
        if self.bpf is None or self._finished:
            time.sleep(max(end - time.monotonic(), 0.0))
            return
        while True:
            left = end - time.monotonic()
            try:
                self.bpf.perf_buffer_poll(timeout=max(int(left * 1000), 0))
                self.resolver.warm(self.intake.take_new_tasks())
                now = time.monotonic()
                if now - self._last_resolve >= self._resolve_every:
                    self.resolver.resolve_pass(RESOLVE_BUDGET_S)
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
        """Detach, drain, aggregate the maps and write the artifacts.

        ``on_detached`` is called once the probes are off: the collector
        waits for it before running its own detail commands (pmap), whose
        page faults are not the incident's.
        """
        if self._finished:
            return
        self._finished = True
        if self.bpf is None:
            self._publish_info()
            return
        t0 = time.monotonic()
        intake = self.intake
        try:
            self._detach()
            if on_detached is not None:
                on_detached()
            for _ in range(FINISH_DRAIN_POLLS):
                self.bpf.perf_buffer_poll(timeout=0)
            self.resolver.warm(intake.take_new_tasks(), budget_s=FINISH_WARM_S)
        except Exception:  # noqa: BLE001
            intake.decode_errors += 1
        intake.flush()
        intake.declare_streams(self.unavailable)
        maps = self.resolver.maps
        errors = read_errors(maps)
        now = time.monotonic()
        sym_deadline = (min(deadline_mono - 0.3, now + 2 * FINISH_SYMBOLS_S) if deadline_mono
                        else now + FINISH_SYMBOLS_S)
        files = ArtifactWriter(self.writer, maps, self.resolver, self.plan, self.unavailable, self.own_tgids,
                               sampler_kind=self.attachments.fault_sampler.get("kind", "tracepoint"))
        failures = files.write_all(errors, sym_deadline)
        if failures:
            self.info.setdefault("write_errors", []).extend(failures)
        self.info.update(events_lost=intake.lost, decode_errors=intake.decode_errors,
                         records=dict(intake.written), dropped=dict(intake.dropped), errors=errors,
                         finish_s=round(time.monotonic() - t0, 3))
        self.info["symbols"] = self.resolver.stats()
        self._close_bpf()
        self._publish_info()

    def _detach(self) -> None:
        self.attachments.detach()
        if self.attachments.detach_errors:
            self.info.setdefault("detach_errors", []).extend(self.attachments.detach_errors)
            self.attachments.detach_errors = []
        self.info["detached_mono"] = time.monotonic()

    def _close_bpf(self) -> None:
        if self.resolver is not None:
            self.resolver.symbols.close()
        if self.attachments is not None:
            self.attachments.close()
        self.bpf = None
