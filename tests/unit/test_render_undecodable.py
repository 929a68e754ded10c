"""Bytes that are not UTF-8 (comm, cmdline, cgroup and file names, kernel log, host)
render escaped as ``\\xNN`` in every format, and the bundle keeps them as they were."""

from __future__ import annotations

import io
import json
import re

import pytest
from hostile_bundle import hostile_bundle
from markdown_it import MarkdownIt
from render_sample import sample_report

from snapcollect.bundle import open_bundle
from snapcollect.report.build import build_report
from snapcollect.report.html import render_html
from snapcollect.report.json_out import render_json
from snapcollect.report.markdown import render_markdown
from snapcollect.report.model import Paragraph, Section
from snapcollect.report.pdf import render_pdf
from snapcollect.report.printable import printable, printable_report

HOSTILE = dict(comm=b"idle\xff", path=b"/opt/caf\xe9/python", cgroup=b"/grp\xfe", kmsg=b"bad \xfd byte",
               host=b"h\xffst")
SHOWN = ["idle\\xff", "/opt/caf\\xe9/python", "grp\\xfe", "bad \\xfd byte", "h\\xffst"]


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    return hostile_bundle(str(tmp_path_factory.mktemp("undecodable") / "b.tar.zst"), **HOSTILE)


@pytest.fixture(scope="module")
def report(bundle_path):
    return build_report(open_bundle(bundle_path))


def _md_visible(md: str) -> str:
    """The text a Markdown viewer shows (backslash escapes resolved)."""
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    return re.sub(r"<[^>]+>", "", html).replace("&quot;", '"').replace("&amp;", "&")


def test_printable_escapes_undecodable_bytes_and_controls():
    assert printable(b"idle\xff".decode("utf-8", "surrogateescape")) == "idle\\xff"
    assert printable("a\x1b[31mred\x07\x00") == "a\\x1b[31mred\\x07\\x00"
    assert printable("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
    assert printable("\x7f\x9b") == "\\x7f\\x9b"
    assert printable("forged \ud800 and \u202e override") == "forged \\ud800 and \\u202e override"
    assert printable("caf\u00e9 \u4e2d\u6587 ok") == "caf\u00e9 \u4e2d\u6587 ok"
    once = printable("x\udcff\x01")
    assert printable(once) == once


def test_printable_report_copies_only_what_changes():
    r = sample_report()
    bad = Section("bad", "name idle\udcff", [Paragraph("comm \udcfe")])
    r.sections.append(bad)
    out = printable_report(r)
    assert out is not r and out.sections[-1].title == "name idle\\xff"
    assert out.sections[-1].blocks[0].text == "comm \\xfe"
    assert r.sections[-1] is bad and bad.title == "name idle\udcff"      # input untouched
    assert out.sections[0] is r.sections[0]                              # clean parts shared
    clean = sample_report()
    assert printable_report(clean) is clean


def test_bundle_keeps_the_bytes(bundle_path):
    b = open_bundle(bundle_path)
    top = json.loads(b.text("procs/top"))
    assert any(p["comm"].encode("utf-8", "surrogateescape") == b"idle\xff" for p in top)
    cmdlines = [b.data(n) for n in b.names("procs/") if n.endswith("/cmdline")]
    assert any(c.startswith(b"/opt/caf\xe9/python\0") for c in cmdlines)
    assert b.records("kmsg")[-1]["text"].encode("utf-8", "surrogateescape") == b"bad \xfd byte"


def test_markdown(report):
    md, _ = render_markdown(report, "charts")
    md.encode("utf-8")
    seen = _md_visible(md)
    for s in SHOWN:
        assert s in seen, s


def test_html(report):
    html = render_html(report)
    html.encode("utf-8")
    for s in SHOWN:
        assert s in html, s


def test_json(report):
    text = render_json(report)
    text.encode("utf-8")
    doc = json.loads(text)
    flat = json.dumps(doc, ensure_ascii=False)
    for s in SHOWN:
        assert json.dumps(s, ensure_ascii=False)[1:-1] in flat, s
    assert doc["meta"]["host"] == "h\\xffst"


def test_pdf(report):
    pypdf = pytest.importorskip("pypdf", reason="pypdf is a test dependency (pip install -e '.[test]')")
    data = render_pdf(report)
    text = " ".join(p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    for s in ("idle\\xff", "h\\xffst"):
        assert s in text, s


def test_show_prints_the_bytes_escaped(bundle_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONIOENCODING="utf-8")     # strict: a surrogate would raise
    p = subprocess.run([sys.executable, "-m", "snapcollect", "show", bundle_path], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "h\\xffst" in p.stdout
