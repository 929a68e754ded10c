"""BPF events of a bundle (``bpf/*`` artifacts) to typed records.

The collector stores what memevents.bpf.c reported, keeping the
tracepoints' field names; this module turns it into ``OomKill``,
``ReclaimStall``, ``CompactionStall`` and the rest of ``BpfData``
(the kernel log's OOM report is ``parsers.oom_report``). Flag words are decoded
with the running kernel's own tables, taken from the ``print fmt`` of the
tracepoint format files stored in ``bpf/tracepoint_formats`` (gfp bit
values change between kernel versions). Sample records::

    bpf/oom_kill  {"t": 1732242101.5, "ts_ns": 5123456789, "trigger_pid": 4242,
                   "trigger_comm": "alloc", "pid": 4242, "comm": "alloc",
                   "total_vm": 207364, "anon_rss": 65536, "file_rss": 1280,
                   "shmem_rss": 0, "uid": 0, "pgtables": 172, "oom_score_adj": 0,
                   "kstack": ["mark_oom_victim", "oom_kill_process", ...,
                              "mem_cgroup_out_of_memory", ...]}
    bpf/reclaim   {"t": ..., "pid": 4242, "tid": 4242, "comm": "alloc", "kind": "memcg",
                   "order": 0, "gfp_flags": 3264, "nr_reclaimed": 32, "latency_ns": 183000}
    bpf/fault_stacks.folded   alloc;__libc_start_call_main;main;touch_pages 32768
    bpf/kswapd_runs  {"t": ..., "nid": 0, "order": 0, "wakes": 2, "awake_ns": 4200000}
    bpf/shrinkers    {"entries": [{"callback": "super_cache_scan", "address": "0xffffffff816daaa0",
                                   "nid": 0, "calls": 92, "total_ns": 180690427, "max_ns": 102808057,
                                   "freed": 146952, "scanned": 277464}],
                      "histograms": [{"callback": "super_cache_scan", "slots": [[5, 40], ...]}]}
    bpf/migration    {"by_reason": [{"reason": 0, "mode": 2, "calls": 689, "succeeded": 114690,
                                     "failed": 45, ...}], "processes": [{"pid": 51, ...}]}
    bpf/swap_residency  {"slots_allocated": 48211, "swapins_matched": 30517,
                         "histogram_us": [[17, 2201], [18, 9310], ...],
                         "processes": [{"pid": 812, "comm": "thrash", "swapins": 30102,
                                        "total_us": 7102311002, "under_1s": 8811}]}
    bpf/thp_faults   {"attempts": 5120, "fallbacks": 4410, "other": 0,
                      "processes": [{"pid": 77, "comm": "java", "attempts": 5000,
                                     "fallbacks": 4400, "other": 0}], "map_full": 0}

Migration reasons and modes are numbers in the bundle, named from the
``__print_symbolic`` tables of migrate:mm_migrate_pages's print fmt
(``MIGRATION_REASONS``/``MIGRATION_MODES`` when the format is missing or
spells them as enum names, as kernels without TRACE_DEFINE_ENUM do).
"""

from __future__ import annotations

import ast
import json
import re

from snapcollect.bundle.names import (BPF_COMPACTION, BPF_FAULT_FILES, BPF_FAULT_STACKS_FOLDED, BPF_FAULT_STACKS_JSON,
                                      BPF_HEAP_GROWTH, BPF_KSWAPD_RUNS, BPF_KSWAPD_WAKE, BPF_MAJFAULT_BY_PROC,
                                      BPF_MIGRATION, BPF_OOM_KILL, BPF_RECLAIM, BPF_SHRINKER_SLOW, BPF_SHRINKERS,
                                      BPF_SWAP_RESIDENCY, BPF_THP_FAULTS,
                                      BPF_STREAMS, BPF_FILES, BPF_TRACEPOINT_FORMATS)
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.fault_files import parse_fault_files
from snapcollect.parsers.records import (BpfData, CompactionStall, KswapdRun, MigrationCount, OomKill,
                                         ReclaimStall, ShrinkerCall, ShrinkerStats, SwapinResidency,
                                         SwapResidency, ThpFaultCount, ThpFaults)

