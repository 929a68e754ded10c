"""The BPF plan for this host: tracefs format files + the collection's
options -> ``program.Plan`` (what is compiled, what is attached, what is
missing and why), and ``--print-bpf``.

Kernel interfaces: the tracefs ``events/*/*/format`` files of the
tracepoints in program.TRACEPOINTS, and
/proc/sys/kernel/perf_event_max_sample_rate (whether the perf sampler can
take 1 in N faults without being throttled).
"""

from __future__ import annotations

import textwrap

from snapcollect.bundle.names import BPF_HEAP_GROWTH, BPF_SWAP_RESIDENCY, BPF_THP_FAULTS
from snapcollect.collect.bpf import capabilities, program, tracefs
from snapcollect.collect.bpf.fault_duty import DEFAULT_DUTY_PCT

HEAP_TRACE_OFF = ("not traced by default: the brk/mmap syscall tracepoints slow every syscall on "
                  "the host; growth is in the per-process RSS and size series (/proc/PID/stat) and the "
                  "sampled page-fault stacks")
HEAP_TRACE_REMEDY = "give --heap-trace to trace brk/mmap with stacks (costs every syscall on the host)"
# Opt-in: kprobes replace the first instruction of a kernel function on
# the swap paths (an int3 or a jump) for the whole window. On a sick host
# an incident tool should not patch the code that is busiest then unless
# asked; under emulation (qemu TCG) guests with these kprobes on a
# thrashing workload ended in a NULL call from do_swap_page and a soft
# lockup in swap_readpage.
SWAP_RESIDENCY_OFF = ("not measured by default: it needs kprobes on the swap slot allocation and the swap "
                      "cache lookup, which patch kernel text on the swap paths")
SWAP_RESIDENCY_REMEDY = "give --swap-residency (on a kernel that offers kprobes)"
# Opt-in for the same reason: a kretprobe on do_huge_pmd_anonymous_page
# patches its entry and every return of it goes through the kretprobe
# trampoline, on the fault path of any process THP may back.
THP_FALLBACK_OFF = ("not measured by default: it needs a kretprobe on the THP fault path, which patches "
                    "kernel text")
THP_FALLBACK_REMEDY = "give --thp-fallback (on a kernel that offers kprobes)"
# kprobe artifact -> (the option that asks for it, why it is off, what to do)
KPROBE_OPT_IN = {
    BPF_SWAP_RESIDENCY: ("swap_residency", SWAP_RESIDENCY_OFF, SWAP_RESIDENCY_REMEDY),
    BPF_THP_FAULTS: ("thp_fallback", THP_FALLBACK_OFF, THP_FALLBACK_REMEDY),
}


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
    duty = getattr(args, "fault_duty", None) or DEFAULT_DUTY_PCT
    task_regs_problem = capabilities.task_regs_problem()
    plan = program.build_plan(formats, fault_period=int(period),
                              kernel_stacks=args.kernel_stacks, reasons=reasons,
                              remedies=remedies, max_sample_rate=max_sample_rate(),
                              fault_carry=int(duty) < 100,
                              task_regs=task_regs_problem is None,
                              thp_fallback=bool(getattr(args, "thp_fallback", False)))
    plan.task_regs_problem = task_regs_problem
    for artifact, (option, off, remedy) in KPROBE_OPT_IN.items():
        if not getattr(args, option, False):
            plan.missing[artifact] = (off, remedy)
    return plan


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
        steps = (f" (recording 1 in {plan.fault_period} through the per-CPU carry)"
                 if plan.fault_step < plan.fault_period else "")
        out.append(f" *   perf software event page-faults, sample_period {plan.fault_step}{steps}, "
                   f"per CPU -> {program.FAULT_PERF_FUNCTION}")
        if plan.fault_tracepoint:
            out.append(f" *     (fallback: raw tracepoint {program.FAULT_TRACEPOINT.split(':')[1]})")
    elif plan.fault_tracepoint:
        out.append(f" *   raw tracepoint {program.FAULT_TRACEPOINT.split(':')[1]}, 1 in "
                   f"{plan.fault_period} per CPU ({plan.perf_sampler_problem})")
    out.append(f" *   perf software event major-faults -> {program.MAJFAULT_FUNCTION}")
    out.append(" *   the user SP of a brk/mmap call or a fault inside a system call: "
               + ("bpf_task_pt_regs" if plan.task_regs
                  else f"not read ({plan.task_regs_problem or 'not compiled in'})"))
    for artifact, probes in program.KPROBE_GROUPS.items():
        if artifact in plan.missing:        # listed above as not compiled, with why
            continue
        for kind, functions, fn in probes:
            out.append(f" *   {kind} {' or '.join(functions)} -> {fn} (where kprobes are allowed)")
    out.append(" */")
    print("\n".join(out))
    return 0
