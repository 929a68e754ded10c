"""KMSG_ALLOC_FAILURE, KMSG_HUNG_TASK, OOM_BEFORE_WINDOW and the kernel-log classifier."""

from findings_helpers import T0, build, kmsg, run

from snapcollect.analysis.findings.kmsg_events import classify
from snapcollect.parsers.oom_report import oom_kills_from_kmsg as _with_lines


def oom_kills_from_kmsg(lines):
    return [k for k, _ in _with_lines(lines)]

ALLOC = "kworker/u4:2: page allocation failure: order:4, mode:0x40dc0(GFP_KERNEL|__GFP_COMP|__GFP_ZERO), nodemask=(null),cpuset=/,mems_allowed=0"
HUNG = "INFO: task jbd2/sda1-8:312 blocked for more than 120 seconds."


def test_alloc_failure():
    f, _ = run("KMSG_ALLOC_FAILURE", build(kmsg_lines=[kmsg(3, ALLOC), kmsg(4, "unrelated line")]))
    assert f.severity == "WARN" and f.evidence.values["count"] == 1 and f.evidence.values["max_order"] == 4
    assert f.evidence.time_range == (T0 + 3, T0 + 3) and f.evidence.section == "kmsg"


def test_alloc_failure_negative_before_window_and_missing():
    assert run("KMSG_ALLOC_FAILURE", build(kmsg_lines=[kmsg(-30, ALLOC, before_window=True)]))[0] is None
    assert run("KMSG_ALLOC_FAILURE", build())[0] is None
    ds = build(drop=("kmsg",), missing={"kmsg": ("denied", "/dev/kmsg: permission denied")})
    assert run("KMSG_ALLOC_FAILURE", ds)[1] == "needs kmsg (denied: /dev/kmsg: permission denied)"


def test_hung_task():
    f, _ = run("KMSG_HUNG_TASK", build(kmsg_lines=[kmsg(9, HUNG)]))
    assert f.title == "Hung tasks: 1 task(s) blocked, such as jbd2/sda1-8 (pid 312)"
    assert run("KMSG_HUNG_TASK", build(kmsg_lines=[kmsg(9, "EXT4-fs (sda1): mounted")]))[0] is None
    assert run("KMSG_HUNG_TASK", build(drop=("kmsg",)))[1] == "needs kmsg (not in this bundle)"


def test_oom_before_window():
    old = [kmsg(-600, "Out of memory: Killed process 77 (node) total-vm:1000kB, anon-rss:900kB, "
                      "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:10kB oom_score_adj:0", before_window=True)]
    f, _ = run("OOM_BEFORE_WINDOW", build(kmsg_lines=old))
    assert f.severity == "INFO" and "node (pid 77" in f.title
    assert run("OOM_BEFORE_WINDOW", build(kmsg_lines=[kmsg(1, old[0].text)]))[0] is None
    assert run("OOM_BEFORE_WINDOW", build(drop=("kmsg",)))[1] == "needs kmsg (not in this bundle)"


def test_classifier_old_kernel_oom_lines():
    # before 4.19: "Kill process ... or sacrifice child", then "Killed process"
    lines = [kmsg(1, "Out of memory: Kill process 1234 (stress) score 901 or sacrifice child"),
             kmsg(1, "Killed process 1234 (stress) total-vm:1055352kB, anon-rss:1044336kB, file-rss:0kB, "
                     "shmem-rss:0kB")]
    kills = oom_kills_from_kmsg(lines)
    assert len(kills) == 1 and kills[0].victim_comm == "stress" and kills[0].anon_rss_kb == 1044336
    assert kills[0].memcg is None and kills[0].constraint is None
    assert classify(lines[0]) is None or classify(lines[0]).kind != "oom"


def test_classifier_comm_with_parentheses_and_swapon():
    k = oom_kills_from_kmsg([kmsg(1, "Out of memory: Killed process 5 (a (b) c) total-vm:1kB, anon-rss:1kB, "
                                     "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0")])
    assert k[0].victim_comm == "a (b) c"
    ev = classify(kmsg(2, "Adding 262140k swap on /var/tmp/x.swap.  Priority:-2 extents:1 across:262140k"))
    assert ev.kind == "swap"
