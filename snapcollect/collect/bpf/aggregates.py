"""The aggregated BPF artifacts, built from the rows of the kernel maps.

Pure functions: the session reads the maps (fault_counts, majfaults,
heap) into the rows below and passes a function that gives a stack's
frames; what goes into ``bpf/fault_stacks.folded``, ``.json``,
``bpf/majfault_by_proc``, ``bpf/heap_growth``, ``bpf/shrinkers`` and
``bpf/migration`` is decided here. Sample
row of ``fault_counts`` (1 sample = SC_FAULT_PERIOD faults, through the
perf event page-faults or the tracepoint exceptions:page_fault_user)::

    FaultRow(tgid=4242, ustack=17, kstack=-1, comm="alloc", samples=512)

and of ``leaf_words`` (the word at the faulting user SP, per stack), once
checked by leaf_frame.py: a frame to insert between the leaf (frame 0)
and the caller's caller the frame-pointer walk went on to, or not::

    LeafWord(frame="fault_loop", outcome="recovered", samples=40)

The same for ``heap_leaf`` (the word at the user SP of a brk/mmap call:
the return address into the caller of the frameless syscall wrapper),
with the calls and the bytes that word's calls grew by::

    LeafWord(frame="sc_map_grower", outcome="recovered", samples=4096, grow_bytes=1073741824)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from snapcollect.collect.bpf import folded, leaf_frame
from snapcollect.collect.bpf.folded import UNKNOWN

HEAP_KINDS = {0: ("brk", "heap"), 1: ("mmap", "anon"), 2: ("mmap", "file")}
HEAP_STACKS_PER_ENTRY = 10
HEAP_ENTRIES = 300

# frames(tgid, stack_id) -> frames root first (placeholders included)
Frames = Callable[[int, int], list[str]]


@dataclass(frozen=True)
class FaultRow:
    tgid: int
    ustack: int
    kstack: int
    comm: str
    samples: int


@dataclass(frozen=True)
class LeafWord:
    frame: str | None        # the name to insert, when outcome is leaf_frame.RECOVERED
    outcome: str
    samples: int             # fault samples, or brk/mmap calls
    grow_bytes: int = 0      # brk/mmap: what those calls grew by


# leaf(tgid, ustack, kstack) -> the checked SP words of a fault stack;
# leaf(tgid, ustack, kind, comm) -> those of a row of the heap map
Leaf = Callable[..., list[LeafWord]]


def _split_by_leaf(user: list[str], samples: int, words: list[LeafWord], counts: dict[str, int],
                   grow_bytes: int = 0) -> list[tuple[list[str], int, int]]:
    """A row's samples (or calls) and bytes -> (user frames root first,
    samples, bytes): the recovered words' share with their frame inserted
    before the leaf, the rest as walked. ``counts`` gets the samples per
    outcome. ``words`` is consumed (shared by the rows of one stack)."""
    out = []
    left, left_bytes = samples, grow_bytes
    while words and left > 0:
        w = words[0]
        n, b = min(w.samples, left), min(w.grow_bytes, left_bytes)
        counts[w.outcome] = counts.get(w.outcome, 0) + n
        if w.outcome == leaf_frame.RECOVERED and w.frame and user:
            out.append((user[:-1] + [w.frame] + user[-1:], n, b))
        else:
            out.append((user, n, b))
        left, left_bytes = left - n, left_bytes - b
        if n == w.samples:
            words.pop(0)
        else:
            words[0] = LeafWord(w.frame, w.outcome, w.samples - n, w.grow_bytes - b)
    if left > 0 or left_bytes > 0:
        counts[leaf_frame.NO_WORD] = counts.get(leaf_frame.NO_WORD, 0) + left
        out.append((user, left, left_bytes))
    return out


@dataclass(frozen=True)
class HeapRow:
    tgid: int
    ustack: int
    kind: int
    comm: str
    calls: int
    grow_bytes: int
    shrink_bytes: int
    calls_no_baseline: int


SAMPLER_SOURCES = {
    "perf": "perf software event page-faults (PERF_COUNT_SW_PAGE_FAULTS), sample_period {n} per CPU; "
            "user stacks aggregated in the kernel",
    "tracepoint": "tracepoint exceptions:page_fault_user, 1 fault in {n} per CPU counted in BPF; "
                  "user stacks aggregated in the kernel",
}
SAMPLER_COUNTS = {
    "perf": "user- and kernel-mode faults of a task (what /proc/PID/stat minflt + majflt count)",
    "tracepoint": "user-mode faults only (faults taken inside system calls are not seen)",
}


def sampling_error(period: int, scale: float = 1.0, carried: bool = False) -> str:
    """What a scaled count is worth, in words (one sigma). ``scale``: window
    / time the sampler was open (fault_duty.py), which multiplies the
    effective period and adds the error of faults that came in bursts.
    ``carried``: what each open phase counted went on to the next (the
    per-CPU carry), so no phase lost the faults short of a sample."""
    if period <= 1 and scale <= 1.0:
        return "exact: every fault is recorded"
    n = period * scale
    text = (f"a count of F faults (samples x {n:g}) is within about sqrt({n:g}*F) (one standard "
            f"deviation) when the process faults steadily, e.g. +-{int((n * 100_000) ** 0.5):,} for "
            f"100,000 faults; a stack with few samples is a rough estimate")
    if scale > 1.0 and carried:
        text += ("; the sampler was open part of the time, so a burst of faults shorter than its "
                 "0.5 s cycle is over- or under-counted; what each open phase counted short of a "
                 "sample was carried to the next, so light faulting is counted too")
    elif scale > 1.0:
        text += ("; the sampler was open part of the time, so a burst of faults shorter than its "
                 f"0.5 s cycle is over- or under-counted, and each open phase counts afresh: a CPU "
                 f"that faults fewer than {period} times in a phase gives no sample, so light "
                 f"faulting (under about {period * 10:,} faults a second per CPU) is under-counted "
                 "or not seen at all")
    return text


def fault_documents(rows: list[FaultRow], period: int, kernel_stacks: bool, stack_entries: int,
                    errors: dict[str, int], frames: Frames,
                    kernel_frames: Callable[[int], list[str]] | None = None,
                    sampler: str = "perf", duty: dict | None = None,
                    leaf: Leaf | None = None) -> tuple[str, dict]:
    """(folded text, side document) of the sampled page-fault stacks.
    ``leaf``: the checked SP words of a stack (leaf_frame.py); a recovered
    one puts the frameless leaf's caller back, between frame 0 and the
    walk's next frame.
    ``sampler``: "perf" (page-faults event) or "tracepoint". ``duty``: how
    long the sampler was open (fault_duty.py); its ``scale`` (window / time
    open) multiplies every count, so that counts estimate the whole window."""
    scale = float((duty or {}).get("scale") or 1.0)
    procs: dict[int, dict] = {}
    stacks: list[tuple[list[str], int]] = []
    samples = shallow = 0
    leaf_counts: dict[str, int] = {}
    words: dict[tuple[int, int, int], list[LeafWord]] = {}
    for r in sorted(rows, key=lambda r: -r.samples):   # biggest first: symbols go to them first
        samples += r.samples
        p = procs.setdefault(r.tgid, {"pid": r.tgid, "comm": r.comm, "samples": 0})
        p["samples"] += r.samples
        user = frames(r.tgid, r.ustack)
        if len(user) <= 2:
            shallow += r.samples
        kern = []
        if r.kstack >= 0 and kernel_frames is not None:
            kern = [f + "_[k]" for f in reversed(kernel_frames(r.kstack))]
        key = (r.tgid, r.ustack, r.kstack)
        if key not in words:
            words[key] = list(leaf(*key)) if leaf is not None and r.ustack >= 0 else []
        for got, n, _b in _split_by_leaf(user, r.samples, words[key], leaf_counts):
            stacks.append(([r.comm] + got + kern, round(n * period * scale)))
    for p in procs.values():
        p["faults_estimated"] = round(p["samples"] * period * scale)
    meta = {
        "source": SAMPLER_SOURCES.get(sampler, sampler).format(n=period),
        "sampler": sampler,
        "faults_counted": SAMPLER_COUNTS.get(sampler, ""),
        "sample_period": period,
        "note": (f"1 fault in {period} per CPU is recorded; counts are samples x {period}"
                 + (f" x {scale:.2f} (the sampler was open {100 / scale:.0f}% of the window)"
                    if scale > 1.0 else "")),
        "sampling_error": sampling_error(period, scale, carried=bool((duty or {}).get("carry"))),
        "duty": duty or {"duty_pct": 100},
        "kernel_stacks": kernel_stacks,
        "stack_map_entries": stack_entries,
        "samples": samples,
        "faults_estimated": round(samples * period * scale),
        "shallow_stack_samples": shallow,
        "leaf_frames": leaf_frame.summary(leaf_counts, samples),
        "stack_errors": {k: v for k, v in errors.items() if k.startswith("fault_")},
        "processes": sorted(procs.values(), key=lambda p: (-p["samples"], p["pid"])),
    }
    return folded.render(folded.fold(stacks)), meta


def majfault_document(rows: list[tuple[int, str, int]], errors: dict[str, int]) -> dict:
    """rows: (tgid, comm, major faults)."""
    out = [{"pid": pid, "comm": comm, "majfaults": n} for pid, comm, n in rows]
    out.sort(key=lambda r: (-r["majfaults"], r["pid"]))
    return {"source": "perf software event major-faults (PERF_COUNT_SW_PAGE_FAULTS_MAJ), every fault",
            "processes": out, "map_full": errors.get("majfault_keys_full", 0)}


def heap_document(rows: list[HeapRow], errors: dict[str, int], frames: Frames,
                  leaf: Leaf | None = None) -> dict:
    """brk/mmap growth per (process, syscall, kind), with its biggest stacks.
    ``leaf(tgid, ustack, kind, comm)``: the checked SP words of a row
    (leaf_frame.py); a recovered one puts the caller of the frameless
    syscall wrapper back, between the wrapper (frame 0) and the walk's
    next frame, with the calls and bytes that went through it."""
    entries: dict[tuple, dict] = {}
    for r in rows:
        syscall, kind = HEAP_KINDS.get(r.kind, ("?", str(r.kind)))
        e = entries.setdefault((r.tgid, r.comm, syscall, kind), {
            "pid": r.tgid, "comm": r.comm, "syscall": syscall, "kind": kind, "calls": 0, "bytes": 0,
            "shrink_bytes": 0, "calls_without_baseline": 0, "stacks": []})
        e["calls"] += r.calls
        e["bytes"] += r.grow_bytes
        e["shrink_bytes"] += r.shrink_bytes
        e["calls_without_baseline"] += r.calls_no_baseline
        e["stacks"].append({"ustack": r.ustack, "kind": r.kind, "calls": r.calls, "bytes": r.grow_bytes,
                            "comm": r.comm})
    out = sorted(entries.values(), key=lambda e: (-e["bytes"], -e["calls"], e["pid"]))
    leaf_counts: dict[str, int] = {}
    words: dict[tuple[int, int, int, str], list[LeafWord]] = {}
    calls_with_stacks = 0
    for e in out[:HEAP_ENTRIES]:
        e["stacks"].sort(key=lambda s: (-s["bytes"], -s["calls"]))
        kept = e["stacks"][:HEAP_STACKS_PER_ENTRY]
        parts: dict[tuple[str, ...], dict] = {}
        for s in kept:
            walked = frames(e["pid"], s["ustack"])
            if s["ustack"] < 0:
                got = [(walked, s["calls"], s["bytes"])]
            else:
                calls_with_stacks += s["calls"]
                key = (e["pid"], s["ustack"], s["kind"], s["comm"])
                if key not in words:
                    words[key] = list(leaf(*key)) if leaf is not None else []
                got = _split_by_leaf(walked, s["calls"], words[key], leaf_counts, s["bytes"])
            for f, calls, nbytes in got:
                part = parts.setdefault(tuple(f), {"calls": 0, "bytes": 0, "frames": list(f)})
                part["calls"] += calls
                part["bytes"] += nbytes
        merged = sorted(parts.values(), key=lambda p: (-p["bytes"], -p["calls"]))
        e["stacks_omitted"] = len(e["stacks"]) - len(kept) + max(len(merged) - HEAP_STACKS_PER_ENTRY, 0)
        e["stacks"] = merged[:HEAP_STACKS_PER_ENTRY]
    return {"source": "tracepoints syscalls:sys_exit_brk, sys_enter_mmap/sys_exit_mmap, user stacks "
                      "aggregated in the kernel",
            "note": "brk growth is the change of the break between calls; the first brk call of a "
                    "process already running when collection started has no baseline",
            "entries": out[:HEAP_ENTRIES], "entries_omitted": max(len(out) - HEAP_ENTRIES, 0),
            "leaf_frames": {**leaf_frame.summary(leaf_counts, calls_with_stacks),
                            "counted_in": "calls",
                            "map_full": errors.get("heap_leaf_keys_full", 0)},
            "stack_errors": {k: v for k, v in errors.items() if k.startswith("sys_stack")},
            "map_full": errors.get("heap_keys_full", 0)}


# -- shrinkers (vmscan:mm_shrink_slab_start/end) --------------------------------

SHRINK_ENTRIES = 200


@dataclass(frozen=True)
class ShrinkRow:
    shrink: int          # the callback's kernel address
    nid: int
    calls: int
    total_ns: int
    max_ns: int
    freed: int
    scanned: int


def shrinker_document(rows: list[ShrinkRow], hist: list[tuple[int, int, int]], names: dict[int, str],
                      errors: dict[str, int], kptr_restrict: int | None) -> dict:
    """Per (callback, node) calls, latency, objects freed and scanned;
    ``hist``: (callback, log2 slot of us, count), per callback (bcc's
    BPF_HISTOGRAM slots: slot s holds [2^(s-1), 2^s - 1] us, 0 -> 0..1)."""
    def name(addr: int) -> str | None:
        n = names.get(addr)
        return None if not n or n == UNKNOWN else n

    slots: dict[int, dict[int, int]] = {}
    for addr, slot, count in hist:
        slots.setdefault(addr, {})[slot] = slots.setdefault(addr, {}).get(slot, 0) + count
    out = []
    for r in sorted(rows, key=lambda r: (-r.total_ns, r.shrink, r.nid)):
        out.append({"callback": name(r.shrink), "address": f"{r.shrink:#x}", "nid": r.nid, "calls": r.calls,
                    "total_ns": r.total_ns, "max_ns": r.max_ns, "freed": r.freed, "scanned": r.scanned})
    hists = [{"callback": name(a), "address": f"{a:#x}",
              "slots": [[s, c] for s, c in sorted(v.items())]} for a, v in sorted(slots.items())]
    unnamed = sum(1 for e in out if e["callback"] is None)
    note = None
    if unnamed:
        note = (f"{unnamed} callback address(es) not found in /proc/kallsyms"
                + (f" (kptr_restrict={kptr_restrict} hides kernel addresses)" if kptr_restrict == 2 or
                   (kptr_restrict == 1 and not names) else "")
                + "; the address is kept")
    return {"source": "tracepoints vmscan:mm_shrink_slab_start/end, aggregated in the kernel per "
                      "(callback, node); latency histogram log2 of microseconds per callback",
            "note": "freed is the shrinker's return value (objects freed); scanned is total_scan at "
                    "the start minus what was left at the end",
            "entries": out[:SHRINK_ENTRIES], "entries_omitted": max(len(out) - SHRINK_ENTRIES, 0),
            "histograms": hists, "kptr_restrict": kptr_restrict, "names_note": note,
            "map_full": errors.get("shrink_keys_full", 0)}


# -- page migration (migrate:mm_migrate_pages) --------------------------------

MIGRATE_FIELDS = ("calls", "succeeded", "failed", "thp_succeeded", "thp_failed", "thp_split",
                  "large_folio_split")
MIGRATE_PROCS = 100


def migration_document(by_reason: list[tuple[tuple[int, int], dict]],
                       by_proc: list[tuple[tuple[int, str, int], dict]], errors: dict[str, int]) -> dict:
    """Numbers only: reason and mode names come from the tracepoint's print
    fmt when the bundle is read (they differ between kernels)."""
    reasons = [dict(reason=r, mode=m, **c) for (r, m), c in by_reason]
    reasons.sort(key=lambda e: (-e["succeeded"] - e["failed"], e["reason"], e["mode"]))
    procs = [dict(pid=p, comm=comm, reason=r, **c) for (p, comm, r), c in by_proc]
    procs.sort(key=lambda e: (-e["succeeded"] - e["failed"], e["pid"], e["reason"]))
    return {"source": "tracepoint migrate:mm_migrate_pages, aggregated in the kernel per (reason, mode) "
                      "and per (process, reason) of the calling task",
            "note": "succeeded/failed are pages (base pages; a THP counts its pages), thp_* are THPs",
            "by_reason": reasons, "processes": procs[:MIGRATE_PROCS],
            "processes_omitted": max(len(procs) - MIGRATE_PROCS, 0),
            "map_full": errors.get("migrate_keys_full", 0)}


# -- swap residency (kprobes: slot allocation -> swap cache lookup) ------------

SWAPIN_PROCS = 100


def swap_residency_document(hist: list[tuple[int, int]], procs: list[tuple[int, str, int, int, int]],
                            slots_allocated: int, swapins_matched: int, errors: dict[str, int],
                            entries: int) -> dict:
    """``hist``: (log2 slot of microseconds, count), bcc's BPF_HISTOGRAM
    slots (slot s holds [2^(s-1), 2^s - 1] us); ``procs``: (pid, comm,
    swap-ins, total us, of them under 1 s) of the faulting processes."""
    rows = [{"pid": p, "comm": c, "swapins": n, "total_us": t, "under_1s": u} for p, c, n, t, u in procs]
    rows.sort(key=lambda r: (-r["swapins"], r["pid"]))
    return {"source": "kretprobe on the swap slot allocation (folio_alloc_swap / get_swap_page) and kprobe "
                      "on the swap cache lookup of a swap-in fault (swap_cache_get_folio / "
                      "lookup_swap_cache): the time between them per slot",
            "note": (f"only pages swapped out while the probes were on are followed, at most {entries:,} at "
                     "a time (the oldest are forgotten beyond that, which cuts the long end); a page "
                     "read back after the window is not seen; a large folio counts its first page"),
            "slots_allocated": slots_allocated, "swapins_matched": swapins_matched,
            "histogram_us": [[s, c] for s, c in sorted(hist)],
            "processes": rows[:SWAPIN_PROCS], "processes_omitted": max(len(rows) - SWAPIN_PROCS, 0),
            "tracked_entries": entries, "map_full": errors.get("swap_keys_full", 0)}


# -- THP fault fallbacks (kretprobe on do_huge_pmd_anonymous_page) -------------

THP_PROCS = 100


def thp_faults_document(procs: list[tuple[int, str, int, int, int]], attempts: int, fallbacks: int,
                        other: int, errors: dict[str, int], entries: int) -> dict:
    """``procs``: (pid, comm, attempts, fallbacks, other) of the faulting
    processes; ``attempts``/``fallbacks``/``other``: the host's totals (kept
    apart from the per-process map, so a full map does not cut them)."""
    rows = [{"pid": p, "comm": c, "attempts": a, "fallbacks": f, "other": o} for p, c, a, f, o in procs]
    rows.sort(key=lambda r: (-r["fallbacks"], -r["attempts"], r["pid"]))
    return {"source": "kretprobe on do_huge_pmd_anonymous_page (the anonymous THP fault of a PMD range "
                      "THP may back): its vm_fault_t return value, per process",
            "note": ("a fallback (VM_FAULT_FALLBACK) is a fault that went on with 4 KiB pages: no huge "
                     "page could be allocated, it could not be charged to the memory cgroup, or the range "
                     "did not fit; attempts - fallbacks - other mapped a huge page (or the huge zero page "
                     "on a read); other is any other result (VM_FAULT_OOM, ...); only faults while the "
                     f"probe was on are counted, at most {entries:,} processes (map_full counts the rest)"),
            "attempts": attempts, "fallbacks": fallbacks, "other": other,
            "processes": rows[:THP_PROCS], "processes_omitted": max(len(rows) - THP_PROCS, 0),
            "tracked_entries": entries, "map_full": errors.get("thp_keys_full", 0)}
