"""The kernel log's OOM report (mm/oom_kill.c) to ``OomKill`` records.

The kernel prints, for each kill (the ``oom-kill:`` summary line since
4.19, ``UID:``/``pgtables:`` since 4.19/5.0)::

    python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
    CPU: 3 UID: 0 PID: 4711 Comm: python3 Not tainted 6.18.0 #1
    oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/t,task_memcg=/t,task=python3,pid=4711,uid=0
    Memory cgroup out of memory: Killed process 4711 (python3) total-vm:214236kB, anon-rss:64812kB, file-rss:4096kB, shmem-rss:0kB, UID:0 pgtables:472kB oom_score_adj:0

Kernels before 4.19 print "Out of memory: Kill process N (comm) score S or
sacrifice child" and then "Killed process N (comm) total-vm:..." (3.10:
without shmem-rss). A comm may hold spaces and parentheses.
"""

from __future__ import annotations

import re

from snapcollect.bundle.names import KMSG
from snapcollect.parsers.records import KmsgLine, OomKill

# The comm ends at the ")" followed by the sizes, a comma or the line's end,
# so "Killed process 5 (a (b) c) total-vm:..." names "a (b) c".
KILLED = re.compile(r"(?:(Memory cgroup out of memory|Out of memory)[^:]*: )?Killed process (\d+) "
                    r"\((.*?)\)(?=\s+total-vm|,|\s*$)")
_SIZES = re.compile(r"(total-vm|anon-rss|file-rss|shmem-rss|pgtables):(\d+)kB|UID:(\d+)|oom_score_adj:(-?\d+)")
_INVOKED = re.compile(r"^(.*?) invoked oom-killer:")
_CPU_LINE = re.compile(r"^CPU: \d+ (?:UID: \d+ )?PID: (\d+) Comm: (\S+)")


def oom_kills_from_kmsg(lines: list[KmsgLine]) -> list[tuple[OomKill, list[KmsgLine]]]:
    """OOM kills the kernel log tells of, in log order, each with the lines it came from."""
    out = []
    summary: dict[str, str] = {}
    used: list[KmsgLine] = []
    trigger_comm: str | None = None
    trigger_pid: int | None = None
    for ln in lines:
        text = ln.text
        m = _INVOKED.search(text)
        if m:
            trigger_comm, trigger_pid, summary, used = m.group(1), None, {}, [ln]
            continue
        m = _CPU_LINE.search(text)
        if m and trigger_comm is not None and trigger_pid is None and m.group(2) == trigger_comm:
            trigger_pid = int(m.group(1))
            continue
        if text.startswith("oom-kill:"):
            summary = dict(p.partition("=")[::2] for p in text[len("oom-kill:"):].split(","))
            used.append(ln)
            continue
        m = KILLED.search(text)
        if not m or ln.t is None:
            continue
        pid = int(m.group(2))
        if summary.get("pid") not in (None, str(pid)):
            summary = {}
        sizes: dict[str, int] = {}
        for sm in _SIZES.finditer(text[m.end():]):
            if sm.group(1):
                sizes[sm.group(1)] = int(sm.group(2))
            elif sm.group(3):
                sizes["uid"] = int(sm.group(3))
            else:
                sizes["oom_score_adj"] = int(sm.group(4))
        constraint = summary.get("constraint")
        memcg = (constraint == "CONSTRAINT_MEMCG" if constraint
                 else m.group(1).startswith("Memory cgroup") if m.group(1) else None)
        kill = OomKill(
            t=ln.t, victim_pid=pid, victim_comm=m.group(3), trigger_pid=trigger_pid,
            trigger_comm=trigger_comm, memcg=memcg, constraint=constraint,
            oom_memcg=summary.get("oom_memcg"), task_memcg=summary.get("task_memcg"),
            total_vm_kb=sizes.get("total-vm"), anon_rss_kb=sizes.get("anon-rss"),
            file_rss_kb=sizes.get("file-rss"), shmem_rss_kb=sizes.get("shmem-rss"),
            pgtables_kb=sizes.get("pgtables"), uid=sizes.get("uid"),
            oom_score_adj=sizes.get("oom_score_adj"), sources=(KMSG,))
        out.append((kill, used + [ln]))
        summary, used, trigger_comm, trigger_pid = {}, [], None, None
    return out
