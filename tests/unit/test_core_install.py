"""The core install (standard library + zstandard) and its one-line errors.

A module is made "not installed" in a child interpreter by putting None in
sys.modules, which makes ``import`` raise ModuleNotFoundError and
``importlib.util.find_spec`` return None, as on a host without it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from snapcollect.dependencies import missing_module_line

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "samples", "sample-memcg-oom.tar.zst")


def _cli_without(modules: list[str], *args: str) -> subprocess.CompletedProcess:
    code = ("import sys\n"
            f"for m in {modules!r}: sys.modules[m] = None\n"
            "from snapcollect.cli import main\n"
            f"raise SystemExit(main({list(args)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_missing_module_lines_name_the_package():
    assert "python3-zstandard" in missing_module_line("zstandard")
    assert "dnf install python3-zstandard" in missing_module_line("zstandard")
    assert "snapcollect[report]" in missing_module_line("matplotlib.figure")
    assert "snapcollect[report]" in missing_module_line("weasyprint")
    assert missing_module_line("nosuchmodule") is None
    assert missing_module_line(None) is None


def test_show_without_zstandard_is_one_line():
    p = _cli_without(["zstandard"], "show", SAMPLE)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("snapcollect: ") and "apt-get install python3-zstandard" in lines[0]


def test_html_without_the_report_extra_is_one_line(tmp_path):
    p = _cli_without(["jinja2", "markupsafe", "markdown_it"], "report", SAMPLE, "-o", str(tmp_path / "r.html"))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "snapcollect[report]" in lines[0]
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_markdown_and_json_reports_need_no_extra(tmp_path, fmt):
    out = tmp_path / f"r.{fmt}"
    p = _cli_without(["matplotlib", "numpy", "jinja2", "markupsafe", "markdown_it", "weasyprint"],
                     "report", SAMPLE, "-o", str(out))
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert len(text) > 5000
    if fmt == "md":
        # Charts need matplotlib and say so; the flame graph is drawn without it.
        assert "not drawn: matplotlib is not installed" in text
        charts = os.listdir(tmp_path / "r-charts")
        assert charts == ["page-fault-flamegraph.svg"]


def test_zstandard_too_old_to_read_is_one_line():
    from snapcollect.dependencies import reading_problem

    assert "0.15.2 can collect but not read" in reading_problem("0.15.2")
    assert reading_problem("0.17.0.dev1") is not None
    assert reading_problem("0.18.0") is None and reading_problem("0.23.0") is None
    code = ("import zstandard; zstandard.__version__ = '0.15.2'\n"
            "from snapcollect.cli import main\n"
            f"raise SystemExit(main(['show', {SAMPLE!r}]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs 0.18 or newer" in lines[0], p.stderr
