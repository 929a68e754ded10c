"""The collector's own processes: itself and every program it starts.

The collector is a process on the host it watches, and so are the
commands it runs (free, vmstat, pmap, numastat): the per-tick process
pass sees them like any other. Their pids go into the manifest
(``collector_pids``) so that analysis can leave them out of process
rankings and findings; their cost is reported as the collector's own.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_children: list[int] = []


def register(pid: int) -> None:
    """Remember a process the collector started (commands run from worker threads)."""
    with _lock:
        _children.append(pid)


def pids() -> list[int]:
    """This process first, then every child started so far, each once."""
    with _lock:
        children = list(dict.fromkeys(_children))
    me = os.getpid()
    return [me] + [p for p in children if p != me]
