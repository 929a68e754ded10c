"""The final maps -> the bundle's BPF file artifacts, through aggregates.py.

Read once the probes are off: ``fault_counts`` (sampled page faults per
process and stack) -> bpf/fault_stacks.folded + .json, ``majfaults`` ->
bpf/majfault_by_proc, ``heap`` (brk/mmap growth per stack) + ``heap_leaf`` (the word at its
user SP) -> bpf/heap_growth, ``fault_regions`` (faults per process and 2 MiB region,
named by fault_regions.py) -> bpf/fault_files, ``shrink_stats`` + ``shrink_hist`` (shrink_slab latency
per callback, named from /proc/kallsyms) -> bpf/shrinkers,
``migrate_by_reason`` + ``migrate_by_proc`` -> bpf/migration, ``swap_residency_hist`` +
``swapin_by_proc`` + ``swap_counts`` -> bpf/swap_residency, ``thp_by_proc`` + ``thp_counts``
(the anonymous THP fault's return value, a kretprobe) -> bpf/thp_faults, ``leaf_words`` (the
word at the faulting user SP, checked by leaf_frame.py) -> the frameless
leaf's caller put back into bpf/fault_stacks.folded, and the ``errors`` array of the BPF program's own
failure counts (full maps, stack collisions), which each document cites.
"""

from __future__ import annotations

import json
import time

from snapcollect.bundle.names import (BPF_FAULT_STACKS_FOLDED, BPF_FAULT_STACKS_JSON, BPF_HEAP_GROWTH,
                                      BPF_MIGRATION, BPF_SHRINKERS, BPF_SWAP_RESIDENCY, BPF_THP_FAULTS)
from snapcollect.collect.bpf import aggregates, events, fault_regions, leaf_frame, program
from snapcollect.collect.bpf.kallsyms import KernelSymbols
from snapcollect.collect.protocols import BpfWriter

ERROR_SLOTS = ("fault_ustack_collision", "fault_ustack_other", "fault_kstack", "fault_keys_full",
               "sys_stack_collision", "sys_stack_other", "heap_keys_full", "start_map_full",
               "majfault_keys_full", "seen_full", "region_keys_full", "shrink_keys_full", "migrate_keys_full",
               "swap_keys_full", "leaf_keys_full", "heap_leaf_keys_full", "thp_keys_full")


def read_errors(maps) -> dict[str, int]:
    return dict(zip(ERROR_SLOTS, maps.array_ints("errors", len(ERROR_SLOTS))))


