"""Attach the loaded programs to the kernel, and take them off again.

Kernel interfaces, through bcc: tracepoints (perf_event_open of the
tracepoint + PERF_EVENT_IOC_SET_BPF, BPF_PROG_TYPE_TRACEPOINT), raw
tracepoints (BPF_RAW_TRACEPOINT_OPEN, 4.17+, tried first where
program.RAW_FIRST says), and the perf software events page-faults
(sampled 1 in N, the fault sampler) and major-faults on every online CPU
(BPF_PROG_TYPE_PERF_EVENT), and kprobes/kretprobes (perf_event_open of
the kprobe PMU, BPF_PROG_TYPE_KPROBE) where the kernel allows them.

Each probe is attached on its own: one that will not attach makes only
the artifacts that need it unavailable. Teardown is idempotent and quiet:
every attachment is detached on its own, bcc's bookkeeping of it is
dropped even when the detach fails, and bcc's own ``atexit`` clean-up is
replaced by one that takes the same lock as attach and detach, so that an
exit while a worker thread still attaches or detaches cannot close a perf
event twice.
"""

from __future__ import annotations

import atexit
import threading

from snapcollect.collect.bpf import capabilities, program
from snapcollect.collect.bpf.capabilities import Problem

EXIT_LOCK_WAIT_S = 2.0


