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
