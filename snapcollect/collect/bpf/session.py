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
own (collect/bpf/child.py), ``writer`` then being a wire.PipeWriter.

Kernel interfaces: the tracepoints listed in program.TRACEPOINT_GROUPS
(through bcc: perf_event_open + BPF_PROG_TYPE_TRACEPOINT), the perf
software events page-faults (sampled 1 in N, BPF_PROG_TYPE_PERF_EVENT)
and major-faults, tracefs format files,
/proc/sys/kernel/perf_event_max_sample_rate, /proc/self/statm.

Teardown is idempotent and quiet: every attachment is detached on its
own, bcc's bookkeeping of it is dropped even when the detach fails, and
bcc's own ``atexit`` clean-up is replaced by one that takes the same lock
as attach and detach, so that an exit while a worker thread still
attaches or detaches cannot close a perf event twice.
"""

from __future__ import annotations

import atexit
import ctypes as ct
import json
import os
import tempfile
import textwrap
import threading
import time

from snapcollect.bundle.names import (BPF_COMPACTION, BPF_FAULT_STACKS_FOLDED, BPF_FAULT_STACKS_JSON,
                                      BPF_HEAP_GROWTH, BPF_KSWAPD_WAKE, BPF_OOM_KILL, BPF_RECLAIM,
                                      BPF_TRACEPOINT_FORMATS)
from snapcollect.collect.bpf import aggregates, capabilities, events, program, tracefs
from snapcollect.collect.bpf.capabilities import Problem
from snapcollect.collect.bpf.symbols import Symbolizer

FORMATS_ARTIFACT = BPF_TRACEPOINT_FORMATS
ERROR_SLOTS = ("fault_ustack_collision", "fault_ustack_other", "fault_kstack", "fault_keys_full",
               "sys_stack_collision", "sys_stack_other", "heap_keys_full", "start_map_full",
               "majfault_keys_full", "seen_full")
STACK_NOT_RECORDED = -1000      # SC_STACK_NOT_RECORDED: file mmaps keep no stack

# Bounds: a host in trouble can produce reclaim events by the hundred
# thousand; keep the bundle small and say how many were left out.
STREAM_CAP = {BPF_OOM_KILL: 10_000, BPF_RECLAIM: 100_000, BPF_KSWAPD_WAKE: 50_000,
              BPF_COMPACTION: 50_000}
CHUNK = 5000
PERF_PAGES = 64                 # per CPU, 256 KiB
MIN_COMPILE_S = 1.0             # do not start a compile with less time left
RESOLVE_EVERY_S = 1.0
RESOLVE_BUDGET_S = 0.05         # per second of the window, for symbols of live processes
FINISH_SYMBOLS_S = 1.0          # at the end, for what is left (the runner's end phase is short)
WARM_BUDGET_S = 0.05            # per poll, for symbol caches of new processes
HEAP_TRACE_OFF = ("not traced by default: the brk/mmap syscall tracepoints slow every syscall on "
                  "the host; growth is in the per-process RSS and size series (/proc/PID/stat) and the "
                  "sampled page-fault stacks")
HEAP_TRACE_REMEDY = "give --heap-trace to trace brk/mmap with stacks (costs every syscall on the host)"


def _rss_kb() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0


def _int(value) -> int:
    # items_lookup_batch gives plain ints for scalar values, items() ctypes.
    return int(getattr(value, "value", value))


def max_sample_rate() -> int | None:
    try:
        with open("/proc/sys/kernel/perf_event_max_sample_rate") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def read_formats(tracefs_dir: str) -> tuple[dict[str, str | None], dict[str, str], dict[str, str]]:
    """tracepoint -> format text (None when absent), and why / what to do when absent."""
    formats: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    remedies: dict[str, str] = {}
    for tp in program.TRACEPOINTS:
        text, why = tracefs.read_format(tracefs_dir, tp)
        formats[tp] = text
        if why:
            reasons[tp] = why
            if "permission denied" in why:
                remedies[tp] = capabilities.ROOT_REMEDY
    return formats, reasons, remedies


def make_plan(args, formats, reasons, remedies=None) -> program.Plan:
    period = args.fault_sample or program.DEFAULT_FAULT_PERIOD
    if not args.heap_trace:
        # Opt-in: any syscall tracepoint sends every task on the host
        # through the slow syscall path (a getppid() loop ran 18.6 % slower
        # here, benchmarks/bench_fault_overhead.py --syscalls). By default
        # growth comes from what costs nothing extra: the RSS and vsize
        # series of every process (/proc/PID/stat) and the sampled page-fault stacks.
        heap_tps = {tp for groups in program.TRACEPOINT_GROUPS[BPF_HEAP_GROWTH] for tp in groups}
        formats = {tp: (None if tp in heap_tps else text) for tp, text in formats.items()}
        reasons = {**reasons, **{tp: HEAP_TRACE_OFF for tp in heap_tps}}
        remedies = {**(remedies or {}), **{tp: HEAP_TRACE_REMEDY for tp in heap_tps}}
    return program.build_plan(formats, fault_period=int(period),
                              kernel_stacks=args.kernel_stacks, reasons=reasons,
                              remedies=remedies, max_sample_rate=max_sample_rate())


def print_programs(args) -> int:
    """``--print-bpf``: the program text that would be compiled on this host."""
    where, problem = capabilities.tracefs_problem()
    if problem is not None:
        formats = {tp: None for tp in program.TRACEPOINTS}
        reasons = {tp: problem.reason for tp in program.TRACEPOINTS}
        remedies = {tp: problem.remedy for tp in program.TRACEPOINTS}
    else:
        formats, reasons, remedies = read_formats(where)
    plan = make_plan(args, formats, reasons, remedies)
    out = [plan.text]
    if plan.missing:
        out.append("/* not compiled on this host:")
        for artifact, (why, remedy) in sorted(plan.missing.items()):
            out += textwrap.wrap(f"{artifact}: {why}; {remedy}", 76, initial_indent=" *   ",
                                 subsequent_indent=" *       ")
        out.append(" */")
    out.append("/* attach points:")
    out += [f" *   tracepoint {tp} -> {program.function_name(tp)}" for tp in plan.probes]
    if plan.perf_sampler_problem is None:
        out.append(f" *   perf software event page-faults, sample_period {plan.fault_period}, "
                   f"per CPU -> {program.FAULT_PERF_FUNCTION}")
        if plan.fault_tracepoint:
            out.append(f" *     (fallback: raw tracepoint {program.FAULT_TRACEPOINT.split(':')[1]})")
    elif plan.fault_tracepoint:
        out.append(f" *   raw tracepoint {program.FAULT_TRACEPOINT.split(':')[1]}, 1 in "
                   f"{plan.fault_period} per CPU ({plan.perf_sampler_problem})")
    out.append(f" *   perf software event major-faults -> {program.MAJFAULT_FUNCTION}")
    out.append(" */")
    print("\n".join(out))
    return 0


class BpfSession:
    """One collection's BPF programs; see the module docstring."""

    def __init__(self, args, writer, deadline_mono: float, own_tgids: frozenset[int] = frozenset()):
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
        self.attached: list[str] = []
        self.attached_raw: list[str] = []
        self.majfault_attached = False
        self.perf_events: list[tuple[int, int]] = []     # (type, config) attached through bcc
        self.fault_sampler: dict = {}
        # attach, detach and the exit hook take it: one of them at a time
        self._teardown_lock = threading.RLock()
        self._exiting = False
        self._exit_hook_registered = False
        self._pending: dict[str, list[dict]] = {s: [] for s in program.STREAMS}
        self._written = {s: 0 for s in program.STREAMS}
        self._dropped = {s: 0 for s in program.STREAMS}
        self._lost = 0
        self._decode_errors = 0
        self._symbols: Symbolizer | None = None
        self._new_tasks: list[int] = []
        self._last_resolve = 0.0
        self._resolve_every = RESOLVE_EVERY_S
        self._finished = False
        self._recorded: set[str] = set()
        self._unresolved = 0

    # -- start -----------------------------------------------------------

    @classmethod
    def start(cls, args, writer, deadline_mono: float, own_tgids: frozenset[int] = frozenset()) -> "BpfSession":
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
        for check in (capabilities.privilege_problem,):
            problem = check()
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
        formats, reasons, remedies = read_formats(where)
        self.plan = plan = make_plan(self.args, formats, reasons, remedies)
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
        self.bpf = self._compile(plan.text, self.deadline - 0.5)
        if self.bpf is None:
            return
        self._attach()
        if self.fault_sampler:
            self.info["fault_sampler"] = dict(self.fault_sampler,
                                              sampling_error=aggregates.sampling_error(plan.fault_period))
        if all(a in self.unavailable for a in program.ARTIFACTS):
            self._close_bpf()
        else:
            self.info["enabled"] = True
            self._symbols = Symbolizer(self.bcc)
            self.bpf[b"events"].open_perf_buffer(self._on_event, page_cnt=PERF_PAGES, lost_cb=self._on_lost)
            self.info["attached_mono"] = time.monotonic()
        for name in program.STREAMS:
            if name not in self.unavailable:
                self.writer.declare_stream(name)
        self._record_unavailable()

    def _compile(self, text: str, limit_mono: float):
        bcc = self.bcc

        class _NoAutoAttach(bcc.BPF):
            # bcc attaches every tracepoint__* function while constructing
            # and raises on the first failure; attach one by one instead.
            def _trace_autoload(self):
                pass

        result: dict = {}

        def work():
            try:
                result["bpf"] = _NoAutoAttach(text=text.encode(), cflags=["-w"])
            except Exception as exc:  # noqa: BLE001
                result["error"] = exc

        rss_before = _rss_kb()
        peak = rss_before
        # clang writes its diagnostics to fd 2: keep them for the reason.
        err_file = tempfile.TemporaryFile()
        saved_fd = os.dup(2)
        os.dup2(err_file.fileno(), 2)
        t0 = time.monotonic()
        worker = threading.Thread(target=work, name="bpf-compile", daemon=True)
        try:
            worker.start()
            while worker.is_alive() and time.monotonic() < limit_mono:
                worker.join(0.05)
                peak = max(peak, _rss_kb())
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        compile_s = time.monotonic() - t0
        err_file.seek(0)
        diagnostics = err_file.read().decode("utf-8", "replace")
        err_file.close()
        self.info.update(compile_s=round(compile_s, 3), compile_rss_before_kb=rss_before,
                         compile_peak_rss_kb=max(peak, _rss_kb()), rss_after_compile_kb=_rss_kb())
        if worker.is_alive():
            self._give_up(Problem(f"compiling the BPF programs did not finish within {compile_s:.1f} s, "
                                  "the BPF start's time", "give a larger --bpf-start-timeout, or --no-bpf"))
            return None
        if "bpf" in result:
            self._own_exit_hook(result["bpf"])
        if "error" in result:
            message = diagnostics.strip() or str(result["error"])
            errors = [line for line in message.splitlines() if "error" in line.lower()]
            self.info["compile_error"] = "\n".join(errors[-5:] or message.splitlines()[-5:])
            self._give_up(capabilities.compile_problem("\n".join(errors[-1:]) or message))
            return None
        return result["bpf"]

    def _attach(self) -> None:
        with self._teardown_lock:
            if self._exiting:
                return
            self._attach_locked()

    def _attach_locked(self) -> None:
        plan = self.plan
        attach: dict[str, str] = {}
        failed: set[str] = set()
        for tp in plan.probes:
            if self._exiting:
                return
            result = self._attach_tracepoint(tp)
            attach[tp] = result
            if not result.startswith("ok"):
                failed.add(tp)
        for artifact, groups in program.TRACEPOINT_GROUPS.items():
            if artifact in self.unavailable:
                continue
            working = [g for g in groups if all(tp in attach and tp not in failed for tp in g)]
            if not working:
                bad = sorted(tp for g in groups for tp in g if tp in failed)
                self.unavailable[artifact] = Problem(
                    "could not attach to tracepoint " + ", ".join(bad),
                    "check `snapcollect doctor`; the kernel may not allow BPF on these tracepoints")
        if not any(a in self.unavailable for a in program.FAULT_ARTIFACTS):
            self._attach_fault_sampler(attach)
        try:
            self._attach_perf(self.bcc.PerfSWConfig.PAGE_FAULTS_MAJ, program.MAJFAULT_FUNCTION, 1)
            attach["perf:major-faults"] = "ok"
            self.majfault_attached = True
        except Exception as exc:  # noqa: BLE001
            attach["perf:major-faults"] = f"failed: {exc}"
            paranoid = capabilities.perf_paranoid()
            self.unavailable[program.MAJFAULT_ARTIFACT] = Problem(
                f"could not open the perf software event major-faults ({exc}; "
                f"perf_event_paranoid={paranoid})",
                "run as root, or lower /proc/sys/kernel/perf_event_paranoid")
        self.info["attach"] = attach

    def _attach_tracepoint(self, tp: str) -> str:
        raw = program.RAW_FIRST.get(tp)
        if raw:
            try:
                self.bpf.attach_raw_tracepoint(tp=raw.encode(), fn_name=f"raw_tracepoint__{raw}".encode())
                self.attached_raw.append(raw)
                return "ok (raw tracepoint)"
            except Exception:  # noqa: BLE001 - before 4.17: the classic tracepoint
                pass
        try:
            self.bpf.attach_tracepoint(tp=tp.encode(), fn_name=program.function_name(tp).encode())
            self.attached.append(tp)
            return "ok"
        except Exception as exc:  # noqa: BLE001
            return f"failed: {exc}"

    def _attach_perf(self, config: int, fn_name: str, period: int) -> None:
        """A perf software event on every online CPU, through bcc."""
        key = (int(self.bcc.PerfType.SOFTWARE), int(config))
        # On a failure bcc keeps no record of the CPUs it had opened
        # already; those fds close with the process.
        self.bpf.attach_perf_event(ev_type=key[0], ev_config=key[1], fn_name=fn_name.encode(),
                                   sample_period=period)
        self.perf_events.append(key)

    def _attach_fault_sampler(self, attach: dict[str, str]) -> None:
        """The perf event page-faults 1 in N; the tracepoint when it cannot."""
        plan = self.plan
        why_not_perf = plan.perf_sampler_problem
        if why_not_perf is None:
            try:
                self._attach_perf(self.bcc.PerfSWConfig.PAGE_FAULTS, program.FAULT_PERF_FUNCTION,
                                  plan.fault_period)
                attach["perf:page-faults"] = f"ok (sample_period {plan.fault_period})"
                self.fault_sampler = {"kind": "perf", "event": "page-faults (PERF_COUNT_SW_PAGE_FAULTS)",
                                      "sample_period": plan.fault_period}
                return
            except Exception as exc:  # noqa: BLE001
                attach["perf:page-faults"] = f"failed: {exc}"
                why_not_perf = (f"could not open the perf software event page-faults ({exc}; "
                                f"perf_event_paranoid={capabilities.perf_paranoid()})")
        tp = program.FAULT_TRACEPOINT
        if not plan.fault_tracepoint:
            problem = Problem(f"{why_not_perf}; tracepoint {tp} is not available either",
                              "run as root, or lower /proc/sys/kernel/perf_event_paranoid")
            for artifact in program.FAULT_ARTIFACTS:
                self.unavailable[artifact] = problem
            return
        result = self._attach_tracepoint(tp)
        attach[tp] = result
        if not result.startswith("ok"):
            problem = Problem(f"{why_not_perf}; could not attach to tracepoint {tp}",
                              "check `snapcollect doctor`")
            for artifact in program.FAULT_ARTIFACTS:
                self.unavailable[artifact] = problem
            return
        self.fault_sampler = {"kind": "tracepoint", "event": tp + (" (raw)" if "raw" in result else ""),
                              "sample_period": plan.fault_period, "why_not_perf": why_not_perf}

    def _publish_info(self) -> None:
        info = dict(self.info)
        info["unavailable"] = {a: {"reason": p.reason, "remedy": p.remedy}
                               for a, p in sorted(self.unavailable.items())}
        merge = getattr(self.writer, "merge_manifest", None)
        if merge is not None:   # keeps what the runner noted beside it
            merge("bpf", **info)
        else:
            self.writer.manifest["bpf"] = {**(self.writer.manifest.get("bpf") or {}), **info}

    def pending_artifacts(self) -> list[str]:
        """The artifacts finish() will write, lost if the process dies first."""
        return [name for name in program.FILES if name not in self.unavailable]

    # -- events ------------------------------------------------------------

    def _on_lost(self, count) -> None:
        self._lost += int(count)

    def _on_event(self, _cpu, data, size) -> None:
        try:
            kind, rec = events.decode(ct.string_at(data, size), self.clock)
        except events.DecodeError:
            self._decode_errors += 1
            return
        if kind == events.EV_TASK:
            self._new_tasks.append(rec["pid"])
            return
        if kind == events.EV_OOM:
            kid = rec.pop("kstack_id")
            if kid >= 0:
                try:
                    rec["kstack"] = self._symbols.kernel_stack(self.bpf[b"sys_stacks"], kid)
                except Exception:  # noqa: BLE001 - a stack is a bonus
                    rec["kstack"] = []
        stream = events.STREAMS[kind]
        if self._written[stream] + len(self._pending[stream]) >= STREAM_CAP[stream]:
            self._dropped[stream] += 1
            return
        self._pending[stream].append(rec)

    def _flush(self, force: bool = False) -> None:
        for stream, recs in self._pending.items():
            if not recs:
                continue
            self._pending[stream] = []
            for i in range(0, len(recs), CHUNK):
                chunk = recs[i:i + CHUNK]
                self.writer.add_records(stream, chunk)
                self._written[stream] += len(chunk)

    def _warm_new_tasks(self, budget_s: float = WARM_BUDGET_S) -> None:
        tasks, self._new_tasks = self._new_tasks, []
        end = time.monotonic() + budget_s
        # newest first: the older ones are the likelier to be gone already
        for tgid in reversed(dict.fromkeys(tasks)):
            if time.monotonic() > end:
                self._symbols.not_warmed += 1
                continue
            try:
                self._symbols.warm(tgid)
            except Exception:  # noqa: BLE001 - a process that vanished
                pass

    def _map_items(self, name: str):
        table = self.bpf[name.encode()]
        try:
            return list(table.items_lookup_batch())   # 5.6+: a few syscalls for the whole map
        except Exception:  # noqa: BLE001 - older kernels: one lookup per key
            return list(table.items())

    def _resolve_pass(self, budget_s: float) -> int:
        """Symbolize stacks not seen yet, while their processes still live."""
        end = time.monotonic() + budget_s
        left = 0
        waiting: set[int] = set()          # processes with stacks still to resolve
        for map_name, stack_table in (("fault_counts", "stacks"), ("heap", "sys_stacks")):
            if map_name == "fault_counts" and BPF_FAULT_STACKS_FOLDED in self.unavailable:
                continue
            if map_name == "heap" and BPF_HEAP_GROWTH in self.unavailable:
                continue
            table = self.bpf[stack_table.encode()]
            items = self._map_items(map_name)
            # biggest first, so that a short budget goes to what matters
            weight = (lambda v: _int(v)) if map_name == "fault_counts" else (lambda v: int(v.grow_bytes))
            items.sort(key=lambda kv: -weight(kv[1]))
            for key, _value in items:
                if key.ustack < 0 or self._symbols.is_resolved(stack_table, key.tgid, key.ustack):
                    continue
                if time.monotonic() > end:
                    left += 1
                    waiting.add(key.tgid)
                    continue
                try:
                    self._symbols.user_stack(table, stack_table, key.tgid, key.ustack)
                except Exception:  # noqa: BLE001 - stack vanished or process gone
                    pass
        # the symbols of exited processes whose stacks are all resolved can go
        self._symbols.forget_dead(keep=waiting)
        return left

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
                self._warm_new_tasks()
                now = time.monotonic()
                if now - self._last_resolve >= self._resolve_every:
                    self._resolve_pass(RESOLVE_BUDGET_S)
                    self._last_resolve = time.monotonic()
                    # reading big maps costs too: keep the passes under ~10 % of a CPU
                    self._resolve_every = max(RESOLVE_EVERY_S, 10 * (self._last_resolve - now))
            except Exception:  # noqa: BLE001 - keep collecting the rest
                self._decode_errors += 1
            self._flush()
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
        try:
            self._detach()
            if on_detached is not None:
                on_detached()
            for _ in range(8):   # whatever is still in the perf buffers
                self.bpf.perf_buffer_poll(timeout=0)
            self._warm_new_tasks(budget_s=0.2)
        except Exception:  # noqa: BLE001
            self._decode_errors += 1
        self._flush()
        for stream in program.STREAMS:
            if stream in self.unavailable:
                continue
            extra = {}
            if self._dropped[stream]:
                extra["dropped"] = self._dropped[stream]
                extra["note"] = f"records beyond {STREAM_CAP[stream]} were counted, not stored"
            self.writer.declare_stream(stream, **extra)
        errors = self._read_errors()
        now = time.monotonic()
        sym_deadline = (min(deadline_mono - 0.3, now + 2 * FINISH_SYMBOLS_S) if deadline_mono
                        else now + FINISH_SYMBOLS_S)
        for writer_fn in (self._write_faults, self._write_majfaults, self._write_heap):
            try:
                writer_fn(errors, sym_deadline)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001
                self.info.setdefault("write_errors", []).append(f"{writer_fn.__name__}: {exc}")
        self.info.update(events_lost=self._lost, decode_errors=self._decode_errors,
                         records=dict(self._written), dropped=dict(self._dropped), errors=errors,
                         finish_s=round(time.monotonic() - t0, 3))
        if self._symbols:
            self.info["symbols"] = {"processes_warmed": self._symbols.warmed,
                                    "processes_not_warmed": self._symbols.not_warmed,
                                    "processes_freed": self._symbols.freed}
        self._close_bpf()
        self._publish_info()

    def _detach(self) -> None:
        """Detach every probe, each on its own; never raises, never twice."""
        with self._teardown_lock:
            self._detach_locked()
        self.info["detached_mono"] = time.monotonic()

    def _detach_locked(self) -> None:
        bpf = self.bpf
        if bpf is None:
            return
        failures = []
        for tp in self.attached:
            try:
                bpf.detach_tracepoint(tp.encode())
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{tp}: {exc}")
            # bcc retries whatever it still lists at exit: forget it
            bpf.tracepoint_fds.pop(tp.encode(), None)
        self.attached = []
        for raw in self.attached_raw:
            try:
                bpf.detach_raw_tracepoint(raw.encode())
            except Exception as exc:  # noqa: BLE001
                failures.append(f"raw {raw}: {exc}")
            bpf.raw_tracepoint_fds.pop(raw.encode(), None)
        self.attached_raw = []
        for key in self.perf_events:
            try:
                bpf.detach_perf_event(ev_type=key[0], ev_config=key[1])
            except Exception as exc:  # noqa: BLE001
                # bcc closed the other CPUs' fds before raising
                failures.append(f"perf {key}: {exc}")
            bpf.open_perf_events.pop(key, None)
        self.perf_events = []
        if failures:
            self.info.setdefault("detach_errors", []).extend(failures)

    def _own_exit_hook(self, bpf) -> None:
        """Replace bcc's atexit clean-up of ``bpf`` by ours (see the module
        docstring): bcc's raises on the first fd that is already closed,
        and prints a traceback at exit."""
        try:
            atexit.unregister(bpf.cleanup)
        except Exception:  # noqa: BLE001
            pass
        if not self._exit_hook_registered:
            atexit.register(self._at_exit)
            self._exit_hook_registered = True

    def _at_exit(self) -> None:
        """Interpreter exit: stop any attach still going on, detach quietly.
        The fds close with the process anyway; this only keeps bcc from
        seeing half-torn state. Waits a little for a detach in progress."""
        self._exiting = True
        if not self._teardown_lock.acquire(timeout=2.0):
            return
        try:
            self._detach_locked()
        except Exception:  # noqa: BLE001 - never a traceback at exit
            pass
        finally:
            self._teardown_lock.release()

    def _close_bpf(self) -> None:
        if self._symbols:
            self._symbols.close()
        with self._teardown_lock:
            bpf = self.bpf
            if bpf is None:
                return
            self._detach_locked()
            self.bpf = None
            try:
                bpf.cleanup()       # nothing attached is left: closes the program fds
            except Exception:  # noqa: BLE001
                try:
                    bpf.close()
                except Exception:  # noqa: BLE001
                    pass
            try:
                atexit.unregister(bpf.cleanup)
            except Exception:  # noqa: BLE001
                pass

    def _read_errors(self) -> dict[str, int]:
        table = self.bpf[b"errors"]
        return {name: int(table[ct.c_int(i)].value) for i, name in enumerate(ERROR_SLOTS)}

    def _frames(self, table_name: str, tgid: int, stack_id: int, deadline: float) -> list[str]:
        """User frames root first; a placeholder when the stack is missing."""
        if stack_id < 0:
            if stack_id == STACK_NOT_RECORDED:
                return ["[stack not recorded]"]
            if -stack_id == 17:     # EEXIST: hash bucket taken by another stack
                return ["[stack lost: map collision]"]
            return ["[no user stack]"]
        if not self._symbols.is_resolved(table_name, tgid, stack_id) and time.monotonic() > deadline:
            self._unresolved += 1
            return ["[not symbolized: out of time]"]
        try:
            table = self.bpf[table_name.encode()]
            return list(reversed(self._symbols.user_stack(table, table_name, tgid, stack_id)))
        except Exception:  # noqa: BLE001
            return ["[stack unreadable]"]

    def _write_faults(self, errors: dict[str, int], deadline: float) -> None:
        if BPF_FAULT_STACKS_FOLDED in self.unavailable:
            return
        rows = [aggregates.FaultRow(k.tgid, k.ustack, k.kstack, events.cstr(bytes(k.comm)), _int(v))
                for k, v in self._map_items("fault_counts") if k.tgid not in self.own_tgids]
        self._unresolved = 0
        text, meta = aggregates.fault_documents(
            rows, self.plan.fault_period, self.plan.kernel_stacks, program.STACK_ENTRIES, errors,
            lambda tgid, sid: self._frames("stacks", tgid, sid, deadline),
            lambda sid: self._symbols.kernel_stack(self.bpf[b"stacks"], sid),
            sampler=self.fault_sampler.get("kind", "tracepoint"))
        meta["stacks_unresolved"] = self._unresolved
        self.writer.add_file(BPF_FAULT_STACKS_FOLDED, text, sample_period=self.plan.fault_period)
        self.writer.add_file(BPF_FAULT_STACKS_JSON, json.dumps(meta, indent=1))

    def _write_majfaults(self, errors: dict[str, int], _deadline: float) -> None:
        if program.MAJFAULT_ARTIFACT in self.unavailable:
            return
        rows = [(k.tgid, events.cstr(bytes(k.comm)), _int(v)) for k, v in self._map_items("majfaults")]
        self.writer.add_file(program.MAJFAULT_ARTIFACT,
                             json.dumps(aggregates.majfault_document(rows, errors), indent=1))

    def _write_heap(self, errors: dict[str, int], deadline: float) -> None:
        if BPF_HEAP_GROWTH in self.unavailable:
            return
        rows = [aggregates.HeapRow(k.tgid, k.ustack, k.kind, events.cstr(bytes(k.comm)), int(v.calls),
                                   int(v.grow_bytes), int(v.shrink_bytes), int(v.calls_no_baseline))
                for k, v in self._map_items("heap")]
        self._unresolved = 0
        doc = aggregates.heap_document(rows, errors, lambda tgid, sid: self._frames("sys_stacks", tgid, sid,
                                                                                     deadline))
        doc["stacks_unresolved"] = self._unresolved
        self.writer.add_file(BPF_HEAP_GROWTH, json.dumps(doc, indent=1))
