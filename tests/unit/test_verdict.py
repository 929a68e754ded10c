"""The verdict: at most three sentences, cause before effect, key figures when quiet."""

import re

from findings_helpers import GIB_KB, bpf, build, kmsg, oom_kill, psi_ramp, ramp, stall

from snapcollect.analysis.incident import build_incident


def _verdict(ds) -> str:
    return build_incident(ds).verdict


def sentences(text: str) -> list[str]:
    # a sentence ends with . ! or ? followed by a space or the end ("1.2 GiB" does not end one)
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


KILL_LINES = [
    kmsg(12.5, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,"
               "task_memcg=/app,task=java,pid=4711,uid=0", seq=1),
    kmsg(12.5, "Memory cgroup out of memory: Killed process 4711 (java) total-vm:1kB, anon-rss:900kB, "
               "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0", seq=2)]


def test_oom_verdict_links_pressure_stall_and_kill():
    avg10 = lambda k: 0.0 if k < 5 else 30.0  # noqa: E731
    ds = build(psi_at=psi_ramp(some_pct=30, full_pct=20, full_avg10=avg10, some_avg10=avg10),
               kmsg_lines=KILL_LINES, vmstat={"oom_kill": ramp(1, ticks=range(13, 14))},
               bpf=bpf(oom_kills=[oom_kill(12.5, 4711, "java", memcg=None)],
                       reclaim=[stall(9.0, 4711, "java", 340, "memcg"), stall(9.5, 88, "nginx", 500)]))
    v = _verdict(ds)
    first = sentences(v)[0]
    assert first == ("Memory pressure rose from 02:20:05; memcg reclaim stalled java (pid 4711) up to "
                     "340 ms; at 02:20:12 the kernel OOM-killed java (pid 4711) in memcg /app.")
    assert len(sentences(v)) <= 3
    assert "PSI_PRESSURE" not in v and "Memory pressure: all tasks stalled" in v


def test_oom_verdict_pressure_already_high():
    ds = build(psi_at=psi_ramp(some_pct=30, full_pct=20), kmsg_lines=KILL_LINES)
    assert _verdict(ds).startswith("Memory pressure was already high at 02:20:00; at 02:20:12 the kernel")


def test_oom_verdict_ignores_pressure_that_had_fallen_again():
    avg10 = lambda k: 30.0 if k < 3 else 0.0  # noqa: E731
    ds = build(psi_at=psi_ramp(full_avg10=avg10, some_avg10=avg10), kmsg_lines=KILL_LINES)
    assert _verdict(ds).startswith("At 02:20:12 the kernel OOM-killed java (pid 4711)")


def test_oom_verdict_without_bpf_or_pressure():
    v = _verdict(build(kmsg_lines=KILL_LINES))
    assert v == "At 02:20:12 the kernel OOM-killed java (pid 4711) in memcg /app."


