"""`snapcollect report` errors: one line, non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from render_sample import sample_report

from snapcollect.report.render import ReportOutputError, ReportUsageError, choose_format, render_to


def _run(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "snapcollect", "report", *args], capture_output=True, text=True,
                       cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("snapcollect: ")
    return lines[0]


def test_format_from_extension_or_option():
    assert choose_format(None, None) == "md"
    assert choose_format("-", None) == "md"
    assert choose_format("r.PDF", None) == "pdf"
    assert choose_format("r.htm", None) == "html"
    assert choose_format("r.json", None) == "json"
    assert choose_format("r.txt", "html") == "html"
    with pytest.raises(ReportUsageError, match=r"\.md, \.html, \.pdf, \.json"):
        choose_format("r.txt", None)
    with pytest.raises(ReportUsageError):
        choose_format("report", None)


def test_missing_bundle(tmp_path):
    code, out, err = _run(str(tmp_path / "nope.tar.zst"))
    assert code == 2 and out == ""
    assert "no such file" in _one_line_error(err)


def test_not_a_bundle(tmp_path):
    junk = tmp_path / "junk.tar.zst"
    junk.write_text("hello\n")
    code, _, err = _run(str(junk), "-o", str(tmp_path / "r.html"))
    assert code == 2
    assert "not a snapcollect bundle" in _one_line_error(err)
    assert not (tmp_path / "r.html").exists()


def test_unknown_extension_lists_valid_ones(tmp_path):
    code, _, err = _run(str(tmp_path / "whatever.tar.zst"), "-o", str(tmp_path / "r.docx"))
    assert code == 2
    line = _one_line_error(err)
    assert "'.docx'" not in line and ".docx" in line and ".md, .html, .pdf, .json" in line


def test_output_directory_missing(tmp_path):
    code, _, err = _run(str(tmp_path / "b.tar.zst"), "-o", str(tmp_path / "no" / "such" / "r.pdf"))
    assert code == 1
    assert "does not exist" in _one_line_error(err)


def test_output_is_a_directory(tmp_path):
    code, _, err = _run(str(tmp_path / "b.tar.zst"), "-o", str(tmp_path))
    assert code != 0
    _one_line_error(err)


@pytest.mark.parametrize("fmt", ["md", pytest.param("html", marks=pytest.mark.report_extra), "json"])
def test_unwritable_output_one_line(fmt):
    # /sys refuses new files even to root; os.access cannot tell beforehand.
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("needs sysfs mounted at /sys")
    with pytest.raises(ReportOutputError, match=r"^/sys/.*: cannot (write|create)"):
        render_to(sample_report(), fmt, f"/sys/report.{fmt}")
    assert not os.path.exists(f"/sys/report.{fmt}")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    out = tmp_path / "r.json"

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    # The data is written to a fresh name, then linked (or renamed) in place.
    monkeypatch.setattr(os, "link", boom)
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(ReportOutputError, match="No space left on device"):
        render_to(sample_report(), "json", str(out))
    assert os.listdir(tmp_path) == []
    with pytest.raises(ReportOutputError, match="No space left on device"):
        render_to(sample_report(), "md", str(tmp_path / "r.md"))
    assert os.listdir(tmp_path) == ["r-charts"] and os.listdir(tmp_path / "r-charts") == []


@pytest.mark.report_extra
def test_each_format_written(tmp_path):
    for fmt in ("md", "html", "json", "pdf"):
        out = tmp_path / f"r.{fmt}"
        render_to(sample_report(), fmt, str(out))
        assert out.stat().st_size > 1000
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
