"""Output of ``numastat`` (numactl), kept to cross-check the node files.

Sample (numactl 2.0.16, pages)::

                               node0
    numa_hit                 5057371
    numa_miss                      0
    interleave_hit              1130

With many nodes numastat prints the columns in blocks of nodes; each
block starts with its own header line of node names.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_numastat(text: str) -> dict[int, dict[str, int]]:
    """``{node: {"numa_hit": pages, ...}}``."""
    out: dict[int, dict[str, int]] = {}
    nodes: list[int] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if all(p.startswith("node") and p[4:].isdigit() for p in parts):
            nodes = [int(p[4:]) for p in parts]
            continue
        if not nodes or len(parts) != len(nodes) + 1:
            raise ParseError(f"numastat: unexpected line {line.strip()[:80]!r}")
        for node, v in zip(nodes, parts[1:]):
            out.setdefault(node, {})[parts[0]] = to_int(v, "numastat", line)
    if not out:
        raise ParseError("numastat: no node columns")
    return out
