"""Where major faults land per process: swap-ins, and code read back from disk.

Input: the model's ``fault_maps`` (analysis/faultmaps.py), from
``bpf/fault_files``: every major fault (perf software event major-faults)
with its address, placed in the process's mappings::

    {"pid": 4242, "comm": "db", "major_faults": 5210, "swapins": 5100,
     "executable_major_faults": 90, "mappings": [{"mapping": "[heap]", "kind": "anon", ...}]}

Thresholds:

- SWAPIN_BY_PROCESS: >= 1,000 swap-ins (WARN) in the window, >= 10,000
  (HIGH). A swap-in is a synchronous read the task waits for (0.1 ms on
  fast SSD/zram to 10 ms on disk), so 1,000 is 0.1-10 s of one process's
  time and 4 MiB read back; 10,000 (40 MiB) is seconds at the best. Below
  that, a few pages brought back after an idle period is normal. This
  names who pays; the host's swap-in rate is SWAP_ACTIVITY's.
- FILE_REFAULTS_EXECUTABLE: >= 500 major faults in executable file
  mappings (2 MiB of code read from disk) that are >= 50 % of the
  process's major faults. A cold start reads a program's code once; most
  programs touch well under 2 MiB of text to start, so more than that in
  one window, and most of the process's disk reads being code, says the
  code's pages are evicted and read back (the working set does not fit).
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.bundle.names import BPF_FAULT_FILES, SERIES_PROCS

SWAPIN_WARN = 1_000
SWAPIN_HIGH = 10_000
CODE_REFAULTS_MIN = 500
CODE_SHARE = 0.5
NAMED = 3          # processes named in a finding


@rule(
    key="SWAPIN_BY_PROCESS", area="swap", severities=("HIGH", "WARN"),
    detects="A process takes many swap-ins (major faults on its anonymous or shmem memory): it "
            "waits for its own pages to be read back from swap.",
    title="{comm} (pid {pid}) took {swapins:,} swap-ins",
    explanation="BPF saw {swapins:,} major faults on anonymous or shmem memory of {comm} (pid {pid}) "
                "during the window: each one a page read back from swap while the task waited. "
                "{_others}Its memory does not fit in RAM (or in its cgroup's limit) beside the "
                "rest: raise the limit, shrink its working set, or move other memory out.",
    threshold=f"swap-ins of one process >= {SWAPIN_WARN:,} (WARN) or >= {SWAPIN_HIGH:,} (HIGH) in the window",
    source="perf software event major-faults with the fault address, placed in /proc/PID/maps "
           "(anonymous and shmem mappings)",
    needs=[BPF_FAULT_FILES], section="fault-files")
def swapin_by_process(m):
    f = m.fault_maps
    if f is None or not f.swapins or f.swapins[0].swapins < SWAPIN_WARN:
        return None
    top = f.swapins[0]
    sev = "HIGH" if top.swapins >= SWAPIN_HIGH else "WARN"
    others = [s for s in f.swapins[1:NAMED] if s.swapins >= SWAPIN_WARN]
    text = ("Also: " + ", ".join(f"{s.comm} (pid {s.pid}, {s.swapins:,})" for s in others) + ". ") if others else ""
    arts = [BPF_FAULT_FILES] + ([SERIES_PROCS] if m.ds.procs else [])
    return Hit(sev, {
        "pid": top.pid, "comm": top.comm, "swapins": top.swapins, "majflt": top.majflt,
        "vmswap_kb": top.vmswap_kb, "_others": text,
        "processes": [{"pid": s.pid, "comm": s.comm, "swapins": s.swapins} for s in f.swapins[:NAMED]],
    }, arts, None, section="fault-files")


@rule(
    key="FILE_REFAULTS_EXECUTABLE", area="faults", severities=("WARN",),
    detects="Most of a process's major faults are in its executable or libraries: its code is "
            "evicted and read back from disk.",
    title="{comm} (pid {pid}) read {executable_major_faults:,} code pages from disk ({file})",
    explanation="{executable_major_faults:,} of the {major_faults:,} major faults of {comm} (pid {pid}) "
                "were in executable file mappings, most in {file} ({file_major:,}). Code pages are "
                "clean page cache: under memory pressure they are dropped and read again at the next "
                "call, so the program runs at disk speed. The working set of code does not stay in "
                "memory: find what takes the memory (cgroup limit, page cache, other processes).",
    threshold=f"major faults in executable file mappings >= {CODE_REFAULTS_MIN} and >= "
              f"{CODE_SHARE:.0%} of the process's major faults",
    source="perf software event major-faults with the fault address, placed in /proc/PID/maps "
           "(file mappings with x permission)",
    needs=[BPF_FAULT_FILES], section="fault-files")
def file_refaults_executable(m):
    f = m.fault_maps
    if f is None:
        return None
    for c in f.code_refaults:
        if c.executable_major_faults >= CODE_REFAULTS_MIN and c.executable_major_faults >= CODE_SHARE * c.major_faults:
            return Hit("WARN", {
                "pid": c.pid, "comm": c.comm, "major_faults": c.major_faults,
                "executable_major_faults": c.executable_major_faults, "file": c.top.mapping,
                "file_major": c.top.major_faults,
            }, [BPF_FAULT_FILES], None, section="fault-files")
    return None
