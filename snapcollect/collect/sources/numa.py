"""Per-NUMA-node memory files under /sys/devices/system/node/.

``node<N>/meminfo`` (per-node meminfo, lines prefixed ``Node N``) and
``node<N>/numastat`` (numa_hit, numa_miss, ...: page counts since boot;
``numastat`` the command sums these). Present on every kernel built with
CONFIG_NUMA, also on single-node machines (node0 only); absent without it.
"""

from __future__ import annotations

import os
import re

from snapcollect.bundle.names import node_file
from snapcollect.collect.sources import Outcome, read_capped

NODE_DIR = "/sys/devices/system/node"
_NODE_RE = re.compile(r"^node(\d+)$")


def nodes() -> list[int]:
    try:
        names = os.listdir(NODE_DIR)
    except OSError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _NODE_RE.match(n)))


def node_source(node: int, fname: str) -> str:
    """Artifact source name: ``sys/node/node0/meminfo``."""
    return node_file(node, fname)


def read_node_file(node: int, fname: str) -> Outcome:
    return read_capped(os.path.join(NODE_DIR, f"node{node}", fname), 64 * 1024)
