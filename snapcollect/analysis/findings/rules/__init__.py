"""Rule modules, imported in the catalogue's order.

The order follows the "60,000 ms" checklist and the USE method: OOM
events, pressure, available memory and swap, reclaim and faults, kernel
memory, fragmentation/THP/NUMA/commit, processes, the kernel log, then
the BPF collection itself.
"""

from snapcollect.analysis.findings.rules import (  # noqa: F401
    oom, cgroups, pressure, memory, shmem, swap, delays, reclaim, vmscan, faults, faultmaps, slab, zones, hugepages,
    numa, commit, processes, deepdive, kmsg, bpf)