def test_problem_without_oom_leads_with_the_worst_finding():
    ds = build(vmstat={"pswpin": ramp(3000), "pswpout": ramp(3000), "pgmajfault": ramp(3000)},
               meminfo={"SwapTotal": 2 * GIB_KB, "SwapFree": GIB_KB // 20},
               psi_at=psi_ramp(some_pct=50, full_pct=45))
    v = _verdict(ds)
    s = sentences(v)
    assert s[0] == "HIGH: Memory pressure: all tasks stalled 45.0% of the window."
    assert s[1].startswith("Also: ") and "Swap thrashing" in s[1]
    assert len(s) <= 3


def test_quiet_host_gets_key_figures():
    v = _verdict(build())
    assert v.startswith("No memory problem found in this window: MemAvailable stayed at or above 23.0 GiB "
                        "of 23.5 GiB (98%), no swap configured, memory stalls 0.00% of the time, "
                        "no OOM kills, no direct reclaim.")
    assert len(sentences(v)) == 1


def test_quiet_host_mentions_informational_findings():
    v = _verdict(build(vmstat={"pgscan_kswapd": ramp(10)}))
    assert v.startswith("No memory problem found")
    assert sentences(v)[1].startswith("1 informational finding(s): Page reclaim active: 300 pages")


def test_verdict_with_nothing_collected():
    v = _verdict(build(drop=("vmstat", "meminfo", "psi", "procs", "kmsg", "numa", "slabinfo",
                             "zoneinfo", "buddyinfo", "cgroups", "sysvm")))
    assert v == "No memory problem found in this window (few inputs were collected)."


# -- which reclaim stall the OOM chain names ------------------------------------

def _followed(**procs_by_group):
    """Followed v1 memory cgroups (``/app``, ``/batch``, ...) listing the given pids."""
    import json

    from snapcollect.parsers.cgroups import parse_cgroups
    files = lambda procs: {"memory.usage_in_bytes": "1048576\n", "memory.limit_in_bytes": "67108864\n",  # noqa: E731
                           "memory.stat": "cache 0\nrss 1048576\n",
                           "cgroup.procs": "".join(f"{p}\n" for p in procs)}
    doc = {"version": 1, "root": "/sys/fs/cgroup/memory",
           "groups": {"/": {}, **{"/" + g: files(p) for g, p in procs_by_group.items()}}}
    groups = parse_cgroups(json.dumps(doc))["groups"]
    return lambda k: groups


def _chain(reclaim, memcgs=None) -> str:
    ds = build(kmsg_lines=KILL_LINES, memcgs=memcgs,
               bpf=bpf(oom_kills=[oom_kill(12.5, 4711, "java", memcg=None)], reclaim=reclaim))
    return sentences(_verdict(ds))[0]


def test_chain_names_the_longest_stall_of_the_killed_group_not_the_victims():
    v = _chain([stall(9.0, 4711, "java", 0.2, "memcg"), stall(9.5, 4712, "java-gc", 40, "memcg")],
               memcgs=_followed(app=[4711, 4712]))
    assert v == ("Memcg reclaim stalled java-gc (pid 4712) up to 40 ms; at 02:20:12 the kernel "
                 "OOM-killed java (pid 4711) in memcg /app.")


def test_chain_counts_a_child_group_of_the_killed_one():
    ds = build(kmsg_lines=KILL_LINES, memcgs=_followed(app=[4711], **{"app/worker": [4712]}),
               bpf=bpf(oom_kills=[oom_kill(12.5, 4711, "java", memcg=None)],
                       reclaim=[stall(9.0, 4711, "java", 0.2, "memcg"), stall(9.5, 4712, "w", 5, "memcg")]))
    assert "stalled w (pid 4712) up to 5.0 ms; at" in _verdict(ds)


def test_chain_adds_a_far_longer_stall_elsewhere_with_its_group():
    v = _chain([stall(9.0, 4711, "java", 0.2, "memcg"), stall(9.5, 88, "nginx", 94, "memcg")],
               memcgs=_followed(app=[4711], web=[88]))
    assert v == ("Memcg reclaim stalled java (pid 4711) up to 0.2 ms, while nginx (pid 88) in memcg /web "
                 "stalled up to 94 ms; at 02:20:12 the kernel OOM-killed java (pid 4711) in memcg /app.")


def test_chain_leaves_out_a_stall_elsewhere_that_is_short_or_not_ten_times_longer():
    followed = _followed(app=[4711], web=[88])
    # 9 ms: at least 10x, but under 10 ms
    assert "nginx" not in _chain([stall(9.0, 4711, "java", 0.2, "memcg"), stall(9.5, 88, "nginx", 9, "memcg")],
                                 memcgs=followed)
    # 90 ms against 10 ms: long, but only 9x
    assert "nginx" not in _chain([stall(9.0, 4711, "java", 10, "memcg"), stall(9.5, 88, "nginx", 90, "memcg")],
                                 memcgs=followed)
    # exactly 10 ms and 10x counts
    assert "while nginx (pid 88) in memcg /web stalled up to 10 ms" in _chain(
        [stall(9.0, 4711, "java", 1, "memcg"), stall(9.5, 88, "nginx", 10, "memcg")], memcgs=followed)


def test_chain_ignores_stalls_that_began_after_the_kill():
    v = _chain([stall(9.0, 4711, "java", 0.2, "memcg"), stall(14.0, 4712, "java-gc", 400, "memcg"),
                stall(14.0, 88, "nginx", 400, "memcg")], memcgs=_followed(app=[4711, 4712], web=[88]))
    assert v.startswith("Memcg reclaim stalled java (pid 4711) up to 0.2 ms; at 02:20:12")


def test_chain_uses_the_victims_stall_when_the_group_is_unknown():
    # /app is not followed: the group's tasks cannot be told apart; the
    # stall elsewhere is named without a group, the series not listing it
    v = _chain([stall(9.0, 4711, "java", 0.2, "memcg"), stall(9.5, 4712, "java-gc", 40, "memcg")],
               memcgs=_followed(web=[88]))
    assert v == ("Memcg reclaim stalled java (pid 4711) up to 0.2 ms, while java-gc (pid 4712) stalled up to "
                 "40 ms; at 02:20:12 the kernel OOM-killed java (pid 4711) in memcg /app.")


def test_chain_names_the_hosts_longest_stall_with_its_group_when_the_group_had_none():
    v = _chain([stall(9.5, 88, "nginx", 30, "direct")], memcgs=_followed(app=[4711], web=[88]))
    assert v.startswith("Direct reclaim stalled nginx (pid 88) in memcg /web up to 30 ms; at 02:20:12")
    assert len(sentences(_verdict(build(kmsg_lines=KILL_LINES, memcgs=_followed(app=[4711], web=[88]),
                                        bpf=bpf(reclaim=[stall(9.5, 88, "nginx", 30)]))))) <= 3
