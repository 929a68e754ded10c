"""The loader: ``python -m snapcollect.collect.bpf.loader --sock-fd N``.

The only process meant to import bcc: bcc pulls libLLVM and libclang
into the address space (``import bcc`` alone is ~76 MB resident here, a
compile ~180 MB more), so a process that imports it is large for as long
as it lives. This one lives for the compile: it reads the plan's
options from the socket (one JSON line), checks what BPF needs, compiles
and loads the programs (compile.py) and attaches them (attach.py) exactly
as an in-process session would, then hands every map fd and every fd
that holds an attachment to the process that started it (handoff.py)
and exits at once with os._exit: bcc's own clean-up would disable the
perf events, which are the reader's now (a perf event disabled through
one fd is disabled for every holder of the file).

Its peak RSS and CPU are its parent's to measure (wait4(2)). The
description it sends: ``load`` (the plan, the compile and attach
information, what is unavailable and why, the tracefs formats) and
``maps``/``links`` with the index of each fd.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import json
import os
import socket
import sys
import time

from snapcollect.collect.bpf import capabilities, handoff, header_layouts, host_plan, program
from snapcollect.collect.bpf import compile as bpf_compile
from snapcollect.collect.bpf.attach import Attachments
from snapcollect.collect.bpf.bpfsys import describe_ctype
from snapcollect.collect.bpf.capabilities import Problem

MIN_COMPILE_S = 1.0             # do not start a compile with less time left
MAX_OPTIONS = 1 << 16


class Loaded:
    """What a load produced: ``bpf`` is None when BPF cannot run, and
    ``problem`` says why for every artifact still available."""

    def __init__(self):
        self.bcc = None
        self.bpf = None
        self.plan: program.Plan | None = None
        self.formats: dict[str, str] | None = None     # tracepoint -> format text, for the bundle
        self.attachments: Attachments | None = None
        self.info: dict = {}
        self.unavailable: dict[str, Problem] = {}
        self.problem: Problem | None = None


def load(args, deadline_mono: float) -> Loaded:
    """Check, plan, compile and attach; never raises for BPF trouble."""
    out = Loaded()
    if args.no_bpf:
        out.problem = Problem("BPF disabled with --no-bpf", "run without --no-bpf (as root)")
        return out
    problem = capabilities.privilege_problem()
    if problem:
        out.problem = problem
        return out
    out.bcc, problem = capabilities.bcc_problem()
    if problem:
        out.problem = problem
        return out
    where, problem = capabilities.tracefs_problem()
    if problem:
        out.problem = problem
        return out
    problem = capabilities.headers_problem()
    if problem:
        out.problem = problem
        return out
    formats, reasons, remedies = host_plan.read_formats(where)
    out.plan = plan = host_plan.make_plan(args, formats, reasons, remedies)
    out.formats = {tp: text for tp, text in formats.items() if text}
    for artifact, (why, remedy) in plan.missing.items():
        out.unavailable[artifact] = Problem(why, remedy)
    headers, headers_release = capabilities.find_headers()
    out.info.update(kernel=os.uname().release, headers=headers, headers_release=headers_release,
                    header_layouts=header_layouts.manifest_entry(),
                    fault_sample_period=plan.fault_period, kernel_stacks=plan.kernel_stacks,
                    stack_map_entries=program.STACK_ENTRIES, tracepoint_fields=plan.fields,
                    # whether brk/mmap stacks and faults inside system calls keep the SP word
                    task_user_regs=("available" if plan.task_regs
                                    else plan.task_regs_problem or "not compiled in"))
    left = deadline_mono - time.monotonic()
    if left < MIN_COMPILE_S:
        out.problem = Problem(f"only {max(left, 0):.1f} s left of the BPF start's time; compiling "
                              "the BPF programs takes longer", "give a larger --bpf-start-timeout")
        return out
    compiled = bpf_compile.compile_program(out.bcc, plan.text, deadline_mono - 0.5)
    out.info.update(compiled.info)
    if compiled.bpf is None:
        out.problem = compiled.problem
        return out
    out.bpf = compiled.bpf
    out.attachments = Attachments(out.bcc, out.bpf, plan)
    out.info["attach"] = out.attachments.attach(out.unavailable)
    return out


# -- the handoff -------------------------------------------------------------

def _table_names(bcc, bpf) -> list[str]:
    lib = bcc.lib
    lib.bpf_num_tables.restype = ct.c_size_t
    lib.bpf_num_tables.argtypes = [ct.c_void_p]
    lib.bpf_table_name.restype = ct.c_char_p
    lib.bpf_table_name.argtypes = [ct.c_void_p, ct.c_ulonglong]
    return [lib.bpf_table_name(bpf.module, i).decode() for i in range(lib.bpf_num_tables(bpf.module))]


def describe(loaded: Loaded) -> tuple[dict, list[int]]:
    """The handoff description and the fds it refers to by index."""
    fds: list[int] = []

    def ref(fd: int) -> int:
        fds.append(int(fd))
        return len(fds) - 1

    maps, links = [], []
    bpf, att = loaded.bpf, loaded.attachments
    if bpf is not None:
        for name in _table_names(loaded.bcc, bpf):
            table = bpf[name.encode()]
            maps.append({"name": name, "type": int(table.ttype), "fd": ref(table.map_fd),
                         "key_size": ct.sizeof(table.Key), "value_size": ct.sizeof(table.Leaf),
                         "max_entries": int(table.max_entries),
                         "key": describe_ctype(table.Key), "value": describe_ctype(table.Leaf)})
        for tp in att.attached:
            links.append({"kind": "tracepoint", "what": tp, "fd": ref(bpf.tracepoint_fds[tp.encode()])})
        for raw in att.attached_raw:
            links.append({"kind": "raw_tracepoint", "what": raw, "fd": ref(bpf.raw_tracepoint_fds[raw.encode()])})
        for key in att.perf_events:
            for cpu, fd in sorted(bpf.open_perf_events[key].items()):
                links.append({"kind": "perf_event", "what": list(key), "cpu": int(cpu), "fd": ref(fd)})
        for ev_name, by_fn in sorted((getattr(bpf, "kprobe_fds", None) or {}).items()):
            for _fn, fd in sorted(by_fn.items()):
                links.append({"kind": "kprobe", "what": ev_name.decode(), "fd": ref(fd)})
        for name, fn in sorted(bpf.funcs.items()):
            links.append({"kind": "program", "what": name.decode(), "fd": ref(fn.fd)})
    plan = loaded.plan
    doc = {
        "load": {
            "info": loaded.info,
            "unavailable": {a: [p.reason, p.remedy] for a, p in loaded.unavailable.items()},
            "problem": [loaded.problem.reason, loaded.problem.remedy] if loaded.problem else None,
            "formats": loaded.formats,
            "fault_sampler": att.fault_sampler if att else {},
            "plan": ({"fault_period": plan.fault_period, "fault_step": plan.fault_step,
                      "kernel_stacks": plan.kernel_stacks,
                      "probes": plan.probes} if plan else None),
        },
        "maps": maps,
        "links": links,
    }
    return doc, fds


def run(sock: socket.socket) -> int:
    from snapcollect.collect.options import CollectOptions

    line = sock.recv(MAX_OPTIONS)
    try:
        request = json.loads(line)
        opts = CollectOptions.from_wire(request.get("options"))
        deadline = float(request["deadline_mono"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        print(f"snapcollect-bpf-loader: bad request: {exc}", file=sys.stderr)
        return 2
    try:
        loaded = load(opts, deadline)
    except Exception as exc:  # noqa: BLE001 - said to the reader, not as a traceback
        loaded = Loaded()
        loaded.problem = Problem(f"BPF set-up failed: {exc.__class__.__name__}: {exc}",
                                 "check `snapcollect doctor`; run with --no-bpf to skip BPF")
    doc, fds = describe(loaded)
    handoff.send(sock, doc, fds)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="snapcollect-bpf-loader", description=__doc__.splitlines()[0])
    ap.add_argument("--sock-fd", type=int, required=True)
    ns = ap.parse_args(argv)
    os.dup2(2, 1)        # nothing bcc or clang prints goes anywhere but stderr
    sock = socket.socket(fileno=ns.sock_fd)
    try:
        code = run(sock)
    except OSError as exc:
        print(f"snapcollect-bpf-loader: handoff failed: {exc}", file=sys.stderr)
        code = 3
    sys.stderr.flush()
    # No interpreter clean-up: bcc's would detach what the reader now holds.
    os._exit(code)


if __name__ == "__main__":
    main()
