"""Hostile names never become markup: Markdown structure and HTML stay the renderer's own.

The fixture bundle is rewritten (hostile_bundle) with one hostile string
as process name, interpreter path (command line), cgroup name, kernel log
line, host, kernel and stop reason, and compared with the same bundle
holding a harmless string instead: the document must have the same
structure (the same blocks, tables with the same columns, the same links
and HTML), and a viewer must show the hostile string as text.
"""

from __future__ import annotations

import html
import io
import re
from html.parser import HTMLParser

import pytest
from hostile_bundle import hostile_bundle
from markdown_it import MarkdownIt

from snapcollect.bundle import open_bundle
from snapcollect.report.build import build_report
from snapcollect.report.html import render_html
from snapcollect.report.markdown import render_markdown

CHARTS = "r-charts"
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "# x",
    "x #",
    "[a](http://e)",
    "![i](http://e/i.png)",
    "<http://e>",
    "[r]: http://e",
    "`x`",
    "a`b",
    "``",
    "a|b",
    "| --- |",
    "a\n# b\n- c\n<div>",
    "a\n\n```\nfenced",
    "1. x",
    "- y",
    "> q",
    "***",
    "&lt;b&gt; &amp;",
    "tail\\",
    "\\`x\\`",
    "**bold** _it_",
]
BENIGN = "harmless name"
# The HTML the Markdown renderer writes itself: anchors and the folded skipped rules.
# (``<a id="x"></a>`` on its own line parses as a paragraph of two inline tags.)
OWN_HTML = re.compile(r'(<a id="[A-Za-z0-9_.:-]+">|</a>|<details><summary>[^<>`]*</summary>|</details>)\s*')


def _bundle(tmp_path_factory, s: str) -> str:
    b = s.encode()
    path = tmp_path_factory.mktemp("hostile") / "b.tar.zst"
    return hostile_bundle(str(path), comm=b, path=b"/opt/" + b, cgroup=b"/" + b, kmsg=b, host=b, kernel=b,
                          stop_reason=b, complete=False)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    cache: dict[str, object] = {}

    def get(s: str):
        if s not in cache:
            cache[s] = build_report(open_bundle(_bundle(tmp_path_factory, s)))
        return cache[s]

    return get


def _md():
    return MarkdownIt("commonmark", {"html": True}).enable("table")


def _all_tokens(tokens):
    for t in tokens:
        yield t
        if t.children:
            yield from _all_tokens(t.children)


def _shape(tokens) -> list[str]:
    """The document's structure: block tokens, and the inline ones that link or embed.

    (Emphasis and code spans are left out: the report model's Markdown
    fields, finding explanations and the verdict, are filled with names
    by the findings engine, and a name may add a harmless emphasis or
    code span there.)
    """
    out = []
    for t in tokens:
        out.append(t.type)
        for c in t.children or []:
            if c.type in ("link_open", "image", "html_inline"):
                out.append(c.type)
    return out


def _table_cell_counts(md: str) -> list[int]:
    """Cells per table line, splitting at pipes not escaped by a backslash."""
    counts = []
    for line in md.splitlines():
        if not line.startswith("|"):
            continue
        n, i = 0, 0
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == "|":
                n += 1
            i += 1
        counts.append(n)
    return counts


def _tables(md: str) -> list[list[str]]:
    out, cur = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def _visible(md: str) -> str:
    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


@pytest.mark.parametrize("s", HOSTILE)
def test_markdown_keeps_its_structure(reports, s):
    base, _ = render_markdown(reports(BENIGN), CHARTS)
    text, _ = render_markdown(reports(s), CHARTS)
    tokens = _md().parse(text)
    assert _shape(tokens) == _shape(_md().parse(base))
    for t in _all_tokens(tokens):
        if t.type in ("html_block", "html_inline"):
            assert OWN_HTML.fullmatch(t.content), t.content
        elif t.type == "link_open":
            assert t.attrGet("href").startswith("#"), t.attrGet("href")
        elif t.type == "image":
            assert t.attrGet("src").startswith(CHARTS + "/"), t.attrGet("src")
    # Tables keep their columns: every line of a table has the header's cells.
    for table in _tables(text):
        counts = _table_cell_counts("\n".join(table))
        assert len(set(counts)) == 1, table
    assert [len(t) for t in _tables(text)] == [len(t) for t in _tables(base)]


@pytest.mark.parametrize("s", HOSTILE)
def test_markdown_shows_the_text(reports, s):
    text, _ = render_markdown(reports(s), CHARTS)
    seen = re.sub(r"\s+", " ", _visible(text))
    one_line = re.sub(r"\s+", " ", s).strip()
    assert f"7303 {one_line}" in seen                # a table row (pmap summary)
    assert f"Host: {one_line}" in seen               # the header
    assert f"/opt/{one_line}" in seen                # command lines


@pytest.mark.parametrize("s", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[a](http://e)",
                               "a\n# b\n- c\n<div>"])
def test_html_stays_escaped(reports, s):
    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags: list[str] = []
            self.attrs: list[tuple[str, str | None]] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.attrs += attrs

    def parse(page: str) -> Tags:
        p = Tags()
        p.feed(page)
        return p

    got, base = parse(render_html(reports(s))), parse(render_html(reports(BENIGN)))
    # (Emphasis and code in the Markdown fields aside: see _shape.)
    inline = {"em", "strong", "code"}
    assert [t for t in got.tags if t not in inline] == [t for t in base.tags if t not in inline]
    assert "script" not in got.tags and "img" not in got.tags
    assert not any(name.startswith("on") for name, _ in got.attrs)
    assert all(v.startswith("#") for name, v in got.attrs if name == "href")


def test_pdf_shows_markup_as_text(reports):
    pypdf = pytest.importorskip("pypdf", reason="pypdf is a test dependency (pip install -e '.[test]')")
    from snapcollect.report.pdf import render_pdf

    reader = pypdf.PdfReader(io.BytesIO(render_pdf(reports("<script>alert(1)</script>"))))
    text = " ".join(p.extract_text() or "" for p in reader.pages)
    assert "<script>alert(1)</script>" in text
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A") or {}
            assert "/URI" not in action, action
