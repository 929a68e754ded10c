"""Text from a bundle made printable: undecodable bytes and control characters escaped.

The kernel hands out bytes, not text: ``/proc/PID/comm`` and ``cmdline``,
file and cgroup names, kernel log lines. Any user can make them invalid
UTF-8 (``prctl(PR_SET_NAME, b"idle\\xff")``, a binary with a Latin-1 file
name), and the bundle keeps them losslessly: raw bytes in its files, and
in its JSON records the lone surrogates of Python's ``surrogateescape``
error handler (U+DC80..U+DCFF, one per byte that is not UTF-8), which is
also what ``Bundle.text`` gives back for a file.

Such a string cannot be encoded as UTF-8, so no renderer can write it.
Every renderer therefore reads the report through ``printable_report``,
which shows each undecodable byte as ``\\xNN``; it also escapes control
characters other than TAB and newline (a process name holding ESC must
not drive the terminal a Markdown report is printed on, nor make an SVG
invalid XML), other lone surrogates (from a forged JSON ``"\\ud800"``) and
the bidirectional overrides that reorder how a line reads. Backslashes
are left alone, so escaping twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

# C0 controls but TAB (0x09) and LF (0x0a); DEL and the C1 controls; the
# bidi embeddings/overrides (U+202A..U+202E) and isolates (U+2066..U+2069);
# every surrogate code point.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"     # the byte surrogateescape stood for
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every byte that was not UTF-8 shown as ``\\xNN`` (and controls escaped)."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(_escape, text)


def _clean(value: Any, memo: dict[int, Any]) -> Any:
    if type(value) is str:
        return printable(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    out = value
    if isinstance(value, str):        # a str subclass: keep its type when it is clean
        fixed = printable(value)
        out = value if fixed == value else fixed
    elif isinstance(value, dict):
        items = [(_clean(k, memo), _clean(v, memo)) for k, v in value.items()]
        if any(k is not k0 or v is not v0 for (k, v), (k0, v0) in zip(items, value.items())):
            out = dict(items)
    elif isinstance(value, (list, tuple)):
        items = [_clean(v, memo) for v in value]
        if any(a is not b for a, b in zip(items, value)):
            out = type(value)(items) if type(value) in (list, tuple) else list(items)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            old = getattr(value, f.name)
            new = _clean(old, memo)
            if new is not old:
                changes[f.name] = new
        if changes:
            out = dataclasses.replace(value, **changes)
    memo[key] = out
    return out


def printable_report(report):
    """The report with every string in it passed through ``printable``.

    Objects that need no change are shared with the input (a one-hour
    bundle has tens of thousands of table cells, nearly all numbers), and
    an object reached twice (a table both in a section and in
    ``data_tables``) stays one object. The input is not modified.
    """
    return _clean(report, {})