class ArtifactWriter:
    """``resolver`` is a symbolize.StackResolver; ``own_tgids`` are
    snapcollect's processes, whose faults are its cost, not the incident's."""

    def __init__(self, writer: BpfWriter, maps, resolver, plan: program.Plan, unavailable, own_tgids,
                 sampler_kind: str, duty: dict | None = None,
                 regions: fault_regions.RegionNamer | None = None):
        self.writer = writer
        self.maps = maps
        self.resolver = resolver
        self.plan = plan
        self.unavailable = unavailable
        self.own_tgids = own_tgids
        self.sampler_kind = sampler_kind
        self.duty = duty            # fault_duty.FaultDuty.stats + scale, None: open all the time
        self.regions = regions

    def write_all(self, errors: dict[str, int], deadline: float) -> list[str]:
        """Every file artifact; one that fails leaves the others. Returns
        what failed (an OSError is the bundle's own and is raised)."""
        failures = []
        for writer_fn in (self.write_faults, self.write_majfaults, self.write_heap, self.write_fault_files,
                          self.write_shrinkers, self.write_migration, self.write_swap_residency,
                          self.write_thp_faults):
            try:
                writer_fn(errors, deadline)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{writer_fn.__name__}: {exc}")
        return failures

    def write_faults(self, errors: dict[str, int], deadline: float) -> None:
        if BPF_FAULT_STACKS_FOLDED in self.unavailable:
            return
        rows = [aggregates.FaultRow(k.tgid, k.ustack, k.kstack, events.cstr(bytes(k.comm)), int(v))
                for k, v in self.maps.items("fault_counts") if k.tgid not in self.own_tgids]
        self.resolver.unresolved = 0
        leaf = self.fault_leaf(deadline)
        text, meta = aggregates.fault_documents(
            rows, self.plan.fault_period, self.plan.kernel_stacks, program.STACK_ENTRIES, errors,
            lambda tgid, sid: self.resolver.user_frames("stacks", tgid, sid, deadline),
            lambda sid: self.resolver.kernel_frames("stacks", sid),
            sampler=self.sampler_kind, duty=self.duty, leaf=leaf)
        meta["leaf_frames"]["map_full"] = errors.get("leaf_keys_full", 0)
        meta["stacks_unresolved"] = self.resolver.unresolved
        self.writer.add_file(BPF_FAULT_STACKS_FOLDED, text, sample_period=self.plan.fault_period)
        self.writer.add_file(BPF_FAULT_STACKS_JSON, json.dumps(meta, indent=1))

    def fault_leaf(self, deadline: float) -> aggregates.Leaf:
        """leaf_words: the SP words of each fault stack (tgid, ustack, kstack), with their samples."""
        return self._leaf_words(deadline, "leaf_words", "stacks", rest=lambda k: (int(k.kstack),),
                                amounts=lambda v: (int(v), 0))

    def heap_leaf(self, deadline: float) -> aggregates.Leaf:
        """heap_leaf: the SP words of each row of the heap map (tgid, ustack, kind, comm), with
        calls and bytes."""
        return self._leaf_words(deadline, "heap_leaf", "sys_stacks",
                                rest=lambda k: (int(k.kind), events.cstr(bytes(k.comm))),
                                amounts=lambda v: (int(v.calls), int(v.grow_bytes)))

    def _leaf_words(self, deadline: float, words_map: str, stack_table: str, rest, amounts) -> aggregates.Leaf:
        """A map of SP words -> per stack (tgid, ustack, then ``rest(key)``:
        the kstack of a fault stack, the kind and comm of a brk/mmap one) its
        words with ``amounts(value)`` (samples or calls, bytes), each checked
        (leaf_frame.py) when first asked for, until ``deadline``."""
        by_stack: dict[tuple, list[tuple[int, int, int]]] = {}
        try:
            items = self.maps.items(words_map)
        except Exception:  # noqa: BLE001 - a program without the map
            items = []
        for k, v in items:
            if k.tgid in self.own_tgids:
                continue
            calls, nbytes = amounts(v)
            by_stack.setdefault((int(k.tgid), int(k.ustack), *rest(k)), []).append((int(k.word), calls, nbytes))

        def leaf(tgid: int, ustack: int, *rest_key) -> list[aggregates.LeafWord]:
            out = []
            for word, n, nbytes in sorted(by_stack.get((tgid, ustack, *rest_key), ()), key=lambda w: -w[1]):
                if time.monotonic() > deadline:
                    out.append(aggregates.LeafWord(None, leaf_frame.NOT_CHECKED, n, nbytes))
                    continue
                name, outcome = self.resolver.leaf_caller(stack_table, tgid, ustack, word)
                out.append(aggregates.LeafWord(name, outcome, n, nbytes))
            return out
        return leaf

    def write_majfaults(self, errors: dict[str, int], _deadline: float) -> None:
        if program.MAJFAULT_ARTIFACT in self.unavailable:
            return
        rows = [(k.tgid, events.cstr(bytes(k.comm)), int(v)) for k, v in self.maps.items("majfaults")]
        self.writer.add_file(program.MAJFAULT_ARTIFACT,
                             json.dumps(aggregates.majfault_document(rows, errors), indent=1))

    def write_heap(self, errors: dict[str, int], deadline: float) -> None:
        if BPF_HEAP_GROWTH in self.unavailable:
            return
        rows = [aggregates.HeapRow(k.tgid, k.ustack, k.kind, events.cstr(bytes(k.comm)), int(v.calls),
                                   int(v.grow_bytes), int(v.shrink_bytes), int(v.calls_no_baseline))
                for k, v in self.maps.items("heap") if k.tgid not in self.own_tgids]
        self.resolver.unresolved = 0
        doc = aggregates.heap_document(
            rows, errors, lambda tgid, sid: self.resolver.user_frames("sys_stacks", tgid, sid, deadline),
            leaf=self.heap_leaf(deadline))
        doc["stacks_unresolved"] = self.resolver.unresolved
        self.writer.add_file(BPF_HEAP_GROWTH, json.dumps(doc, indent=1))

    def write_fault_files(self, errors: dict[str, int], _deadline: float) -> None:
        if program.FAULT_FILES_ARTIFACT in self.unavailable or self.regions is None:
            return
        rows = [(k.tgid, int(k.kind), int(k.region), int(v)) for k, v in self.maps.items("fault_regions")
                if k.tgid not in self.own_tgids]
        comms = {}
        for name in ("fault_counts", "majfaults"):
            for k, _v in self.maps.items(name):
                comms.setdefault(k.tgid, events.cstr(bytes(k.comm)))
        comms.update(self.regions.comms)       # the process's own name, read with its maps
        sources = {"sampled": not any(a in self.unavailable for a in program.FAULT_ARTIFACTS),
                   "major": program.MAJFAULT_ARTIFACT not in self.unavailable}
        doc = fault_regions.fault_files_document(rows, self.regions.places, comms, self.plan.fault_period,
                                                 errors, sources,
                                                 scale=float((self.duty or {}).get("scale") or 1.0))
        doc["maps_read"] = self.regions.maps_read
        self.writer.add_file(program.FAULT_FILES_ARTIFACT, json.dumps(doc, indent=1))

    def write_shrinkers(self, errors: dict[str, int], _deadline: float) -> None:
        if BPF_SHRINKERS in self.unavailable:
            return
        rows = [aggregates.ShrinkRow(int(k.shrink), int(k.nid), int(v.calls), int(v.total_ns), int(v.max_ns),
                                     int(v.freed), int(v.scanned))
                for k, v in self.maps.items("shrink_stats")]
        hist = [(int(k.shrink), int(k.slot), int(v)) for k, v in self.maps.items("shrink_hist")]
        addrs = sorted({r.shrink for r in rows} | {a for a, _, _ in hist})
        names = dict(zip(addrs, KernelSymbols().resolve(addrs))) if addrs else {}
        doc = aggregates.shrinker_document(rows, hist, names, errors, kptr_restrict())
        self.writer.add_file(BPF_SHRINKERS, json.dumps(doc, indent=1))

    def write_migration(self, errors: dict[str, int], _deadline: float) -> None:
        if BPF_MIGRATION in self.unavailable:
            return
        by_reason = [((int(k.reason), int(k.mode)), _migrate_counts(v)) for k, v in self.maps.items("migrate_by_reason")]
        by_proc = [((int(k.tgid), events.cstr(bytes(k.comm)), int(k.reason)), _migrate_counts(v))
                   for k, v in self.maps.items("migrate_by_proc") if int(k.tgid) not in self.own_tgids]
        doc = aggregates.migration_document(by_reason, by_proc, errors)
        self.writer.add_file(BPF_MIGRATION, json.dumps(doc, indent=1))


    def write_swap_residency(self, errors: dict[str, int], _deadline: float) -> None:
        if BPF_SWAP_RESIDENCY in self.unavailable:
            return
        hist = [(int(k), int(v)) for k, v in self.maps.items("swap_residency_hist") if int(v)]
        procs = [(int(k.tgid), events.cstr(bytes(k.comm)), int(v.count), int(v.total_us), int(v.under_1s))
                 for k, v in self.maps.items("swapin_by_proc") if int(k.tgid) not in self.own_tgids]
        counts = self.maps.array_ints("swap_counts", 2)
        doc = aggregates.swap_residency_document(hist, procs, counts[0], counts[1], errors,
                                                 program.SWAP_ENTRIES)
        self.writer.add_file(BPF_SWAP_RESIDENCY, json.dumps(doc, indent=1))

    def write_thp_faults(self, errors: dict[str, int], _deadline: float) -> None:
        if BPF_THP_FAULTS in self.unavailable:
            return
        procs = [(int(k.tgid), events.cstr(bytes(k.comm)), int(v.attempts), int(v.fallbacks), int(v.other))
                 for k, v in self.maps.items("thp_by_proc") if int(k.tgid) not in self.own_tgids]
        counts = self.maps.array_ints("thp_counts", 3)
        doc = aggregates.thp_faults_document(procs, counts[0], counts[1], counts[2], errors, program.THP_KEYS)
        self.writer.add_file(BPF_THP_FAULTS, json.dumps(doc, indent=1))


def _migrate_counts(v) -> dict[str, int]:
    return {f: int(getattr(v, f)) for f in aggregates.MIGRATE_FIELDS}


def kptr_restrict(path: str = "/proc/sys/kernel/kptr_restrict") -> int | None:
    """/proc/sys/kernel/kptr_restrict: 2 hides kallsyms addresses even from root."""
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None
