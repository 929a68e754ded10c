"""The one-screen terminal summary: ``report`` without -o on a terminal, and after ``collect``."""

from __future__ import annotations

import io
import os

from snapcollect.bundle import open_bundle
from snapcollect.cli import main
from snapcollect.report.build import build_report
from snapcollect.report.summary import MAX_LINES, WIDTH, plain, summary_text

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "samples",
                      "sample-memcg-oom.tar.zst")


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_summary_fits_one_screen_and_answers():
    path = "/var/tmp/b.tar.zst"
    text = summary_text(build_report(open_bundle(SAMPLE)), path)
    lines = text.splitlines()
    assert len(lines) <= MAX_LINES
    assert all(len(line) <= WIDTH for line in lines if path not in line), lines
    assert lines[0].startswith("snapcollect: CRIT: ")
    report = build_report(open_bundle(SAMPLE))
    victim = next(f for f in report.findings if f.key == "MEMCG_OOM").evidence.values["kills"][0]
    assert f"OOM-killed {victim['comm']} (pid {victim['pid']})" in " ".join(line.strip() for line in lines[:5])
    assert any("CRIT MEMCG_OOM:" in line for line in lines)
    assert any(line.strip().startswith("what to do:") for line in lines)
    assert f"  bundle: {path}" in lines and any(f"report {path} -o report.html" in line for line in lines)


def test_plain_drops_markup():
    assert plain("**CRIT.** see `x` and [OOM kills](#oom)") == "CRIT. see x and OOM kills"


def test_report_on_a_terminal_prints_the_summary(monkeypatch):
    out = _Tty()
    monkeypatch.setattr("sys.stdout", out)
    assert main(["report", SAMPLE]) == 0
    assert out.getvalue().startswith("snapcollect: CRIT: ") and "# Memory report" not in out.getvalue()


def test_report_off_a_terminal_prints_markdown(capsys):
    assert main(["report", SAMPLE]) == 0
    assert capsys.readouterr().out.startswith('<a id="top"></a>')


def test_dash_or_format_on_a_terminal_still_prints_the_report(monkeypatch):
    for args in (["-o", "-"], ["--format", "md"]):
        out = _Tty()
        out.buffer = io.BytesIO()
        monkeypatch.setattr("sys.stdout", out)
        assert main(["report", SAMPLE, *args]) == 0
        assert out.getvalue().startswith('<a id="top"></a>'), args
