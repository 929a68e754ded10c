"""Kernel addresses -> function names from /proc/kallsyms, in bounded memory.

The first use reads the file once and keeps only the sorted start
addresses of text symbols (8 bytes each, ~1-2 MB) and each one's line
number; names are read by a later pass over the file for the lines the
addresses asked need, and kept per address asked. Unknown addresses are
``[unknown]``, as bcc's ksym gives them. Needs root (addresses read as 0
otherwise: nothing resolves then).
"""

from __future__ import annotations

import bisect
from array import array

from snapcollect.collect.bpf.folded import UNKNOWN

KALLSYMS = "/proc/kallsyms"
TEXT_TYPES = frozenset("tTwW")
MAX_CACHED = 65536


class KernelSymbols:
    def __init__(self, path: str = KALLSYMS):
        self.path = path
        self._starts: array | None = None
        self._lines = array("I")
        self._names: dict[int, str] = {}      # address -> name, for addresses asked

    def _index(self) -> None:
        starts, lines = array("Q"), array("I")
        in_order = True
        try:
            with open(self.path, "rb") as fh:
                for n, line in enumerate(fh):
                    parts = line.split(None, 3)
                    if len(parts) < 3 or parts[1].decode("ascii", "replace") not in TEXT_TYPES:
                        continue
                    try:
                        addr = int(parts[0], 16)
                    except ValueError:
                        continue
                    if addr:
                        if starts and addr < starts[-1]:
                            in_order = False
                        starts.append(addr)
                        lines.append(n)
        except OSError:
            starts, lines = array("Q"), array("I")
        if not in_order:
            # The kernel lists text symbols in address order (122,039 on
            # 6.18 here, none out of place); a kernel that does not costs
            # one sort, with its transient list.
            pairs = sorted(zip(starts, lines))
            starts, lines = array("Q", (a for a, _ in pairs)), array("I", (n for _, n in pairs))
        self._starts, self._lines = starts, lines

    def resolve(self, addrs: list[int]) -> list[str]:
        """Names of ``addrs``, in order."""
        if self._starts is None:
            self._index()
        need: dict[int, list[int]] = {}          # line number -> addresses
        for a in addrs:
            if a in self._names:
                continue
            i = bisect.bisect_right(self._starts, a) - 1
            if i < 0:
                self._names[a] = UNKNOWN
                continue
            need.setdefault(self._lines[i], []).append(a)
        if need:
            try:
                with open(self.path, "rb") as fh:
                    for n, line in enumerate(fh):
                        if n in need:
                            parts = line.split(None, 3)
                            name = parts[2].decode("utf-8", "surrogateescape") if len(parts) >= 3 else UNKNOWN
                            for a in need[n]:
                                self._names[a] = name
            except OSError:
                pass
        out = [self._names.get(a, UNKNOWN) for a in addrs]
        if len(self._names) > MAX_CACHED:
            self._names.clear()
        return out
