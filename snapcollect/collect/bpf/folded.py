"""Folded stacks, the text format of flamegraph.pl and speedscope.

One line per distinct stack, root first, frames joined by ``;``, then a
space and an integer count::

    alloc;_start;__libc_start_main;main;touch_pages 32768

A ``;`` inside a frame name would split the frame, and a name ending in
a space and digits (C++ ``operator() 2``, Go ``func1 3``) is misread by
flamegraph.pl as a count (it also reads ``stack count1 count2`` as a
differential line), so names are sanitized here, at write time.
"""

from __future__ import annotations

import re

UNKNOWN = "[unknown]"
_TRAILING_NUMBER = re.compile(r"\s+(\d+)$")
_WHITESPACE_CTRL = re.compile(r"[\r\n\t\x00-\x1f]+")


def sanitize_frame(name: str) -> str:
    """A frame name safe inside a folded line."""
    name = _WHITESPACE_CTRL.sub(" ", name).replace(";", ":").strip()
    if not name:
        return UNKNOWN
    # "foo 12" -> "foo_12": the trailing number stays, but not as a count.
    return _TRAILING_NUMBER.sub(r"_\1", name)


def folded_line(frames: list[str], count: int) -> str:
    """``frames`` root first; count a non-negative integer."""
    if count < 0 or int(count) != count:
        raise ValueError(f"folded count must be a non-negative integer: {count!r}")
    return ";".join(sanitize_frame(f) for f in frames) + f" {int(count)}"


def fold(stacks: list[tuple[list[str], int]]) -> list[tuple[str, int]]:
    """Merge equal stacks (after sanitizing); biggest first, then by name."""
    merged: dict[str, int] = {}
    for frames, count in stacks:
        key = ";".join(sanitize_frame(f) for f in frames)
        merged[key] = merged.get(key, 0) + int(count)
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))


def render(lines: list[tuple[str, int]]) -> str:
    return "".join(f"{stack} {count}\n" for stack, count in lines)

