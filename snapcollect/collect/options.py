"""What a collection (or doctor) was asked to do: one frozen object, built once from the CLI.

The collector's modules read their options from this object, not from
argparse's Namespace: every option has one name, one type and one default
here, a module cannot change an option under another's feet, and a test
builds exactly the options it means (``CollectOptions(duration=2, top=3)``)
instead of a namespace that may lack what production code then probes for.
The BPF process receives the BPF part over its pipe (bpf/wire.OPTIONS)
and rebuilds the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class CollectOptions:
    duration: float = 60.0
    interval: float = 1.0
    output: str = "."
    top: int = 10
    no_bpf: bool = False
    no_delayacct: bool = False            # leave kernel.task_delayacct as it is
    fault_sample: int | None = None       # 1 page fault in N per CPU gets its stack (None: the default)
    fault_duty: int | None = None         # percent of the time the perf fault sampler is open (None: 20)
    kernel_stacks: bool = False
    heap_trace: bool = False
    swap_residency: bool = False          # kprobes on the swap paths (opt-in)
    thp_fallback: bool = False            # a kretprobe on the THP fault path (opt-in)
    pids: tuple[int, ...] = ()            # --pid: the deep dive's processes
    comms: tuple[str, ...] = ()           # --comm: ... and process names
    bpf_start_timeout: float | None = None   # None: bpf_start.DEFAULT_TIMEOUT_S
    print_bpf: bool = False
    keep_secrets: bool = False
    redact: bool = False
    quiet: bool = False
    json: bool = False                    # doctor: print JSON

    @classmethod
    def from_namespace(cls, ns) -> "CollectOptions":
        """The options argparse parsed (a subcommand has only some of them: the rest keep their defaults)."""
        given = vars(ns) if ns is not None else {}
        kept = {f.name: given[f.name] for f in fields(cls) if given.get(f.name) is not None}
        for name in ("pids", "comms"):       # argparse's append gives a list
            if name in kept:
                kept[name] = tuple(kept[name])
        return cls(**kept)

    @property
    def deep_dive(self) -> bool:
        return bool(self.pids or self.comms)

    @classmethod
    def from_wire(cls, values: dict | None) -> "CollectOptions":
        """The BPF part sent to the BPF process; unknown keys and wrong types are dropped."""
        kinds = {"no_bpf": bool, "kernel_stacks": bool, "heap_trace": bool, "fault_sample": int,
                 "fault_duty": int, "swap_residency": bool,
                 "thp_fallback": bool}
        values = values if isinstance(values, dict) else {}
        kept = {k: v for k, v in values.items() if k in kinds and type(v) is kinds[k]}
        return cls(**kept)

    def but(self, **changes) -> "CollectOptions":
        return replace(self, **changes)