STREAMS = BPF_STREAMS
FILES = BPF_FILES
ARTIFACTS = STREAMS + FILES
FORMATS = BPF_TRACEPOINT_FORMATS

GFP_TRACEPOINTS = ("vmscan:mm_vmscan_direct_reclaim_begin", "vmscan:mm_vmscan_memcg_reclaim_begin",
                   "vmscan:mm_vmscan_wakeup_kswapd")
COMPACTION_END = "compaction:mm_compaction_end"
MIGRATE_PAGES = "migrate:mm_migrate_pages"
# include/linux/migrate_mode.h, enum migrate_reason (6.18; 6.1 lacks damon)
MIGRATION_REASONS = {0: "compaction", 1: "memory_failure", 2: "memory_hotplug", 3: "syscall_or_cpuset",
                     4: "mempolicy_mbind", 5: "numa_misplaced", 6: "contig_range", 7: "longterm_pin",
                     8: "demotion", 9: "damon"}
# enum migrate_mode; MIGRATE_SYNC_NO_COPY was removed in 6.10
MIGRATION_MODES = {0: "MIGRATE_ASYNC", 1: "MIGRATE_SYNC_LIGHT", 2: "MIGRATE_SYNC", 3: "MIGRATE_SYNC_NO_COPY"}
UNKNOWN_COMM = "[unknown]"


# -- print fmt tables ---------------------------------------------------------

_CAST = re.compile(r"\(\s*(?:__force\s+)?(?:unsigned\s+long\s+long|unsigned\s+long|unsigned\s+int|"
                   r"unsigned|long\s+long|long|int|gfp_t|u32|u64|__u32|__u64)\s*\)")
# C integer suffixes in any case and order: 6.1's formats spell gfp
# constants ``0x400u``, 6.18's ``(1UL) << n``.
_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)(?:[uU](?:ll|LL|[lL])?|(?:ll|LL|[lL])[uU]?)\b")
_MASK64 = (1 << 64) - 1


def _eval_const(expr: str) -> int:
    """Value of a constant C integer expression from a print fmt."""
    text = _SUFFIX.sub(r"\1", _CAST.sub(" ", expr)).strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ParseError(f"tracepoint format: not a constant expression: {expr[:60]!r}") from None

    def ev(node) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return (~v if isinstance(node.op, ast.Invert) else -v if isinstance(node.op, ast.USub) else v) & _MASK64
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            ops = {ast.BitOr: lambda: a | b, ast.BitAnd: lambda: a & b, ast.BitXor: lambda: a ^ b,
                   ast.LShift: lambda: a << b, ast.RShift: lambda: a >> b, ast.Add: lambda: a + b,
                   ast.Sub: lambda: a - b}
            fn = ops.get(type(node.op))
            if fn is not None:
                return fn() & _MASK64
        raise ParseError(f"tracepoint format: unsupported expression {expr[:60]!r}")

    return ev(tree)


def _groups(text: str, start: int) -> list[str]:
    """Top-level ``{...}`` groups of a call, scanning from ``start`` to its ')'."""
    out: list[str] = []
    brace = paren = 0
    begin = None
    quoted = False
    for i in range(start, len(text)):
        c = text[i]
        if quoted:
            quoted = c != '"' or text[i - 1] == "\\"
            continue
        if c == '"':
            quoted = True
        elif c == "{":
            if brace == 0:
                begin = i
            brace += 1
        elif c == "}":
            brace -= 1
            if brace == 0 and begin is not None:
                out.append(text[begin + 1:i])
        elif c == "(":
            paren += 1
        elif c == ")":
            if paren == 0 and brace == 0:
                break
            paren -= 1
    return out


