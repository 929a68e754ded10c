"""OOM kills of the incident, merged once from every source.

Three sources tell of a kill, each with part of the picture:

- BPF ``oom:mark_victim`` (``bpf/oom_kill``): the exact time, the victim's
  sizes, and, from the kernel stack, whether a memory cgroup's limit was
  hit; no constraint nor memcg path on 6.x kernels;
- the kernel log's OOM report (``kmsg``, ``parsers.oom_report``): the
  constraint (CONSTRAINT_MEMCG, CONSTRAINT_NONE), the oom_memcg and
  task_memcg paths, the triggering task; lines from before the window tell
  of earlier kills;
- the counters: /proc/vmstat ``oom_kill`` (4.13+) and each cgroup's
  ``oom_kill`` (memory.events on v2, memory.oom_control on v1, 4.13+),
  which count kills no record may explain.

``oom_facts`` merges them into one ``OomFacts``: the OOM section, the
OOM_KILL, MEMCG_OOM and OOM_BEFORE_WINDOW findings, the timeline and the
verdict all read it, so they cannot disagree on who was killed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from snapcollect.analysis.cgroups import cgroup_event_rises
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.series import vm_delta
from snapcollect.bundle.names import KMSG
from snapcollect.parsers.bpf_events import UNKNOWN_COMM
from snapcollect.parsers.oom_report import oom_kills_from_kmsg
from snapcollect.parsers.records import KmsgLine, OomKill

# A kernel log OOM line matches a BPF kill of the same pid within this many
# seconds (the two clocks are converted separately; a pid is reused only
# after it wrapped around, far more than 30 s under OOM).
MATCH_WINDOW_S = 30.0


def is_memcg_kill(k: OomKill) -> bool:
    """True when the kill was a memory cgroup's limit (stack or constraint says so)."""
    return bool(k.memcg) or (k.constraint or "") == "CONSTRAINT_MEMCG"


def memcg_of(k: OomKill) -> str | None:
    """The cgroup whose limit was hit (oom_memcg), else the victim's."""
    return k.oom_memcg or k.task_memcg


def _fill(k: OomKill, log: OomKill) -> OomKill:
    """BPF values first; the kernel log fills what BPF lacks (constraint, memcgs)."""
    pick = lambda a, b: a if a is not None else b  # noqa: E731
    return replace(
        k, victim_comm=k.victim_comm if k.victim_comm != UNKNOWN_COMM else log.victim_comm,
        trigger_pid=pick(k.trigger_pid, log.trigger_pid), trigger_comm=k.trigger_comm or log.trigger_comm,
        memcg=pick(k.memcg, log.memcg), constraint=k.constraint or log.constraint,
        oom_memcg=k.oom_memcg or log.oom_memcg, task_memcg=k.task_memcg or log.task_memcg,
        total_vm_kb=pick(k.total_vm_kb, log.total_vm_kb), anon_rss_kb=pick(k.anon_rss_kb, log.anon_rss_kb),
        file_rss_kb=pick(k.file_rss_kb, log.file_rss_kb), shmem_rss_kb=pick(k.shmem_rss_kb, log.shmem_rss_kb),
        pgtables_kb=pick(k.pgtables_kb, log.pgtables_kb), uid=pick(k.uid, log.uid),
        oom_score_adj=pick(k.oom_score_adj, log.oom_score_adj),
        sources=tuple(dict.fromkeys(k.sources + log.sources)))


def merge_oom_kills(kills: list[OomKill], logged: list[OomKill]) -> list[OomKill]:
    """BPF kills completed from the kernel log's, plus kills only the log saw, in time order.

    Matched by victim pid and time (closest within ``MATCH_WINDOW_S``).
    Idempotent: merging the result again with the same log changes nothing.
    """
    taken: set[int] = set()
    out = []
    for k in kills:
        best = None
        for i, log in enumerate(logged):
            if i in taken or log.victim_pid != k.victim_pid or abs(log.t - k.t) > MATCH_WINDOW_S:
                continue
            if best is None or abs(log.t - k.t) < abs(logged[best].t - k.t):
                best = i
        if best is not None:
            taken.add(best)
            if KMSG not in k.sources:
                k = _fill(k, logged[best])
        out.append(k)
    out += [log for i, log in enumerate(logged) if i not in taken]
    out.sort(key=lambda k: k.t)
    return out


def kmsg_lines_for(kmsg: list[KmsgLine], kill: OomKill) -> list[KmsgLine]:
    """The kernel log's oom-kill and Killed process lines of one victim."""
    out = []
    for ln in kmsg:
        text = ln.text
        if ((f"Killed process {kill.victim_pid} " in text) or
                (text.startswith("oom-kill:") and f",pid={kill.victim_pid}," in text + ",")):
            if ln.t is None or abs(ln.t - kill.t) <= MATCH_WINDOW_S:
                out.append(ln)
    return out


@dataclass(frozen=True)
class OomFacts:
    """Every OOM kill of the bundle, and what the counters add."""

    kills: tuple[OomKill, ...]          # in the window: BPF completed from the kernel log, or the log alone
    earlier: tuple[OomKill, ...]        # kernel log lines from before the window
    counted: int | None                 # vmstat oom_kill delta over the window (4.13+)
    cgroup_rises: tuple[tuple[str, int], ...]   # (cgroup path, oom_kill counter rise), largest first

    @property
    def memcg_kills(self) -> list[OomKill]:
        return [k for k in self.kills if is_memcg_kill(k)]

    @property
    def other_kills(self) -> list[OomKill]:
        """System-wide kills and kills whose scope no source tells."""
        return [k for k in self.kills if not is_memcg_kill(k)]

    @property
    def unattributed(self) -> int:
        """Kills the kernel counted that neither BPF nor the kernel log saw."""
        return max((self.counted or 0) - len(self.kills), 0)

    @property
    def cgroup_counted(self) -> int:
        """The largest rise of a cgroup's oom_kill counter (a kill counts in each ancestor too)."""
        return max((r for _, r in self.cgroup_rises), default=0)

    @property
    def memcg_count(self) -> int:
        """Memory cgroup kills: the records, or more when a cgroup counter says so."""
        return max(len(self.memcg_kills), self.cgroup_counted)

    @property
    def unexplained(self) -> int:
        """Counted kills that no record explains and no cgroup counter claims."""
        if self.counted is None:
            return 0
        claimed = max(self.cgroup_counted - len(self.memcg_kills), 0)
        return max(self.counted - len(self.kills) - claimed, 0)


def oom_facts(ds: Dataset) -> OomFacts:
    """The kills of the window and before it, from BPF, the kernel log and the counters."""
    in_window = [k for k, _ in oom_kills_from_kmsg([ln for ln in ds.kmsg if not ln.before_window])]
    before = [k for k, _ in oom_kills_from_kmsg([ln for ln in ds.kmsg if ln.before_window])]
    kills = merge_oom_kills(list(ds.bpf.oom_kills), in_window)
    rises = tuple((g.path, r) for g, r in cgroup_event_rises(ds, "oom_kill"))
    return OomFacts(tuple(kills), tuple(before), vm_delta(ds, "oom_kill"), rises)
