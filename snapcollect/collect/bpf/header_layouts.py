"""Which BPF artifacts take a memory layout from the kernel headers bcc compiles against.

bcc compiles memevents.bpf.c with clang against the headers that
``capabilities.find_headers`` finds, which are often another kernel's:
Debian 12 on a 6.18 kernel compiles against 6.1's (the manifest's
``bpf.headers_release`` against ``bpf.kernel``). Whether that matters
depends on where each program's data is laid out:

- ``tracefs``: a TRACEPOINT_PROBE's ``args``. bcc does not take this
  struct from the headers: it writes it from the running kernel's format
  file (events/<cat>/<event>/format, field names, offsets and sizes), so
  it is right whatever the headers are. ``TP_DATA_LOC_READ_STR`` reads a
  ``__data_loc`` string at the offset that field holds.
- ``uapi``: a struct of the kernel's user ABI, e.g. a perf event
  program's ``struct bpf_perf_event_data`` or a raw tracepoint's
  ``struct bpf_raw_tracepoint_args``. Its layout is the same on every
  kernel that has it.
- ``kernel``: an internal struct (task_struct, mm_struct, a kprobe's
  arguments behind pointers). Its offsets are the headers', and a field
  read through it is garbage when they differ from the running kernel's.

The BPF helpers the programs call (pid/tgid, comm, ktime, CPU, stack ids,
perf output, maps) take only their numbers from the headers, and those
are ABI too. Stack frames are named from /proc/kallsyms and the
processes' own files, not from the headers.

``PROGRAMS`` says, for each function of memevents.bpf.c, what it reads;
tests/unit/test_bpf_header_layouts.py checks it against the C text (a
struct not defined in the program, a kernel memory read). The manifest
gets, per artifact, its programs and whether a header mismatch can touch
its data (``manifest_entry``).
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.bundle.names import BPF_HEAP_GROWTH
from snapcollect.collect.bpf import program

TRACEFS = "tracefs"
UAPI = "uapi"
KERNEL = "kernel"


@dataclass(frozen=True)
class Reads:
    """What one BPF program reads, by where its layout comes from."""

    context: str                            # TRACEFS, UAPI (its ctx struct), or KERNEL
    uapi_structs: tuple[str, ...] = ()      # user-ABI structs whose fields it reads
    kernel_structs: tuple[str, ...] = ()    # internal kernel structs whose fields it reads


_TRACEPOINT = Reads(TRACEFS)
# The perf event and raw tracepoint programs hand their context to
# bpf_get_stackid (the kernel walks the registers) and read one field of
# it, the faulting address: bpf_perf_event_data.addr, or a raw
# tracepoint's args[0] (struct bpf_raw_tracepoint_args, named by bcc's
# RAW_TRACEPOINT_PROBE macro, not by the program text). Both are user ABI.
# The fault samplers also read the user stack pointer, for the word at it
# (the return address into a frameless leaf's caller, leaf_frame.py): the
# perf event program from its context's registers (the same struct); the
# raw tracepoint through the pt_regs pointer page_fault_user passes
# (args[1]), read from kernel memory but user ABI all the same: x86-64's
# struct pt_regs is what the kernel hands perf event programs as
# bpf_user_pt_regs_t, so its layout cannot move with the headers. A
# fault taken inside a system call, and a brk/mmap call, take the SP from
# the task's saved user registers (bpf_task_pt_regs of
# bpf_get_current_task_btf, typed by the running kernel's BTF, not the
# headers), read as the word at its ptrace-ABI place: user ABI as well.
_PERF_ADDR = Reads(UAPI, uapi_structs=("bpf_perf_event_data",))
_RAW_ADDR = Reads(UAPI, uapi_structs=("pt_regs",))
# A kprobe's context is the registers (struct pt_regs, the layout the
# kprobe ABI hands to BPF); the swap programs read a return value or the
# first argument, both passed by value (swp_entry_t.val), nothing behind
# a pointer; the THP fault program (on_thp_fault_return) reads only the
# return register (vm_fault_t, by value), no kernel struct.
_KPROBE_REGS = Reads(UAPI, uapi_structs=("pt_regs",))

RAW_FAULT_FUNCTION = "raw_tracepoint__" + program.RAW_FIRST[program.FAULT_TRACEPOINT]

PROGRAMS: dict[str, Reads] = {
    **{program.function_name(tp): _TRACEPOINT for tp in program.TRACEPOINTS},
    RAW_FAULT_FUNCTION: _RAW_ADDR,
    program.FAULT_PERF_FUNCTION: _PERF_ADDR,
    program.MAJFAULT_FUNCTION: _PERF_ADDR,
    **{fn: _KPROBE_REGS for probes in program.KPROBE_GROUPS.values() for _kind, _fns, fn in probes},
}


def artifact_programs() -> dict[str, list[str]]:
    """Each BPF artifact -> the programs whose data it holds."""
    out: dict[str, list[str]] = {}
    for artifact, groups in program.TRACEPOINT_GROUPS.items():
        out[artifact] = [program.function_name(tp) for g in groups for tp in g]
    fault = [program.FAULT_PERF_FUNCTION, RAW_FAULT_FUNCTION, program.function_name(program.FAULT_TRACEPOINT)]
    for artifact in program.FAULT_ARTIFACTS:
        out[artifact] = list(fault)
    out[program.MAJFAULT_ARTIFACT] = [program.MAJFAULT_FUNCTION]
    for artifact, probes in program.KPROBE_GROUPS.items():
        out[artifact] = [fn for _kind, _fns, fn in probes]
    out[program.FAULT_FILES_ARTIFACT] = fault + [program.MAJFAULT_FUNCTION]
    # exec and exit reset the brk baseline and the "new process" note that
    # has the symbols of the fault and heap stacks loaded
    helpers = [program.function_name(tp) for tp in program.HELPER_TRACEPOINTS]
    for artifact in (*program.FAULT_ARTIFACTS, BPF_HEAP_GROWTH):
        out[artifact] = out[artifact] + helpers
    return {a: out[a] for a in program.ARTIFACTS}


def manifest_entry() -> dict[str, dict]:
    """``bpf.header_layouts``: per artifact, its programs, the structs they read, and
    ``header_dependent``: true when a struct's layout comes from the headers (a kernel struct)."""
    out = {}
    for artifact, names in artifact_programs().items():
        reads = [PROGRAMS[n] for n in names]
        kernel = sorted({s for r in reads for s in r.kernel_structs})
        out[artifact] = {
            "programs": names,
            "contexts": sorted({r.context for r in reads}),
            "uapi_structs": sorted({s for r in reads for s in r.uapi_structs}),
            "kernel_structs": kernel,
            "header_dependent": bool(kernel),
        }
    return out
