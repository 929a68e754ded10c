"""Build the BPF program text for the running kernel from its tracepoints.

``build_plan`` is pure: given the tracefs format text of each tracepoint
(None when the kernel lacks it) it returns the full C source (defines +
memevents.bpf.c), the probes to attach, and, per artifact, why it cannot
be collected. Everything goes into one BPF object, compiled once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from snapcollect.bundle.names import (BPF_COMPACTION, BPF_FAULT_FILES, BPF_FAULT_STACKS_FOLDED,
                                      BPF_FAULT_STACKS_JSON, BPF_HEAP_GROWTH, BPF_KSWAPD_WAKE, BPF_MAJFAULT_BY_PROC,
                                      BPF_OOM_KILL, BPF_KSWAPD_RUNS, BPF_MIGRATION, BPF_RECLAIM, BPF_SHRINKER_SLOW,
                                      BPF_SHRINKERS, BPF_SWAP_RESIDENCY, BPF_THP_FAULTS)
from snapcollect.collect.bpf.tracefs import parse_fields
from snapcollect.collect.resources import package_text

SOURCE_NAME = "memevents.bpf.c"     # beside this module, read as package data

# Default 1-in-N page-fault sampling, through the perf software event
# page-faults with sample_period N: the kernel only bumps perf's counter on
# a fault and runs the BPF program (a user stack walk, 20-45 % of a ~3 us
# fault) once per N faults. Any BPF program on a per-fault hook costs more
# than the 2 % budget by itself (+3.4 % for an empty raw tracepoint here),
# so sampling must happen before BPF runs. A process with F faults is
# estimated within about sqrt(F/N)*N (one sigma).
DEFAULT_FAULT_PERIOD = 128
# The perf sampler is used when a CPU faulting flat out (~1M faults/s)
# stays under perf's sample-rate limit: beyond it the kernel throttles the
# event and samples are silently lost. Below that period (e.g.
# --fault-sample 1, every fault) the tracepoint with a per-CPU counter is
# used, as it is with --kernel-stacks: the perf event's registers are the
# user registers of the faulting task, so it has no kernel stack.
MAX_FAULT_RATE_PER_CPU = 1_000_000
# When the sampler is opened and closed (fault_duty.py), each new event
# starts counting at 0 and loses what the closed one had counted since its
# last sample. The event then samples 1 in N/8 and a per-CPU carry in BPF
# (fault_carry, which outlives the events) records 1 in N: what is lost at
# a close is under N/8 per CPU, and fault_duty.py adds it to the carry
# from the closed event's count, so nothing is lost at all.
CARRY_STEPS = 8
FAULT_TRACEPOINT = "exceptions:page_fault_user"
FAULT_PERF_FUNCTION = "on_fault_sample"
STACK_ENTRIES = 16384          # ~1 KB each, locked memory; collisions counted
FAULT_KEYS = 40960
# (process, 2 MiB region, sampled/major) -> count: 24-byte keys, ~1 MB of
# map at most; a full map loses new regions, counted (region_keys_full).
REGION_KEYS = 16384
LEAF_KEYS = 8192               # leaf_words, heap_leaf: the SP word per fault / brk-mmap stack (leaf_frame.py)

# artifact -> tracepoints it needs (all of one group; any group will do)
TRACEPOINT_GROUPS: dict[str, list[list[str]]] = {
    BPF_OOM_KILL: [["oom:mark_victim"]],
    BPF_RECLAIM: [["vmscan:mm_vmscan_direct_reclaim_begin", "vmscan:mm_vmscan_direct_reclaim_end"],
                    ["vmscan:mm_vmscan_memcg_reclaim_begin", "vmscan:mm_vmscan_memcg_reclaim_end"]],
    BPF_KSWAPD_WAKE: [["vmscan:mm_vmscan_wakeup_kswapd"]],
    BPF_COMPACTION: [["compaction:mm_compaction_begin", "compaction:mm_compaction_end"]],
    BPF_HEAP_GROWTH: [["syscalls:sys_exit_brk"], ["syscalls:sys_enter_mmap", "syscalls:sys_exit_mmap"]],
    # each of these three is one pair or one event: a program the verifier
    # rejects fails its own attach (bcc loads a function when it is
    # attached), so it costs only its artifact
    BPF_SHRINKERS: [["vmscan:mm_shrink_slab_start", "vmscan:mm_shrink_slab_end"]],
    BPF_SHRINKER_SLOW: [["vmscan:mm_shrink_slab_start", "vmscan:mm_shrink_slab_end"]],
    BPF_KSWAPD_RUNS: [["vmscan:mm_vmscan_kswapd_wake", "vmscan:mm_vmscan_kswapd_sleep"]],
    BPF_MIGRATION: [["migrate:mm_migrate_pages"]],
}
# Attached when present, needed by no artifact on its own: an exec resets
# a process's brk baseline and symbols, an exit frees its map slots.
HELPER_TRACEPOINTS = ["sched:sched_process_exec", "sched:sched_process_exit"]
# Perf software events, not tracepoints.
MAJFAULT_ARTIFACT = BPF_MAJFAULT_BY_PROC
MAJFAULT_FUNCTION = "on_major_fault"
FAULT_ARTIFACTS = (BPF_FAULT_STACKS_FOLDED, BPF_FAULT_STACKS_JSON)
# Kprobes, where the kernel allows them (not every host does: lockdown,
# CONFIG_KPROBES, a hypervisor's policy): artifact -> probes, each
# (kind, kernel functions to try in order, program). A function that is
# renamed between kernels is listed under each of its names.
THP_FUNCTION = "on_thp_fault_return"
KPROBE_GROUPS: dict[str, list[tuple[str, tuple[str, ...], str]]] = {
    # slot allocation at swap-out (returns swp_entry_t) -> the swap cache
    # lookup every swap-in fault makes first (swp_entry_t as argument 1)
    BPF_SWAP_RESIDENCY: [("kretprobe", ("folio_alloc_swap", "get_swap_page"), "on_swap_slot_alloc"),
                         ("kprobe", ("swap_cache_get_folio", "lookup_swap_cache"), "on_swap_cache_lookup")],
    # the return of the anonymous THP fault (vm_fault_t: VM_FAULT_FALLBACK
    # when it went on with 4 KiB pages); compiled only when asked for
    BPF_THP_FAULTS: [("kretprobe", ("do_huge_pmd_anonymous_page",), THP_FUNCTION)],
}
KPROBE_REMEDY = "a kernel that allows kprobes (CONFIG_KPROBES, CONFIG_KPROBE_EVENTS, not locked down)"
# Swap slots followed from swap-out to swap-in: an LRU hash of 16-byte
# entries (~2 MB locked); when more pages than this are out, the oldest
# are forgotten and the histogram's long end is cut (the note says so).
SWAP_ENTRIES = 32768
# (process, comm) -> THP fault attempts/fallbacks: 24-byte keys and values,
# ~200 KB at most; a full map loses new processes (thp_keys_full), not the
# host totals.
THP_KEYS = 4096

# Faults by mapping: fed by the fault sampler and the major-fault event
# (either will do); unavailable only when neither is attached.
FAULT_FILES_ARTIFACT = BPF_FAULT_FILES

STREAMS = (BPF_OOM_KILL, BPF_RECLAIM, BPF_KSWAPD_WAKE, BPF_COMPACTION, BPF_KSWAPD_RUNS, BPF_SHRINKER_SLOW)
FILES = (BPF_FAULT_STACKS_FOLDED, BPF_FAULT_STACKS_JSON, BPF_MAJFAULT_BY_PROC, BPF_HEAP_GROWTH, BPF_FAULT_FILES,
         BPF_SHRINKERS, BPF_MIGRATION, BPF_SWAP_RESIDENCY, BPF_THP_FAULTS)
ARTIFACTS = STREAMS + FILES

TRACEPOINTS = sorted({tp for groups in TRACEPOINT_GROUPS.values() for g in groups for tp in g}
                     | set(HELPER_TRACEPOINTS) | {FAULT_TRACEPOINT})

# Why a tracepoint may be missing, and what the user can do about it.
TRACEPOINT_REMEDY = {
    "exceptions": "x86 kernels only; elsewhere use perf record -e page-faults -g",
    "syscalls": "needs a kernel built with CONFIG_FTRACE_SYSCALLS",
    "oom": "needs Linux 4.8+ (oom:mark_victim); OOM kills still come from the kernel log",
    "vmscan": "needs a kernel with vmscan tracepoints (CONFIG_TRACEPOINTS)",
    "compaction": "needs a kernel built with CONFIG_COMPACTION",
    "migrate": "needs a kernel built with CONFIG_MIGRATION (migrate:mm_migrate_pages, 4.x+)",
    "sched": "needs a kernel with sched tracepoints (CONFIG_TRACEPOINTS)",
}


# Tracepoints also compiled as a raw tracepoint (4.17+), tried first: no
# perf_trace record is filled per event, which matters on the fault path.
RAW_FIRST = {"exceptions:page_fault_user": "page_fault_user"}


def perf_sampler_usable(period: int, kernel_stacks: bool, max_sample_rate: int | None) -> str | None:
    """None when the perf page-faults event can sample 1 in ``period``;
    otherwise why the tracepoint sampler is used instead."""
    if kernel_stacks:
        return "kernel stacks asked for: the perf event samples user registers only"
    rate = max_sample_rate or 100_000       # the kernel's default limit
    if period * rate < MAX_FAULT_RATE_PER_CPU:
        return (f"1 in {period} could exceed perf_event_max_sample_rate={rate} per CPU and be "
                "throttled")
    return None


def fault_step(period: int, carry: bool, max_sample_rate: int | None) -> int:
    """The perf event's sample_period for 1 recorded fault in ``period``:
    ``period`` itself, or with ``carry`` (a duty cycle) period/8, never so
    small that a CPU faulting flat out would be throttled."""
    if not carry or period <= 1:
        return int(period)
    rate = max_sample_rate or 100_000
    floor = -(-MAX_FAULT_RATE_PER_CPU // rate)          # ceil: the smallest unthrottled period
    return int(min(period, max(period // CARRY_STEPS, floor, 1)))


def ident(tracepoint: str) -> str:
    """``oom:mark_victim`` -> ``oom__mark_victim`` (bcc's naming)."""
    return tracepoint.replace(":", "__")


def function_name(tracepoint: str) -> str:
    """Name bcc gives a TRACEPOINT_PROBE function."""
    return "tracepoint__" + ident(tracepoint)


@dataclass
class Plan:
    text: str
    probes: list[str]                               # tracepoints to attach
    missing: dict[str, tuple[str, str]] = field(default_factory=dict)   # artifact -> (reason, remedy)
    fields: dict[str, list[str]] = field(default_factory=dict)          # tracepoint -> field names
    fault_period: int = DEFAULT_FAULT_PERIOD
    fault_step: int = DEFAULT_FAULT_PERIOD          # the perf event's sample_period (fault_step)
    kernel_stacks: bool = False
    fault_tracepoint: bool = False                  # the fallback sampler can be attached
    perf_sampler_problem: str | None = None         # why the perf sampler is not the choice
    task_regs: bool = False                         # SC_TASK_REGS: syscall stacks keep their SP word
    task_regs_problem: str | None = None            # why not, when the host was asked (host_plan)


def _source() -> str:
    return package_text(__package__, SOURCE_NAME)


def build_plan(formats: dict[str, str | None], *, fault_period: int = DEFAULT_FAULT_PERIOD,
               kernel_stacks: bool = False, stack_entries: int = STACK_ENTRIES,
               reasons: dict[str, str] | None = None, remedies: dict[str, str] | None = None,
               max_sample_rate: int | None = None, fault_carry: bool = False,
               task_regs: bool = False, thp_fallback: bool = False) -> Plan:
    """``formats``: tracepoint -> format text, None when absent (``reasons``
    and ``remedies`` may say why and what to do, e.g. permission denied).
    ``max_sample_rate``: /proc/sys/kernel/perf_event_max_sample_rate.
    ``fault_carry``: the perf sampler will be closed and opened again (a
    duty cycle), so it samples in steps and carries the rest (fault_step).
    ``task_regs``: the kernel has bpf_task_pt_regs (capabilities.task_regs_problem),
    so brk/mmap stacks and faults inside system calls keep the word at the
    user SP (the caller of the frameless syscall wrapper, leaf_frame.py).
    ``thp_fallback``: compile the THP fault kretprobe's program and maps
    (SC_THP_FALLBACK); without it they are not in the text at all.

    ``probes`` holds the tracepoints attached as such; the page-fault
    sampler (perf event, or ``exceptions:page_fault_user`` as the fallback
    or when the perf event cannot sample as asked) is attached apart."""
    if fault_period < 1:
        raise ValueError("fault sample period must be >= 1")
    reasons = reasons or {}
    remedies = remedies or {}
    present = {tp for tp, text in formats.items() if text}
    fields = {tp: sorted(parse_fields(formats[tp])) for tp in sorted(present)}

    step = fault_step(int(fault_period), fault_carry, max_sample_rate)
    lines = ["/* generated by snapcollect for kernel %s */" % os.uname().release,
             f"#define SC_FAULT_PERIOD {int(fault_period)}",
             f"#define SC_FAULT_STEP {step}",
             f"#define SC_KERNEL_STACKS {1 if kernel_stacks else 0}",
             f"#define SC_STACK_ENTRIES {int(stack_entries)}",
             f"#define SC_FAULT_KEYS {FAULT_KEYS}",
             f"#define SC_REGION_KEYS {REGION_KEYS}",
             f"#define SC_SWAP_ENTRIES {SWAP_ENTRIES}",
             f"#define SC_LEAF_KEYS {LEAF_KEYS}",
             f"#define SC_TASK_REGS {1 if task_regs else 0}",
             f"#define SC_THP_KEYS {THP_KEYS}"]
    if thp_fallback:
        lines.append("#define SC_THP_FALLBACK 1")
    probes: list[str] = []
    missing: dict[str, tuple[str, str]] = {}
    for artifact, groups in TRACEPOINT_GROUPS.items():
        usable = [g for g in groups if all(tp in present for tp in g)]
        if usable:
            for g in usable:
                probes.extend(tp for tp in g if tp not in probes)
            continue
        absent = sorted({tp for g in groups for tp in g if tp not in present})
        why = "; ".join(dict.fromkeys(reasons.get(tp) or f"tracepoint {tp} is not available" for tp in absent))
        remedy = remedies.get(absent[0]) or TRACEPOINT_REMEDY.get(absent[0].split(":")[0], "a newer kernel")
        missing[artifact] = (why, remedy)
    probes += [tp for tp in HELPER_TRACEPOINTS if tp in present]
    fault_tp = FAULT_TRACEPOINT in present
    perf_problem = perf_sampler_usable(fault_period, kernel_stacks, max_sample_rate)
    if perf_problem and not fault_tp:
        absent_why = reasons.get(FAULT_TRACEPOINT) or f"tracepoint {FAULT_TRACEPOINT} is not available"
        remedy = (remedies.get(FAULT_TRACEPOINT)
                  or ("drop --kernel-stacks" if kernel_stacks else "give a larger --fault-sample"))
        for artifact in FAULT_ARTIFACTS:
            missing[artifact] = (f"{perf_problem}, and {absent_why}", remedy)
    compiled = sorted(probes + ([FAULT_TRACEPOINT] if fault_tp else []))
    for tp in compiled:
        lines.append(f"#define SC_TP_{ident(tp)} 1")
        for name in fields[tp]:
            lines.append(f"#define SC_F_{ident(tp)}__{name} 1")
    text = "\n".join(lines) + "\n\n" + _source()
    return Plan(text=text, probes=sorted(probes), missing=missing, fields=fields,
                fault_period=int(fault_period), fault_step=step, kernel_stacks=kernel_stacks,
                fault_tracepoint=fault_tp,
                perf_sampler_problem=perf_problem, task_regs=bool(task_regs))
