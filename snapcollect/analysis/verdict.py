"""The verdict: at most three sentences at the top of the report.

Built from the findings and the timeline, never from raw data. Where the
evidence links cause and effect it says so in order: when pressure rose,
who stalled in reclaim and for how long, who was OOM-killed and where
("pressure rose from 14:02:10; memcg reclaim stalled java (pid 4711) up to
340 ms; at 14:02:41 the kernel OOM-killed java (pid 4711) in memcg
/app"). A quiet window gets "No memory problem found in this window:"
with the key figures, so a reader sees what "quiet" was measured on.
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.cgroup_series import within
from snapcollect.analysis.meminfo import mem_available_kb
from snapcollect.analysis.model import Model
from snapcollect.analysis.oom import is_memcg_kill, memcg_of
from snapcollect.analysis.results import SEVERITY_ORDER, Finding, TimelineEvent
from snapcollect.analysis.series import vm_delta
from snapcollect.analysis.wording import hms, human_kb, human_ms
from snapcollect.parsers.records import OomKill, ReclaimStall

MAX_SENTENCES = 3
# Reclaim stalls that began up to this long after the kill's time still
# count as before it: the kill's time may come from the kernel log, whose
# clock is converted apart from BPF's.
KILL_SLACK_S = 1.0
# A stall outside the killed group is worth a mention in the chain when it
# is long enough for users to feel (DIRECT_RECLAIM_STALLS's WARN
# threshold) and dwarfs the group's own.
OTHER_STALL_MIN_US = 10_000
OTHER_STALL_RATIO = 10


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _pressure_at(timeline: list[TimelineEvent], t: float) -> TimelineEvent | None:
    """The rise of the pressure still in effect at ``t`` (full preferred to some)."""
    up: dict[str, TimelineEvent] = {}
    for e in timeline:
        if e.kind != "pressure" or e.t > t:
            continue
        line = "full" if "(full" in e.text else "some"
        if e.severity is not None:
            up.setdefault(line, e)
        else:
            up.pop(line, None)      # fell below again before t
    return up.get("full") or up.get("some")


def _killed_group_pids(m: Model, kill: OomKill) -> set[int] | None:
    """The tasks of the cgroup whose limit the kill was at, or None when that group is unknown.

    A task's group is the deepest followed cgroup listing it
    (``Model.task_cgroup``); the victim belongs to the group even when no
    read of cgroup.procs saw it (a task that lived a second).
    """
    group = memcg_of(kill) if is_memcg_kill(kill) else None
    if not group:
        return None
    pids = {pid for pid, path in m.task_cgroup.items() if within(path, group)}
    if not pids:
        return None     # the group was not followed: nothing tells its tasks apart
    return pids | {kill.victim_pid}


def _stall_clause(m: Model, kill: OomKill, stalls: list[ReclaimStall]) -> str:
    """The longest stall in the killed cgroup (else the victim's), and a far longer one elsewhere.

    The victim's own stall may be a fraction of a millisecond while a task
    of the same group, or of another group at its limit, waited a tenth
    of a second: the chain names the group's longest, and adds the host's
    longest when it is at least OTHER_STALL_MIN_US and OTHER_STALL_RATIO
    times as long.
    """
    pids = _killed_group_pids(m, kill)
    mine = [s for s in stalls if (s.pid in pids if pids is not None else s.pid == kill.victim_pid)]
    others = [s for s in stalls if s not in mine]
    longest = lambda ss: max(ss, key=lambda s: s.latency_us) if ss else None  # noqa: E731
    w, o = longest(mine), longest(others)
    if w is None:
        # nothing of the group stalled: the host's longest stall, with its group
        return (f"{o.kind} reclaim stalled {o.comm} (pid {o.pid}){_group_words(m, o.pid)} "
                f"up to {human_ms(o.latency_us)}")
    clause = f"{w.kind} reclaim stalled {w.comm} (pid {w.pid}) up to {human_ms(w.latency_us)}"
    if o is not None and o.latency_us >= OTHER_STALL_MIN_US and o.latency_us >= OTHER_STALL_RATIO * w.latency_us:
        clause += f", while {o.comm} (pid {o.pid}){_group_words(m, o.pid)} stalled up to {human_ms(o.latency_us)}"
    return clause


def _group_words(m: Model, pid: int) -> str:
    group = m.task_cgroup.get(pid)
    return f" in memcg {group}" if group else ""


def _oom_chain(m: Model, timeline: list[TimelineEvent], findings: list[Finding]) -> str | None:
    ds = m.ds
    kills = m.oom.kills
    if not kills:
        return None
    first = kills[0]
    parts = []
    rise = _pressure_at(timeline, first.t)
    if rise is not None:
        verb = "was already high at" if "already" in rise.text else "rose from"
        parts.append(f"memory pressure {verb} {hms(rise.t)}")
    stalls = [s for s in ds.bpf.reclaim if s.t <= first.t + KILL_SLACK_S]
    if stalls:
        parts.append(_stall_clause(m, first, stalls))
    elif any(f.key == "DIRECT_RECLAIM_STALLS" for f in findings):
        scanned = vm_delta(ds, "pgscan_direct")
        if scanned:
            parts.append(f"allocating tasks reclaimed memory directly ({scanned} pages scanned)")
    memcg = memcg_of(first)
    where = (f" in memcg {memcg}" if is_memcg_kill(first) and memcg else
             " at a memory cgroup limit" if is_memcg_kill(first) else
             " with the whole system out of memory" if first.memcg is False or first.constraint else "")
    kill = f"at {hms(first.t)} the kernel OOM-killed {first.victim_comm} (pid {first.victim_pid}){where}"
    if len(kills) > 1:
        kill += f", then {len(kills) - 1} more process(es)"
    parts.append(kill)
    return _cap("; ".join(parts)) + "."


def _quiet(m: Model, findings: list[Finding]) -> str:
    ds = m.ds
    figures = []
    pts = series.samples(ds, "meminfo")
    if pts:
        low = min((mi for _, mi in pts), key=lambda mi: mem_available_kb(mi) or 0)
        avail, total = mem_available_kb(low), low.get("MemTotal")
        if avail is not None and total:
            figures.append(f"MemAvailable stayed at or above {human_kb(avail)} of {human_kb(total)} "
                           f"({100 * avail / total:.0f}%)")
        if low.get("SwapTotal"):
            figures.append(f"swap {100 * (low['SwapTotal'] - low.get('SwapFree', 0)) / low['SwapTotal']:.0f}% used")
        else:
            figures.append("no swap configured")
    if m.psi_some is not None:
        figures.append(f"memory stalls {m.psi_some.pct:.2f}% of the time")
    if m.oom.counted is not None or ds.kmsg:
        figures.append("no OOM kills")
    scand = vm_delta(ds, "pgscan_direct")
    if scand is not None:
        figures.append("no direct reclaim" if scand == 0 else f"{scand} pages reclaimed directly")
    text = "No memory problem found in this window"
    text += (": " + ", ".join(figures) + ".") if figures else " (few inputs were collected)."
    info = [f for f in findings if f.severity == "INFO"]
    if info:
        text += f" {len(info)} informational finding(s): " + "; ".join(f.title for f in info[:3]) + "."
    return text


def build_verdict(m: Model, findings: list[Finding], timeline: list[TimelineEvent]) -> str:
    """At most three sentences; the worst things first."""
    serious = [f for f in findings if SEVERITY_ORDER[f.severity] <= SEVERITY_ORDER["WARN"]]
    if not serious:
        return _quiet(m, findings)
    sentences = []
    chain = _oom_chain(m, timeline, findings)
    skip = {"OOM_KILL", "MEMCG_OOM"} if chain else set()
    if chain:
        sentences.append(chain)
    rest = [f for f in serious if f.key not in skip]
    if rest and not chain:
        sentences.append(f"{rest[0].severity}: {rest[0].title}.")
        rest = rest[1:]
    if rest:
        sentences.append("Also: " + "; ".join(f.title for f in rest[:3]) +
                         (f"; and {len(rest) - 3} more" if len(rest) > 3 else "") + ".")
    grower = next((f for f in findings if f.key in ("TOP_GROWER", "HUGE_PROCESS")), None)
    if grower and len(sentences) < MAX_SENTENCES:
        sentences.append(f"Largest memory user: {grower.title}.")
    return " ".join(sentences[:MAX_SENTENCES])
