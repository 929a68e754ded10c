"""The collector's side of the --pid/--comm deep dive: a second, opt-in BPF process.

The deep dive (collect/bpf/deepdive_child.py) is a bcc importer of its
own, started only when processes are asked for, under the same
supervision as the BPF process (bpf_hook.BpfHook: the start limit, the
finish and detach messages, the kill at the deadline, its peak RSS and
CPU from wait4(2)); its outcome goes to the manifest's ``deepdive``
entry. Its uprobes trap on every malloc and free of the chosen
processes, so the run says what that costs before starting it, and what
it measured once the probes are on.
"""

from __future__ import annotations

import sys

from snapcollect.collect.bpf import capabilities
from snapcollect.collect.bpf_hook import BpfHook

COST_NOTICE = ("deep dive: uprobes on malloc, free and the rest of the family trap into the kernel on "
               "every call of the chosen processes (about 190 times a malloc/free pair, several "
               "microseconds a call); measuring that cost here before attaching")


def deepdive_process_command(out_fd: int) -> list[str]:
    return [sys.executable, "-m", "snapcollect.collect.bpf.deepdive_child", "--out-fd", str(out_fd)]


def measured_cost_line(manifest_entry: dict) -> str | None:
    """One line on what the probes cost, from the process's own manifest notes."""
    cal = (manifest_entry or {}).get("calibration") or {}
    if not manifest_entry.get("enabled"):
        return f"deep dive not started: {manifest_entry.get('reason') or 'no reason recorded'}"
    if not cal.get("measured"):
        return f"deep dive attached; its cost could not be measured: {cal.get('reason', 'unknown')}"
    per = cal.get("per_call_ns") or {}
    return (f"deep dive attached to {len(manifest_entry.get('targets') or [])} process(es): a probed "
            f"malloc costs {per.get('two_traps', 0) / 1000:.1f} us more, a free "
            f"{per.get('one_trap', 0) / 1000:.1f} us (measured)")


class DeepDiveHook(BpfHook):
    manifest_key = "deepdive"

    def __init__(self, args, writer, stop, room=None, command=None):
        super().__init__(args, writer, stop, command=command or deepdive_process_command, room=room)

    def config_options(self) -> dict:
        return {"pids": list(self.args.pids), "comms": list(self.args.comms)}

    def start(self) -> None:
        if self.args.no_bpf:
            self._disable("--no-bpf: the deep dive is a BPF program")
            return
        problem = capabilities.privilege_problem()
        if problem is not None:
            self._disable(f"{problem.reason}; {problem.remedy}")
            return
        super().start()
