"""/proc/zoneinfo: per-zone watermarks, sizes and counters.

Sample (kernel 6.18)::

    Node 0, zone   Normal
      pages free     242022
            min      4556
            low      5695
            high     6834
            spanned  5505024
            present  5505024
            managed  294912
            protection: (0, 0, 0, 0, 0)
          nr_free_pages 242022
      pagesets
        cpu: 0
                  count:    38

All values are pages. Since 4.8 the node-wide LRU counters appear once per
node under ``per-node stats`` in the node's first zone; before 4.8 they
were per zone. The per-CPU ``pagesets`` block is skipped (its ``high:``
would otherwise shadow the zone's high watermark).
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_zoneinfo(text: str) -> dict:
    """``{"zones": {(node, zone): {name: pages}}, "nodes": {node: {name: pages}}}``.

    Zone dicts hold ``free`` (from "pages free"), ``min``, ``low``, ``high``,
    ``spanned``, ``present``, ``managed``, the zone counters, and
    ``protection`` as a list of pages per higher zone.
    """
    zones: dict[tuple[int, str], dict] = {}
    nodes: dict[int, dict[str, int]] = {}
    cur: dict | None = None
    node = -1
    mode = "zone"
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if line.startswith("Node "):
            head, sep, zone = line.partition(", zone")
            if not sep:
                raise ParseError(f"zoneinfo: unexpected line {s[:80]!r}")
            node = to_int(head[5:].strip(), "zoneinfo", line)
            cur = zones.setdefault((node, zone.strip()), {})
            mode = "zone"
            continue
        if cur is None:
            raise ParseError(f"zoneinfo: data before the first 'Node N, zone Z' line: {s[:80]!r}")
        if s == "per-node stats":
            mode = "node"
            continue
        if s == "pagesets":
            mode = "pagesets"
            continue
        if s.startswith("pages free"):
            mode = "zone"
            cur["free"] = to_int(s.split()[2], "zoneinfo", line)
            continue
        if mode == "pagesets":
            # Lines of the per-CPU block are indented deeper than two
            # spaces, or are the "vm stats threshold" line; anything else
            # (node_unreclaimable, start_pfn) belongs to the zone again.
            if line.startswith("   ") or s.startswith("vm stats threshold"):
                continue
            mode = "zone"
        if s.startswith("protection:"):
            inner = s.split(":", 1)[1].strip().strip("()")
            cur["protection"] = [to_int(v.strip(), "zoneinfo", line) for v in inner.split(",") if v.strip()]
            continue
        key, _, value = s.replace(":", " ").partition(" ")
        value = value.strip()
        if not value:
            raise ParseError(f"zoneinfo: unexpected line {s[:80]!r}")
        target = nodes.setdefault(node, {}) if mode == "node" else cur
        target[key] = to_int(value.split()[0], "zoneinfo", line)
    if not zones:
        raise ParseError("zoneinfo: no zones")
    return {"zones": zones, "nodes": nodes}