def _table(fmt: str, func: str, field: str) -> list[tuple[int, str]]:
    m = re.search(re.escape(func) + r"\(\s*REC->" + re.escape(field) + r"\s*,", fmt)
    if not m:
        return []
    out = []
    for g in _groups(fmt, m.end()):
        gm = re.match(r"(.*),\s*\"([^\"]*)\"\s*$", g.strip(), re.S)
        if gm:
            out.append((_eval_const(gm.group(1)), gm.group(2)))
    return out


def flag_table(format_text: str, field: str = "gfp_flags") -> list[tuple[int, str]]:
    """(mask, name) pairs of ``__print_flags(REC-><field>, ...)``, in kernel order."""
    return _table(format_text, "__print_flags", field)


def symbolic_table(format_text: str, field: str) -> dict[int, str]:
    """value -> name of ``__print_symbolic(REC-><field>, ...)``."""
    return dict(_table(format_text, "__print_symbolic", field))


def decode_flags(value: int, table: list[tuple[int, str]]) -> str:
    """Like the kernel's trace_print_flags_seq(): names, then leftover bits in hex."""
    if not value:
        return "none"
    if not table:
        return f"{value:#x}"
    names = []
    for mask, name in table:
        if not value:
            break
        if mask and (value & mask) == mask:
            names.append(name)
            value &= ~mask
    if value:
        names.append(f"{value:#x}")
    return "|".join(names)


# -- records -------------------------------------------------------------------


def _t(rec: dict, clock: dict | None) -> float:
    if rec.get("t") is not None:
        return float(rec["t"])
    if clock and rec.get("ts_ns") is not None:
        return clock["wall"] + rec["ts_ns"] / 1e9 - clock["monotonic"]
    raise ParseError(f"BPF record without a time: {str(rec)[:80]!r}")


def _req(rec: dict, key: str, name: str):
    try:
        return rec[key]
    except KeyError:
        raise ParseError(f"{name}: record without {key!r}: {str(rec)[:80]!r}") from None


def memcg_from_stack(kstack: list[str] | None) -> bool | None:
    """True: memcg OOM, False: global OOM, None: cannot tell."""
    if not kstack:
        return None
    names = [f.split("+", 1)[0] for f in kstack]
    if "mem_cgroup_out_of_memory" in names:
        return True
    if "out_of_memory" in names or "__alloc_pages_may_oom" in names:
        return False
    return None


def oom_kill_from_record(rec: dict, clock: dict | None = None) -> OomKill:
    num = lambda k: int(rec[k]) if rec.get(k) is not None else None  # noqa: E731
    return OomKill(
        t=_t(rec, clock), victim_pid=int(_req(rec, "pid", BPF_OOM_KILL)),
        victim_comm=rec.get("comm") or UNKNOWN_COMM,
        trigger_pid=num("trigger_pid"), trigger_comm=rec.get("trigger_comm"),
        memcg=memcg_from_stack(rec.get("kstack")),
        total_vm_kb=num("total_vm"), anon_rss_kb=num("anon_rss"), file_rss_kb=num("file_rss"),
        shmem_rss_kb=num("shmem_rss"), pgtables_kb=num("pgtables"), uid=num("uid"),
        oom_score_adj=num("oom_score_adj"), sources=(BPF_OOM_KILL,))


def reclaim_from_record(rec: dict, gfp: list[tuple[int, str]], clock: dict | None = None) -> ReclaimStall:
    flags = rec.get("gfp_flags")
    return ReclaimStall(
        t=_t(rec, clock), latency_us=int(_req(rec, "latency_ns", BPF_RECLAIM)) / 1000.0,
        pid=int(_req(rec, "pid", BPF_RECLAIM)), comm=rec.get("comm", ""),
        kind=rec.get("kind", "direct"), order=rec.get("order"),
        gfp_flags=decode_flags(int(flags), gfp) if flags is not None else None,
        nr_reclaimed=rec.get("nr_reclaimed"))