class Attachments:
    """What is attached of one loaded ``bcc.BPF``; see the module docstring."""

    def __init__(self, bcc, bpf, plan: program.Plan, kprobe_problem=capabilities.kprobe_problem):
        self.bcc = bcc
        self.kprobe_problem = kprobe_problem
        self.bpf = bpf
        self.plan = plan
        self.attached: list[str] = []           # tracepoints
        self.attached_raw: list[str] = []       # raw tracepoints
        self.perf_events: list[tuple[int, int]] = []     # (type, config) attached through bcc
        self.kprobes: list[tuple[str, str]] = []         # (kprobe or kretprobe, kernel function)
        self.majfault_attached = False
        self.fault_sampler: dict = {}
        self.detach_errors: list[str] = []
        # attach, detach and the exit hook take it: one of them at a time
        self._lock = threading.RLock()
        self._exiting = False
        self._exit_hook_registered = False
        self._own_exit_hook()

    # -- attach ------------------------------------------------------------

    def attach(self, unavailable: dict[str, Problem]) -> dict[str, str]:
        """Attach every probe of the plan; artifacts whose probes failed go
        into ``unavailable``. Returns probe -> "ok ..." or "failed: why"."""
        with self._lock:
            if self._exiting:
                return {}
            return self._attach_locked(unavailable)

    def _attach_locked(self, unavailable: dict[str, Problem]) -> dict[str, str]:
        plan = self.plan
        attach: dict[str, str] = {}
        failed: set[str] = set()
        for tp in plan.probes:
            if self._exiting:
                return attach
            result = self._attach_tracepoint(tp)
            attach[tp] = result
            if not result.startswith("ok"):
                failed.add(tp)
        for artifact, groups in program.TRACEPOINT_GROUPS.items():
            if artifact in unavailable:
                continue
            working = [g for g in groups if all(tp in attach and tp not in failed for tp in g)]
            if not working:
                bad = sorted(tp for g in groups for tp in g if tp in failed)
                unavailable[artifact] = Problem(
                    "could not attach to tracepoint " + ", ".join(bad),
                    "check `snapcollect doctor`; the kernel may not allow BPF on these tracepoints")
        if not any(a in unavailable for a in program.FAULT_ARTIFACTS):
            self._attach_fault_sampler(attach, unavailable)
        for artifact, probes in program.KPROBE_GROUPS.items():
            if artifact not in unavailable and not self._exiting:
                self._attach_kprobe_group(artifact, probes, attach, unavailable)
        try:
            self._attach_perf(self.bcc.PerfSWConfig.PAGE_FAULTS_MAJ, program.MAJFAULT_FUNCTION, 1)
            attach["perf:major-faults"] = "ok"
            self.majfault_attached = True
        except Exception as exc:  # noqa: BLE001
            attach["perf:major-faults"] = f"failed: {exc}"
            paranoid = capabilities.perf_paranoid()
            unavailable[program.MAJFAULT_ARTIFACT] = Problem(
                f"could not open the perf software event major-faults ({exc}; "
                f"perf_event_paranoid={paranoid})",
                "run as root, or lower /proc/sys/kernel/perf_event_paranoid")
        feeds = (*program.FAULT_ARTIFACTS, program.MAJFAULT_ARTIFACT)
        if program.FAULT_FILES_ARTIFACT not in unavailable and all(a in unavailable for a in feeds):
            first = unavailable[program.FAULT_ARTIFACTS[0]]
            unavailable[program.FAULT_FILES_ARTIFACT] = Problem(
                "neither the page-fault sampler nor the major-fault event is attached: " + first.reason,
                first.remedy)
        return attach

    def _attach_kprobe_group(self, artifact: str, probes, attach: dict[str, str],
                             unavailable: dict[str, Problem]) -> None:
        """Every probe of one artifact, each on the first of its functions that
        takes it; when one cannot be attached the others are taken off again
        (half a pair measures nothing)."""
        absent = self.kprobe_problem()
        if absent:
            # bcc would say each function is "not traceable", which sends the reader the wrong way
            kinds = sorted({kind for kind, _fns, _fn in probes})
            attach["/".join(kinds)] = f"not attached: {absent}"
            unavailable[artifact] = Problem(absent, program.KPROBE_REMEDY)
            return
        mine: list[tuple[str, str]] = []
        for kind, functions, fn_name in probes:
            errors = []
            for function in functions:
                try:
                    attach_fn = self.bpf.attach_kretprobe if kind == "kretprobe" else self.bpf.attach_kprobe
                    attach_fn(event=function.encode(), fn_name=fn_name.encode())
                except Exception as exc:  # noqa: BLE001 - renamed, inlined, or no kprobes at all
                    errors.append(f"{function}: {exc}")
                    continue
                attach[f"{kind}:{function}"] = "ok"
                mine.append((kind, function))
                break
            else:
                for k, f in mine:
                    self._detach_kprobe(k, f)
                for kf in mine:
                    attach[f"{kf[0]}:{kf[1]}"] = "detached: its pair failed"
                attach[f"{kind}:{'/'.join(functions)}"] = "failed: " + "; ".join(errors)
                first = errors[0].split(": ", 1)[-1] if errors else "no function to try"
                unavailable[artifact] = Problem(f"could not attach a {kind} to {' or '.join(functions)} "
                                                f"({first[:200]})", program.KPROBE_REMEDY)
                return
        self.kprobes.extend(mine)

    def _detach_kprobe(self, kind: str, function: str) -> str | None:
        """Take one kprobe off; the error, or None."""
        try:
            if kind == "kretprobe":
                self.bpf.detach_kretprobe(event=function.encode())
            else:
                self.bpf.detach_kprobe(event=function.encode())
            return None
        except Exception as exc:  # noqa: BLE001
            return f"{kind} {function}: {exc}"

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

    def _attach_fault_sampler(self, attach: dict[str, str], unavailable: dict[str, Problem]) -> None:
        """The perf event page-faults 1 in N; the tracepoint when it cannot."""
        plan = self.plan
        why_not_perf = plan.perf_sampler_problem
        if why_not_perf is None:
            try:
                self._attach_perf(self.bcc.PerfSWConfig.PAGE_FAULTS, program.FAULT_PERF_FUNCTION,
                                  plan.fault_step)
                attach["perf:page-faults"] = f"ok (sample_period {plan.fault_step})"
                self.fault_sampler = {"kind": "perf", "event": "page-faults (PERF_COUNT_SW_PAGE_FAULTS)",
                                      "sample_period": plan.fault_period, "event_period": plan.fault_step}
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
                unavailable[artifact] = problem
            return
        result = self._attach_tracepoint(tp)
        attach[tp] = result
        if not result.startswith("ok"):
            problem = Problem(f"{why_not_perf}; could not attach to tracepoint {tp}",
                              "check `snapcollect doctor`")
            for artifact in program.FAULT_ARTIFACTS:
                unavailable[artifact] = problem
            return
        self.fault_sampler = {"kind": "tracepoint", "event": tp + (" (raw)" if "raw" in result else ""),
                              "sample_period": plan.fault_period, "why_not_perf": why_not_perf}

    # -- detach ------------------------------------------------------------

    def detach(self) -> None:
        """Detach every probe, each on its own; never raises, never twice.
        Failures go to ``detach_errors``."""
        with self._lock:
            self._detach_locked()

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
        for kind, function in self.kprobes:
            err = self._detach_kprobe(kind, function)
            if err:
                failures.append(err)
        self.kprobes = []
        self.detach_errors.extend(failures)

    def close(self) -> None:
        """Detach what is left and close the programs and maps; idempotent."""
        with self._lock:
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

    # -- exit --------------------------------------------------------------

    def _own_exit_hook(self) -> None:
        """Replace bcc's atexit clean-up of the object by ours (see the
        module docstring): bcc's raises on the first fd that is already
        closed, and prints a traceback at exit."""
        try:
            atexit.unregister(self.bpf.cleanup)
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
        if not self._lock.acquire(timeout=EXIT_LOCK_WAIT_S):
            return
        try:
            self._detach_locked()
        except Exception:  # noqa: BLE001 - never a traceback at exit
            pass
        finally:
            self._lock.release()
