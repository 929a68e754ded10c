"""markdown_escape: each helper checked against a CommonMark parser (markdown-it-py)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from snapcollect.report import markdown_escape as E

NASTY = ["<script>alert(1)</script>", "[a](http://e)", "![i](http://e/i.png)", "`x`", "a``b`", "**b** _i_",
         "x\\", "\\*", "&lt;b&gt;", "~~s~~", "a|b", "<http://e>", "# h", "1. x", "a_b_c", "_x_", " `", ""]


def _inline_tokens(md: str):
    tokens = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).parse(md)
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"], md
    return tokens[1].children


@pytest.mark.parametrize("s", [x for x in NASTY if x.strip()])
def test_text_shows_exactly_the_string(s):
    kids = _inline_tokens("start " + E.text(s))
    assert [k.type for k in kids] == ["text"], (s, E.text(s), kids)
    assert kids[0].content == "start " + s


@pytest.mark.parametrize("s", NASTY + ["``` ```", "`"])
def test_code_is_one_span_with_the_string(s):
    kids = _inline_tokens("start " + E.code(s))
    assert [k.type for k in kids] == ["text", "code_inline"], (s, E.code(s))
    assert kids[1].content == (s if s else " ")


def test_code_and_text_are_on_one_line():
    assert "\n" not in E.code("a\nb") and "\n" not in E.text("a\r\nb")


def test_inline_keeps_the_builders_markdown_and_drops_the_rest():
    md = E.inline("see `a <b>` and [Timeline](#timeline), **bold**; <script>x</script> [a](http://e) "
                  "![i](x.png) <http://e> &amp; odd ` tick\n# not a heading")
    kids = _inline_tokens(md)
    types = [k.type for k in kids]
    assert "html_inline" not in types and "image" not in types
    assert [k.attrGet("href") for k in kids if k.type == "link_open"] == ["#timeline"]
    assert [k.content for k in kids if k.type == "code_inline"] == ["a <b>"]
    assert "strong_open" in types
    shown = "".join(k.content for k in kids if k.type in ("text", "code_inline"))
    assert "<script>x</script>" in shown and "[a](http://e)" in shown and "&amp;" in shown
    assert "# not a heading" in shown


@pytest.mark.parametrize("line", ["# h", "> q", "- x", "+ x", "* x", "---", "***", "___", "===", "| a |", "[r]: http://e",
                                  "```", "~~~", "<div>", "1. x", "2) y", "    indented"])
def test_block_start_leaves_a_paragraph(line):
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(E.block_start(line) + "\n")
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"], line


def test_cell_keeps_the_columns():
    row = "| " + E.cell(E.text("a|b")) + " | " + E.cell(E.code("c|d")) + " |"
    md = "| x | y |\n| - | - |\n" + row + "\n"
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    cells = [t for t in tokens if t.type == "inline"][2:]
    assert [c.content for c in cells] == ["a|b", "`c|d`"]


def test_heading_keeps_a_trailing_hash_and_anchor_is_safe():
    tokens = MarkdownIt("commonmark").parse("## " + E.heading("x #") + "\n")
    assert tokens[1].children[0].content == "x #"
    assert E.anchor('a"><script>') == "a-script-"
    assert E.anchor("pmap-123") == "pmap-123"