def compaction_from_record(rec: dict, status_names: dict[int, str],
                           clock: dict | None = None) -> CompactionStall:
    status = rec.get("status")
    return CompactionStall(
        t=_t(rec, clock), latency_us=int(_req(rec, "latency_ns", BPF_COMPACTION)) / 1000.0,
        pid=int(_req(rec, "pid", BPF_COMPACTION)), comm=rec.get("comm", ""),
        status=None if status is None else status_names.get(int(status), str(status)))


def _int(value, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"{name}: {what} is not an integer: {str(value)[:40]!r}")
    return value


def _count(value, name: str, what: str) -> int:
    v = _int(value, name, what)
    if v < 0:
        raise ParseError(f"{name}: {what} is negative: {v}")
    return v


def _rows(doc, key: str, name: str) -> list[dict]:
    if not isinstance(doc, dict):
        raise ParseError(f"{name}: not a JSON object")
    rows = doc.get(key) or []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ParseError(f"{name}: {key!r} is not a list of objects")
    return rows


def shrinkers_from_doc(doc) -> tuple[list[ShrinkerStats], dict[str, dict[int, int]], str | None]:
    """bpf/shrinkers -> (per callback and node, callback -> log2 slot -> calls, note)."""
    out = []
    for r in _rows(doc, "entries", BPF_SHRINKERS):
        address = str(r.get("address") or "?")
        name = r.get("callback")
        out.append(ShrinkerStats(
            callback=str(name) if name else address, address=address,
            nid=_int(r.get("nid", -1), BPF_SHRINKERS, "nid"),
            **{k: _count(r.get(k, 0), BPF_SHRINKERS, k)
               for k in ("calls", "total_ns", "max_ns", "freed", "scanned")}))
    hist: dict[str, dict[int, int]] = {}
    for h in _rows(doc, "histograms", BPF_SHRINKERS):
        name = str(h.get("callback") or h.get("address") or "?")
        _log2_slots(h.get("slots") or [], BPF_SHRINKERS, f"slots of {name!r}", hist.setdefault(name, {}))
    note = doc.get("names_note")
    out.sort(key=lambda s: (-s.total_ns, s.callback, s.nid))
    return out, hist, str(note) if note else None


def shrinker_call_from_record(rec: dict, names: dict[str, str], clock: dict | None = None) -> ShrinkerCall:
    address = str(rec.get("shrink") or "?")
    return ShrinkerCall(
        t=_t(rec, clock), callback=names.get(address, address),
        nid=_int(rec.get("nid", -1), BPF_SHRINKER_SLOW, "nid"),
        latency_ns=_count(_req(rec, "latency_ns", BPF_SHRINKER_SLOW), BPF_SHRINKER_SLOW, "latency_ns"),
        freed=_count(rec.get("freed", 0), BPF_SHRINKER_SLOW, "freed"),
        scanned=_count(rec.get("scanned", 0), BPF_SHRINKER_SLOW, "scanned"),
        pid=_int(rec.get("pid", -1), BPF_SHRINKER_SLOW, "pid"), comm=str(rec.get("comm", "")))


def kswapd_run_from_record(rec: dict, clock: dict | None = None) -> KswapdRun:
    order = rec.get("order")
    awake = rec.get("awake_ns")
    if rec.get("no_start"):
        awake = None
    elif awake is None:
        raise ParseError(f"{BPF_KSWAPD_RUNS}: record without 'awake_ns' or 'no_start': {str(rec)[:80]!r}")
    return KswapdRun(
        t=_t(rec, clock), nid=_int(_req(rec, "nid", BPF_KSWAPD_RUNS), BPF_KSWAPD_RUNS, "nid"),
        order=None if order is None else _int(order, BPF_KSWAPD_RUNS, "order"),
        awake_ns=None if awake is None else _count(awake, BPF_KSWAPD_RUNS, "awake_ns"),
        wakes=_count(rec.get("wakes", 0), BPF_KSWAPD_RUNS, "wakes"))


