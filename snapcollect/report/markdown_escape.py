"""Escaping for the Markdown renderer: text from a bundle never becomes Markdown or HTML.

A process name, a command line, a cgroup or host name is written by
whoever runs on the sick host, and the .md file is opened in viewers that
render inline HTML and follow links. So every string the Markdown
renderer prints goes through one of these:

- ``text(s)``: plain text (titles, cells, captions, header values, notes).
  Backslash escapes for what could start inline syntax: ``\\ ` * _ [ ] < ~``
  and ``&`` before an entity; newlines become spaces. What a viewer shows
  is ``s`` itself.
- ``code(s)``: ``s`` as a code span, with a backtick fence longer than any
  run of backticks inside (CommonMark 6.1), on one line.
- ``inline(md)``: a field the report model defines as Markdown (paragraphs,
  finding explanations, timeline events, the verdict), written by the
  report builder but holding bundle values. Its own syntax (emphasis,
  code spans, links to ``#anchors``) is kept; raw HTML, autolinks,
  entities, images, links off the page and link definitions are
  neutralised, code spans scanned exactly as CommonMark does so that an
  odd number of backticks cannot open or close one elsewhere; newlines
  become spaces, so no value can start a block (a heading, a list, a
  table row).
- ``block_start(line)``: the first characters of a line that could open
  a block (``#``, ``>``, ``-``, ``1.``, ``|``, a fence, indentation) are
  escaped.
- ``cell(md)``: an inline Markdown string as a GFM table cell: pipes
  escaped (the table parser honours ``\\|`` even inside code spans).
- ``anchor(ident)``: an id safe inside ``<a id="...">`` and ``(#...)``.

The HTML renderer, whose template HTML-escapes everything else, passes
the model's Markdown fields through ``inline`` too before markdown-it
(which runs there with HTML off and images disabled), so that they have
the same structure in both formats.
"""

from __future__ import annotations

import re

_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_ANCHOR_BAD = re.compile(r"[^A-Za-z0-9_.:-]+")
# What opens a block at the start of a line (CommonMark 4 and 5): an ATX
# heading, a quote, a list item (a marker then a space), a thematic break
# or setext underline (a line of - * _ =), a table row, a link reference
# definition, a fence, an HTML block (``<`` is escaped anyway), an
# ordered list item.
_BLOCK_START = re.compile(r"[ \t]*(?:(#|>|[-+*](?=[ \t]|$)|[-*_=](?=[-*_= \t]*$)|\||\[|~~~|```|<)"
                          r"|(\d{1,9})([.)]))")


def _one_line(s: str) -> str:
    return s.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def text(s: str) -> str:
    """Plain text as inline Markdown that displays exactly ``s`` (on one line)."""
    s = _one_line(str(s))
    out = []
    n = len(s)
    for i, c in enumerate(s):
        if c == "\\":
            nxt = s[i + 1] if i + 1 < n else ""
            out.append("\\\\" if nxt == "" or nxt in _PUNCT else "\\")
        elif c in "`*[]<~":
            out.append("\\" + c)
        elif c == "_":
            # An underscore between two letters or digits never delimits
            # emphasis (CommonMark 6.2); leave identifiers readable.
            inner = 0 < i < n - 1 and s[i - 1].isalnum() and s[i + 1].isalnum()
            out.append("_" if inner else "\\_")
        elif c == "&" and _ENTITY.match(s, i):
            out.append("\\&")
        else:
            out.append(c)
    return "".join(out)


def code(s: str) -> str:
    """``s`` as one code span, whatever backticks it holds."""
    s = _one_line(str(s))
    runs = [len(m) for m in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    # A span's content loses one leading and trailing space when it has
    # both; pad when it starts or ends with a backtick (or is all spaces).
    pad = " " if (s[:1] == "`" or s[-1:] == "`" or (s[:1] == " " and s[-1:] == " ")) else ""
    return f"{fence}{pad}{s}{pad}{fence}" if s else "` `"


def _code_span_end(md: str, i: int, k: int) -> int:
    """Where the code span opened by ``k`` backticks at ``i`` ends, or -1."""
    j = i + k
    n = len(md)
    while j < n:
        j = md.find("`", j)
        if j < 0:
            return -1
        m = j
        while m < n and md[m] == "`":
            m += 1
        if m - j == k:
            return m
        j = m
    return -1


def inline(md: str) -> str:
    """A Markdown field of the report model with everything dangerous neutralised (see module doc)."""
    md = _one_line(str(md))
    out = []
    i = 0
    n = len(md)
    while i < n:
        c = md[i]
        if c == "\\":
            if i + 1 < n:
                nxt = md[i + 1]
                # An escaped character is literal; keep the pair as written.
                out.append(md[i:i + 2] if nxt != "<" else "\\<")
                i += 2
            else:
                out.append("\\\\")
                i += 1
            continue
        if c == "`":
            k = 1
            while i + k < n and md[i + k] == "`":
                k += 1
            end = _code_span_end(md, i, k)
            if end < 0:
                out.append("\\`" * k)       # no closing run: literal backticks
                i += k
            else:
                out.append(md[i:end])       # a code span shows its content as is
                i = end
            continue
        if c == "<":
            out.append("\\<")              # no raw HTML, no autolink
        elif c == "&" and _ENTITY.match(md, i):
            out.append("\\&")
        elif c == "[" and i > 0 and md[i - 1] == "!":
            out.append("\\[")              # no images
        elif c == "]" and md.startswith("(", i + 1) and not md.startswith("(#", i + 1):
            out.append("]\\")              # a link only to an anchor of this page
        else:
            out.append(c)
        i += 1
    return block_start("".join(out))


def block_start(line: str) -> str:
    """``line`` with whatever could open a block at its start escaped."""
    m = _BLOCK_START.match(line)
    if not m:
        return line.lstrip(" \t")
    rest = line[m.end():]
    if m.group(1):
        return "\\" + m.group(1) + rest
    return m.group(2) + "\\" + m.group(3) + rest


def cell(md: str) -> str:
    """Inline Markdown as one GFM table cell."""
    return _one_line(md).replace("|", "\\|")


def heading(s: str) -> str:
    """Plain text as the content of an ATX heading (a trailing ``#`` run would be eaten)."""
    t = text(s)
    return re.sub(r"(#+)[ \t]*$", lambda m: "\\" + m.group(0), t)


def anchor(ident: str) -> str:
    """An id fit for ``<a id="...">`` and a ``(#...)`` link."""
    return _ANCHOR_BAD.sub("-", str(ident)) or "x"
