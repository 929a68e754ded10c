"""The per-tick ``procs`` series: one line per process.

Each line is the raw /proc/PID/stat line, a TAB, the real uid from
/proc/PID/status, a TAB, and VmSwap in kB (empty when the kernel has no
VmSwap, before 2.6.34, or for kernel threads, and when the collector did
not read that process's status on that tick: it reads it in turn, and
every tick for the largest processes). Sample (kernel 6.18)::

    1 (process_api) S 0 0 0 0 -1 4194560 42931 335374 0 154 74 303 ... 24 46727168 3849 ...\t0\t0
    7303 (sc (fix) x) 2) S 7273 7269 2897 0 -1 4194304 14708 0 0 0 2 5 ... 72109 73478144 16121 ...\t0\t0

comm may hold spaces, parentheses, TABs and even newlines (any byte but
NUL, via prctl(PR_SET_NAME)): it runs from the first "(" to the LAST ")"
of the stat part, and a line that does not parse is joined with the next
one (a newline inside comm). Field numbers follow proc(5): minflt is 10,
majflt 12, starttime 22 (clock ticks after boot), vsize 23 (bytes), rss
24 (pages).
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError
from snapcollect.parsers.records import ProcSample


def parse_stat_line(stat: str, page_size: int = 4096, uid: int | None = None,
                    swap_kb: int | None = None) -> ProcSample:
    """One /proc/PID/stat line (without the trailing TAB fields)."""
    open_ = stat.find(" (")
    close = stat.rfind(")")
    if open_ < 0 or close < open_:
        raise ParseError(f"procs: no '(comm)' in {stat.strip()[:80]!r}")
    rest = stat[close + 1:].split()
    if len(rest) < 22:
        raise ParseError(f"procs: too few fields after comm in {stat.strip()[:80]!r}")
    try:
        # Positional: pid, comm, state, ppid, minflt, majflt, vsize_kb,
        # rss_kb, uid, swap_kb, starttime (keywords cost more per call).
        return ProcSample(int(stat[:open_]), stat[open_ + 2:close], rest[0], int(rest[1]), int(rest[7]),
                          int(rest[9]), int(rest[20]) // 1024, int(rest[21]) * page_size // 1024, uid,
                          swap_kb, int(rest[19]))
    except ValueError:
        raise ParseError(f"procs: not a number in {stat.strip()[:80]!r}") from None


def _record(text: str, page_size: int) -> ProcSample:
    stat, uid, swap = _split_tail(text)
    return parse_stat_line(stat, page_size, int(uid) if uid.strip() else None,
                           int(swap) if swap.strip() else None)


def _split_tail(text: str) -> tuple[str, str, str]:
    # The uid and swap fields are the last two TAB-separated fields: split
    # from the right so that a TAB inside comm stays in comm.
    parts = text.rsplit("\t", 2)
    if len(parts) != 3:
        raise ParseError(f"procs: expected 'stat<TAB>uid<TAB>swap' in {text.strip()[:80]!r}")
    return parts[0], parts[1], parts[2]


def parse_procs(text: str, page_size: int = 4096,
                cache: dict[str, ProcSample] | None = None) -> dict[int, ProcSample]:
    """All processes of one tick: ``{pid: ProcSample}``.

    ``cache`` maps raw lines to their parsed sample; the caller passes the
    same dict for consecutive ticks. An idle process prints the same line
    tick after tick, so on a long bundle most lines are looked up, not
    parsed again. The dict is refilled with this tick's lines only, which
    bounds it to one tick's worth.
    """
    out: dict[int, ProcSample] = {}
    seen: dict[str, ProcSample] = {}
    previous = cache if cache is not None else {}
    pending = ""
    for line in text.split("\n"):
        rec = previous.get(line)
        if rec is not None and not pending:
            out[rec.pid] = rec
            seen[line] = rec
            continue
        candidate = f"{pending}\n{line}" if pending else line
        if not candidate.strip():
            pending = ""
            continue
        try:
            rec = _record(candidate, page_size)
        except (ParseError, ValueError):
            pending = candidate
            if candidate.count("\n") > 4:
                raise ParseError(f"procs: unexpected line {candidate.splitlines()[0][:80]!r}") from None
            continue
        out[rec.pid] = rec
        if not pending:
            seen[line] = rec
        pending = ""
    if pending.strip():
        raise ParseError(f"procs: unexpected line {pending.splitlines()[0][:80]!r}")
    if cache is not None:
        cache.clear()
        cache.update(seen)
    return out