def _log2_slots(pairs, name: str, what: str, acc: dict[int, int]) -> dict[int, int]:
    """``[[slot, count], ...]`` of a BPF_HISTOGRAM (log2 slots of a 64-bit
    value) added into ``acc``; anything else is the artifact's error."""
    if not isinstance(pairs, list):
        raise ParseError(f"{name}: {what} is not a list")
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ParseError(f"{name}: an entry of {what} is not [slot, count]: {str(pair)[:40]!r}")
        slot = _count(pair[0], name, "slot")
        if slot > 64:
            raise ParseError(f"{name}: slot {slot} is beyond a 64-bit value")
        acc[slot] = acc.get(slot, 0) + _count(pair[1], name, "count")
    return acc


def _symbols(formats: dict, field: str, fallback: dict[int, str]) -> dict[int, str]:
    """The print fmt's table for ``field`` of mm_migrate_pages, else ``fallback``."""
    text = formats.get(MIGRATE_PAGES)
    if isinstance(text, str):
        try:
            table = symbolic_table(text, field)
        except ParseError:
            table = {}      # enum names, not numbers, in the print fmt
        if table:
            return table
    return dict(fallback)


_MIGRATE_COUNTS = ("calls", "succeeded", "failed", "thp_succeeded", "thp_failed", "thp_split",
                   "large_folio_split")


def migration_from_doc(doc, reasons: dict[int, str], modes: dict[int, str]
                       ) -> tuple[list[MigrationCount], list[MigrationCount]]:
    """bpf/migration -> (per reason and mode, per process and reason)."""
    def name(table: dict[int, str], value, what: str) -> str:
        v = _int(value, BPF_MIGRATION, what)
        return table.get(v, f"{what} {v}")

    def counts(r: dict) -> dict[str, int]:
        return {k: _count(r.get(k, 0), BPF_MIGRATION, k) for k in _MIGRATE_COUNTS}

    by_reason = [MigrationCount(reason=name(reasons, r.get("reason"), "reason"),
                                mode=name(modes, r.get("mode"), "mode"), pid=None, comm=None, **counts(r))
                 for r in _rows(doc, "by_reason", BPF_MIGRATION)]
    by_proc = [MigrationCount(reason=name(reasons, r.get("reason"), "reason"), mode=None,
                              pid=_int(r.get("pid"), BPF_MIGRATION, "pid"), comm=str(r.get("comm", "")),
                              **counts(r))
               for r in _rows(doc, "processes", BPF_MIGRATION)]
    key = lambda m: (-(m.succeeded + m.failed), m.reason, m.mode or "", m.pid or 0)  # noqa: E731
    return sorted(by_reason, key=key), sorted(by_proc, key=key)


MAX_SWAP_PROCS = 1000


def swap_residency_from_doc(doc) -> SwapResidency:
    """bpf/swap_residency -> SwapResidency; slots beyond a 64-bit time and
    rows of the wrong type are errors of the artifact, not of the report."""
    if not isinstance(doc, dict):
        raise ParseError(f"{BPF_SWAP_RESIDENCY}: not a JSON object")
    hist = _log2_slots(doc.get("histogram_us") or [], BPF_SWAP_RESIDENCY, "histogram_us", {})
    procs = [SwapinResidency(pid=_int(r.get("pid"), BPF_SWAP_RESIDENCY, "pid"), comm=str(r.get("comm", "")),
                             swapins=_count(r.get("swapins", 0), BPF_SWAP_RESIDENCY, "swapins"),
                             total_us=_count(r.get("total_us", 0), BPF_SWAP_RESIDENCY, "total_us"),
                             under_1s=_count(r.get("under_1s", 0), BPF_SWAP_RESIDENCY, "under_1s"))
             for r in _rows(doc, "processes", BPF_SWAP_RESIDENCY)[:MAX_SWAP_PROCS]]
    procs.sort(key=lambda p: (-p.swapins, p.pid))
    return SwapResidency(
        histogram_us=hist, processes=procs,
        slots_allocated=_count(doc.get("slots_allocated", 0), BPF_SWAP_RESIDENCY, "slots_allocated"),
        swapins_matched=_count(doc.get("swapins_matched", 0), BPF_SWAP_RESIDENCY, "swapins_matched"),
        tracked_entries=_count(doc.get("tracked_entries", 0), BPF_SWAP_RESIDENCY, "tracked_entries"),
        map_full=_count(doc.get("map_full", 0), BPF_SWAP_RESIDENCY, "map_full"))


