"""Dumps of a settings directory, one ``<name> = <content>`` line per file.

Used for /proc/sys/vm (``proc/sys/vm@P``) and for
/sys/kernel/mm/transparent_hugepage (names are relative paths there).
Sample (kernel 6.18)::

    overcommit_memory = 0
    swappiness = 60
    enabled = always [madvise] never
    khugepaged/pages_to_scan = 4096

Content is kept as text: several files hold lists or a bracketed choice.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError


def parse_name_values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(" = ")
        if not sep:
            raise ParseError(f"settings dump: expected 'name = value', got {line.strip()[:80]!r}")
        out[name.strip()] = value.strip()
    return out


def selected_choice(value: str) -> str:
    """``"always [madvise] never"`` -> ``"madvise"``; plain values unchanged."""
    if "[" in value and "]" in value:
        return value[value.index("[") + 1:value.index("]")]
    return value
