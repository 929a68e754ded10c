"""/proc/PID/smaps and /proc/PID/smaps_rollup (4.14+): per-mapping memory.

smaps sample (kernel 6.18)::

    7f69a17a5000-7f69a47a6000 rw-p 00000000 00:00 0
    Size:              49156 kB
    Rss:               49156 kB
    Pss:               49156 kB
    Shared_Clean:          0 kB
    Shared_Dirty:          0 kB
    Private_Dirty:     49156 kB
    Anonymous:         49156 kB
    Swap:                  0 kB
    VmFlags: rd wr mr mw me ac sd

``parse_smaps`` turns it into the rows of ``pmap -x`` (procps-ng 4):
Kbytes is the mapping's size, RSS is Rss, Dirty is Shared_Dirty +
Private_Dirty, Mode is the permissions with "p" shown as "-" plus a fifth
"-", and Mapping is the file's base name, ``[ stack ]`` for the main
stack and ``[ anon ]`` for everything else without a path ([heap],
[vdso], anonymous memory). Pss, Anonymous, Swap and
shared (= Shared_Clean + Shared_Dirty) are kept besides.
"""

from __future__ import annotations

import re

from snapcollect.parsers.base import ParseError, to_int
from snapcollect.parsers.records import Mapping_

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ \S+ \d+ ?(.*)$")


def pmap_mapping_name(path: str) -> str:
    """The Mapping column of pmap -x for the path field of a maps line."""
    if "/" in path:
        # pmap takes what follows the last "/" of the whole line, so
        # "/dev/zero (deleted)" shows as "zero (deleted)".
        base = path[path.rfind("/") + 1:]
        return base or path
    if path == "[stack]":
        return "[ stack ]"
    return "[ anon ]"


def _mapping(start: int, end: int, perms: str, path: str, kv: dict[str, int]) -> Mapping_:
    mode = perms[:3] + ("s" if perms[3] == "s" else "-") + "-"
    return Mapping_(address=start, kbytes=(end - start) >> 10, rss_kb=kv.get("Rss", 0),
                    pss_kb=kv.get("Pss", 0), dirty_kb=kv.get("Shared_Dirty", 0) + kv.get("Private_Dirty", 0),
                    anonymous_kb=kv.get("Anonymous", 0), swap_kb=kv.get("Swap", 0), mode=mode,
                    mapping=pmap_mapping_name(path),
                    shared_kb=kv.get("Shared_Clean", 0) + kv.get("Shared_Dirty", 0))


def parse_smaps(text: str) -> tuple[Mapping_, ...]:
    out: list[Mapping_] = []
    cur: tuple[int, int, str, str] | None = None
    kv: dict[str, int] = {}
    for line in text.splitlines():
        if not line:
            continue
        m = _HEADER.match(line)
        if m:
            if cur is not None:
                out.append(_mapping(*cur, kv))
            cur = (int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4).strip())
            kv = {}
            continue
        if cur is None:
            raise ParseError(f"smaps: field before the first mapping: {line.strip()[:80]!r}")
        key, sep, rest = line.partition(":")
        if not sep:
            raise ParseError(f"smaps: unexpected line {line.strip()[:80]!r}")
        if key == "VmFlags" or key == "THPeligible" or key == "ProtectionKey":
            continue
        parts = rest.split()
        if parts:
            kv[key] = to_int(parts[0], "smaps", line)
    if cur is not None:
        out.append(_mapping(*cur, kv))
    return tuple(out)


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """``{"Rss": kB, "Pss": kB, "Swap": kB, ...}`` of smaps_rollup."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    if not lines or not _HEADER.match(lines[0]):
        raise ParseError("smaps_rollup: missing the '[rollup]' header line")
    for line in lines[1:]:
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts:
            if line.strip():
                raise ParseError(f"smaps_rollup: unexpected line {line.strip()[:80]!r}")
            continue
        out[key] = to_int(parts[0], "smaps_rollup", line)
    return out


def rollup_from_smaps(mappings: tuple[Mapping_, ...]) -> dict[str, int]:
    """Rss/Pss/Swap totals from smaps, for kernels without smaps_rollup (< 4.14)."""
    return {"Rss": sum(m.rss_kb for m in mappings), "Pss": sum(m.pss_kb for m in mappings),
            "Swap": sum(m.swap_kb for m in mappings),
            "Anonymous": sum(m.anonymous_kb for m in mappings)}