MAX_THP_PROCS = 1000
U64_MAX = (1 << 64) - 1         # a BPF map counter cannot hold more


def _u64(value, what: str) -> int:
    v = _count(value, BPF_THP_FAULTS, what)
    if v > U64_MAX:
        raise ParseError(f"{BPF_THP_FAULTS}: {what} is beyond a 64-bit counter: {str(v)[:40]}")
    return v


def _comm(value) -> str:
    """A task's comm as the bundle gives it, at most 16 characters. Bytes
    that are not UTF-8 stay as their surrogates, like every other name from
    a bundle: the report shows them as ``\\xNN`` (report/printable.py)."""
    if not isinstance(value, str):
        raise ParseError(f"{BPF_THP_FAULTS}: comm is not a string: {str(value)[:40]!r}")
    return value[:16]


def thp_faults_from_doc(doc) -> ThpFaults:
    """bpf/thp_faults -> ThpFaults. A document that is not an object, or
    host totals that are not counts, are the artifact's error; a process
    row that is wrong (types, negative or impossible counts) is left out
    with a warning, and the other rows are kept."""
    if not isinstance(doc, dict):
        raise ParseError(f"{BPF_THP_FAULTS}: not a JSON object")
    rows = doc.get("processes") or []
    if not isinstance(rows, list):
        raise ParseError(f"{BPF_THP_FAULTS}: 'processes' is not a list")
    warnings: list[str] = []
    procs: list[ThpFaultCount] = []
    for n, r in enumerate(rows[:MAX_THP_PROCS]):
        try:
            if not isinstance(r, dict):
                raise ParseError(f"{BPF_THP_FAULTS}: not an object")
            p = ThpFaultCount(pid=_u64(r.get("pid"), "pid"), comm=_comm(r.get("comm", "")),
                              attempts=_u64(r.get("attempts", 0), "attempts"),
                              fallbacks=_u64(r.get("fallbacks", 0), "fallbacks"),
                              other=_u64(r.get("other", 0), "other"))
            if p.fallbacks + p.other > p.attempts:
                raise ParseError(f"{BPF_THP_FAULTS}: fallbacks + other exceed attempts")
        except ParseError as exc:
            warnings.append(f"process row {n} left out: {str(exc).split(': ', 1)[-1]}")
            continue
        procs.append(p)
    if len(rows) > MAX_THP_PROCS:
        warnings.append(f"{len(rows) - MAX_THP_PROCS} process rows beyond {MAX_THP_PROCS} not read")
    return ThpFaults(processes=procs, attempts=_u64(doc.get("attempts", 0), "attempts"),
                     fallbacks=_u64(doc.get("fallbacks", 0), "fallbacks"),
                     other=_u64(doc.get("other", 0), "other"),
                     tracked_entries=_u64(doc.get("tracked_entries", 0), "tracked_entries"),
                     map_full=_u64(doc.get("map_full", 0), "map_full"), warnings=warnings[:20])


def parse_folded(text: str) -> list[tuple[str, int]]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        stack, sep, count = line.rpartition(" ")
        if not sep or not stack or not count.isdigit():
            raise ParseError(f"{BPF_FAULT_STACKS_FOLDED}: line {n} is not 'frames count': {line[:80]!r}")
        out.append((stack, int(count)))
    return out


# -- the whole of it -----------------------------------------------------------


def _json(raw: bytes | str | None, name: str):
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParseError(f"{name}: not JSON ({exc})") from None


