"""Shared helpers of the parsers: the parse error and number conversion.

Parsers raise ``ParseError`` (a ``SnapcollectError``) with one line that
names the interface and the offending line, so that a damaged artifact
becomes "could not parse X" in the report instead of a traceback.
"""

from __future__ import annotations

from snapcollect.errors import SnapcollectError


class ParseError(SnapcollectError):
    """Raw text that does not have the shape of the kernel interface."""


def to_int(value: str, what: str, line: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ParseError(f"{what}: not a number {value!r} in line {line.strip()[:80]!r}") from None


def unescape_octal(text: str) -> str:
    r"""Undo seq_file's escaping of space, tab, newline and backslash (``\040``)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        digits = text[i + 1:i + 4]
        if text[i] == "\\" and len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
