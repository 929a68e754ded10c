"""/proc/swaps: active swap areas.

Sample (kernel 6.18, a swap file)::

    Filename				Type		Size		Used		Priority
    /var/tmp/snapfix.swap                   file		262140		153472		-2

Size and Used are KiB. seq_file escapes blanks in the file name as
``\\040``; the last four columns are parsed from the right.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int, unescape_octal
from snapcollect.parsers.records import SwapDevice


def parse_swaps(text: str) -> list[SwapDevice]:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Filename"):
        raise ParseError("swaps: missing the 'Filename Type Size Used Priority' header")
    out = []
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.rsplit(None, 4)
        if len(parts) != 5:
            raise ParseError(f"swaps: unexpected line {line.strip()[:80]!r}")
        name, typ, size, used, prio = parts
        out.append(SwapDevice(unescape_octal(name.strip()), typ, to_int(size, "swaps", line),
                              to_int(used, "swaps", line), to_int(prio, "swaps", line)))
    return out