def _availability(status: dict, manifest: dict) -> dict[str, tuple[str, str | None]]:
    entries = {a.get("name"): a for a in manifest.get("artifacts", [])}
    out = {}
    for name in ARTIFACTS:
        st = status.get(name)
        entry = entries.get(name)
        if st is None and entry is None:
            bpf = manifest.get("bpf") or {}
            why = bpf.get("reason") or "not in this bundle"
            out[name] = ("missing", why)
            continue
        s, reason = st if st is not None else (entry.get("status", "ok"), entry.get("reason"))
        remedy = (entry or {}).get("remedy")
        if s != "ok" and remedy:
            reason = f"{reason}; to fix: {remedy}" if reason else f"to fix: {remedy}"
        out[name] = (s, reason)
    return out


def load_bpf_data(streams: dict[str, list[dict]], status: dict[str, tuple[str, str | None]],
                  manifest: dict, files: dict[str, bytes]) -> BpfData:
    """Everything BPF recorded in one bundle.

    ``streams``: name -> records (``Bundle.records``), ``status``: name ->
    (status, reason) (``Bundle.status``), ``files``: name -> bytes
    (``Bundle.data``) for the ``bpf/`` artifacts. OOM kills are the BPF
    events alone; ``analysis.oom`` completes them from the kernel log.

    Each artifact is parsed on its own: one that does not parse is marked
    ``error`` in ``available`` with the reason, and the others still load
    (a print fmt this parser cannot read costs the flag names, not the
    events).
    """
    clock = manifest.get("clock")
    data = BpfData(available=_availability(status, manifest))

    def part(name: str, parse, default):
        try:
            return parse()
        except (ParseError, KeyError, TypeError, ValueError, AttributeError) as exc:
            why = str(exc) if isinstance(exc, ParseError) else f"unexpected content ({exc!r:.80})"
            data.available[name] = ("error", f"could not parse: {why}")
            return default

    formats = part(FORMATS, lambda: _json(files.get(FORMATS), FORMATS) or {}, {})
    if not isinstance(formats, dict):
        data.available[FORMATS] = ("error", "could not parse: not a JSON object")
        formats = {}

    def gfp_table() -> list[tuple[int, str]]:
        for tp in GFP_TRACEPOINTS:
            if formats.get(tp):
                table = flag_table(formats[tp])
                if table:
                    return table
        return []

    # Without the tables, flags print in hex and statuses as numbers.
    gfp = part(FORMATS, gfp_table, [])
    status_names = part(FORMATS, lambda: symbolic_table(formats[COMPACTION_END], "status")
                        if formats.get(COMPACTION_END) else {}, {})

    data.oom_kills = part(BPF_OOM_KILL, lambda: sorted(
        (oom_kill_from_record(r, clock) for r in streams.get(BPF_OOM_KILL, [])), key=lambda k: k.t), [])
    data.reclaim = part(BPF_RECLAIM, lambda: sorted(
        (reclaim_from_record(r, gfp, clock) for r in streams.get(BPF_RECLAIM, [])), key=lambda s: s.t), [])
    data.kswapd_wakes = part(BPF_KSWAPD_WAKE, lambda: sorted(
        (_t(r, clock), int(_req(r, "nid", BPF_KSWAPD_WAKE)), int(_req(r, "order", BPF_KSWAPD_WAKE)))
        for r in streams.get(BPF_KSWAPD_WAKE, [])), [])
    data.compaction = part(BPF_COMPACTION, lambda: sorted(
        (compaction_from_record(r, status_names, clock) for r in streams.get(BPF_COMPACTION, [])),
        key=lambda s: s.t), [])

    folded = files.get(BPF_FAULT_STACKS_FOLDED)
    if folded is not None:
        data.fault_stacks = part(BPF_FAULT_STACKS_FOLDED,
                                 lambda: parse_folded(folded.decode("utf-8", "surrogateescape")), [])

    def fault_side() -> None:
        meta = _json(files.get(BPF_FAULT_STACKS_JSON), BPF_FAULT_STACKS_JSON) or {}
        data.fault_sample_period = int(meta.get("sample_period") or 1)
        # Bundles written before the perf-event sampler name no source.
        data.fault_source = str(meta.get("source") or "")
        data.fault_sampling_error = str(meta.get("sampling_error") or "")
        data.stack_errors = sum(int(v) for v in (meta.get("stack_errors") or {}).values())
        duty = meta.get("duty")
        share = duty.get("open_share") if isinstance(duty, dict) and duty.get("duty_pct") != 100 else None
        # a share outside (0, 1] is not one the collector writes: show the counts unscaled-as-stored
        if isinstance(share, (int, float)) and not isinstance(share, bool) and 0 < share <= 1:
            data.fault_open_share = float(share)
        counted = duty.get("faults_open") if isinstance(duty, dict) else None
        if isinstance(counted, int) and not isinstance(counted, bool) and counted >= 0:
            data.fault_open_counted = counted

    part(BPF_FAULT_STACKS_JSON, fault_side, None)

    def majfaults() -> dict[tuple[int, str], int]:
        out: dict[tuple[int, str], int] = {}
        maj = _json(files.get(BPF_MAJFAULT_BY_PROC), BPF_MAJFAULT_BY_PROC) or {}
        for row in maj.get("processes", []):
            key = (int(row["pid"]), str(row["comm"]))
            out[key] = out.get(key, 0) + int(row["majfaults"])
        return out

    data.majfaults_by_proc = part(BPF_MAJFAULT_BY_PROC, majfaults, {})
    data.heap_growth = part(BPF_HEAP_GROWTH, lambda: list(
        (_json(files.get(BPF_HEAP_GROWTH), BPF_HEAP_GROWTH) or {}).get("entries", [])), [])
    if files.get(BPF_FAULT_FILES) is not None:
        data.fault_files = part(BPF_FAULT_FILES, lambda: parse_fault_files(files[BPF_FAULT_FILES]), None)
        if data.fault_files is not None and data.fault_files.bad_rows:
            data.available[BPF_FAULT_FILES] = (
                "ok", f"{data.fault_files.bad_rows} row(s) of the wrong type skipped")

    if files.get(BPF_SHRINKERS) is not None:
        data.shrinkers, data.shrinker_hist, data.shrinker_note = part(
            BPF_SHRINKERS, lambda: shrinkers_from_doc(_json(files.get(BPF_SHRINKERS), BPF_SHRINKERS)),
            ([], {}, None))
    names = {s.address: s.callback for s in data.shrinkers}
    data.shrinker_slow = part(BPF_SHRINKER_SLOW, lambda: sorted(
        (shrinker_call_from_record(r, names, clock) for r in streams.get(BPF_SHRINKER_SLOW, [])),
        key=lambda c: c.t), [])
    data.kswapd_runs = part(BPF_KSWAPD_RUNS, lambda: sorted(
        (kswapd_run_from_record(r, clock) for r in streams.get(BPF_KSWAPD_RUNS, [])),
        key=lambda r: (r.t, r.nid)), [])
    if files.get(BPF_MIGRATION) is not None:
        reasons = _symbols(formats, "reason", MIGRATION_REASONS)
        modes = _symbols(formats, "mode", MIGRATION_MODES)
        data.migration_by_reason, data.migration_by_proc = part(
            BPF_MIGRATION, lambda: migration_from_doc(_json(files.get(BPF_MIGRATION), BPF_MIGRATION),
                                                      reasons, modes), ([], []))
    if files.get(BPF_SWAP_RESIDENCY) is not None:
        data.swap_residency = part(BPF_SWAP_RESIDENCY, lambda: swap_residency_from_doc(
            _json(files.get(BPF_SWAP_RESIDENCY), BPF_SWAP_RESIDENCY)), None)
    if files.get(BPF_THP_FAULTS) is not None:
        data.thp_faults = part(BPF_THP_FAULTS, lambda: thp_faults_from_doc(
            _json(files.get(BPF_THP_FAULTS), BPF_THP_FAULTS)), None)

    return data

