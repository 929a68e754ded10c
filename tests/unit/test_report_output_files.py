"""Report files: the bundle's mode (0600) unless --mode, no symlink followed, no overwrite without --force."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from fixture_files import BUNDLE
from render_sample import sample_report

from snapcollect.report.output_files import ReportOutputError, dir_mode, make_dir, open_dir, parse_mode, write_new
from snapcollect.report.render import render_to


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _run(*args):
    p = subprocess.run([sys.executable, "-m", "snapcollect", "report", *map(str, args)], capture_output=True,
                       text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def lax_umask():
    old = os.umask(0)
    yield
    os.umask(old)


# -- modes --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_default_mode_is_the_bundles_whatever_the_umask(tmp_path, lax_umask, fmt):
    out = tmp_path / f"r.{fmt}"
    render_to(sample_report(), fmt, str(out))
    assert _mode(out) == 0o600
    if fmt == "md":
        charts = tmp_path / "r-charts"
        assert _mode(charts) == 0o700
        svgs = list(charts.iterdir())
        assert svgs and all(_mode(p) == 0o600 for p in svgs)


def test_mode_asked_for(tmp_path):
    old = os.umask(0o077)          # the mode asked for is the mode given
    try:
        render_to(sample_report(), "md", str(tmp_path / "r.md"), mode=0o644)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "r.md") == 0o644
    assert _mode(tmp_path / "r-charts") == 0o755
    assert {_mode(p) for p in (tmp_path / "r-charts").iterdir()} == {0o644}


def test_parse_mode():
    assert parse_mode("600") == parse_mode("0600") == parse_mode("0o600") == 0o600
    assert parse_mode("644") == 0o644 and dir_mode(0o640) == 0o750
    for bad in ("rw", "999", "1777", "4755", "044", "-1"):
        with pytest.raises(ValueError):
            parse_mode(bad)


def test_cli_mode_and_bad_mode(tmp_path):
    code, _, err = _run(BUNDLE, "-o", tmp_path / "r.json", "--mode", "640")
    assert code == 0, err
    assert _mode(tmp_path / "r.json") == 0o640
    code, _, err = _run(BUNDLE, "-o", tmp_path / "s.json", "--mode", "u+rw")
    assert code == 2 and "octal" in err and "Traceback" not in err
    assert not (tmp_path / "s.json").exists()


# -- no overwrite without --force ---------------------------------------------------------

def test_existing_report_kept_without_force(tmp_path):
    out = tmp_path / "r.json"
    out.write_text("mine\n")
    code, _, err = _run(BUNDLE, "-o", out)
    assert code == 1
    line = _one_line(err)
    assert str(out) in line and "--force" in line
    assert out.read_text() == "mine\n"
    assert os.listdir(tmp_path) == ["r.json"]
    code, _, err = _run(BUNDLE, "-o", out, "--force")
    assert code == 0, err
    assert out.read_text().startswith("{") and _mode(out) == 0o600


def test_existing_charts_folder_kept_without_force(tmp_path):
    (tmp_path / "r-charts").mkdir()
    (tmp_path / "r-charts" / "keep.txt").write_text("x")
    with pytest.raises(ReportOutputError, match="r-charts: already exists; use --force"):
        render_to(sample_report(), "md", str(tmp_path / "r.md"))
    assert not (tmp_path / "r.md").exists()
    assert os.listdir(tmp_path / "r-charts") == ["keep.txt"]
    render_to(sample_report(), "md", str(tmp_path / "r.md"), force=True)
    assert (tmp_path / "r.md").exists() and len(os.listdir(tmp_path / "r-charts")) > 1


def test_replacing_twice_with_force(tmp_path):
    for _ in range(2):
        render_to(sample_report(), "md", str(tmp_path / "r.md"), force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r-charts", "r.md"]


# -- symlinks are never followed ----------------------------------------------------

def test_symlink_at_the_report_name(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "r.html"
    out.symlink_to(victim)
    with pytest.raises(ReportOutputError, match="already exists"):
        render_to(sample_report(), "html", str(out))
    assert victim.read_text() == "precious\n" and out.is_symlink()
    render_to(sample_report(), "html", str(out), force=True)
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and out.read_text().startswith("<!DOCTYPE html>")


def test_dangling_symlink_at_the_report_name(tmp_path):
    target = tmp_path / "would-be-created"
    (tmp_path / "r.json").symlink_to(target)
    with pytest.raises(ReportOutputError, match="already exists"):
        render_to(sample_report(), "json", str(tmp_path / "r.json"))
    assert not target.exists()


def test_symlink_planted_after_the_check_is_not_followed(tmp_path):
    # The early check has passed; a symlink appears before the file is placed.
    target = tmp_path / "target"
    fd = open_dir(str(tmp_path))
    try:
        (tmp_path / "late.md").symlink_to(target)
        with pytest.raises(ReportOutputError, match="already exists"):
            write_new(fd, "late.md", b"data", shown="late.md")
    finally:
        os.close(fd)
    assert not target.exists()
    assert sorted(os.listdir(tmp_path)) == ["late.md"]


def test_charts_symlink_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "r-charts").symlink_to(elsewhere)
    with pytest.raises(ReportOutputError, match="r-charts"):
        render_to(sample_report(), "md", str(tmp_path / "r.md"))
    with pytest.raises(ReportOutputError, match="r-charts: cannot use the charts folder: is a symlink"):
        render_to(sample_report(), "md", str(tmp_path / "r.md"), force=True)
    assert os.listdir(elsewhere) == []
    assert not (tmp_path / "r.md").exists()


def test_cli_charts_symlink(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "r-charts").symlink_to(elsewhere)
    code, _, err = _run(BUNDLE, "-o", tmp_path / "r.md", "--force")
    assert code == 1 and "symlink" in _one_line(err)
    assert os.listdir(elsewhere) == []


def test_svg_symlink_inside_charts_folder_is_replaced_not_followed(tmp_path):
    render_to(sample_report(), "md", str(tmp_path / "r.md"))
    charts = tmp_path / "r-charts"
    svg = sorted(charts.iterdir())[0]
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    svg.unlink()
    svg.symlink_to(victim)
    render_to(sample_report(), "md", str(tmp_path / "r.md"), force=True)
    assert victim.read_text() == "precious\n"
    assert not svg.is_symlink() and svg.read_text().lstrip().startswith("<")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_charts_folder_of_another_user_is_refused(tmp_path):
    (tmp_path / "r-charts").mkdir()
    os.chown(tmp_path / "r-charts", 65534, 65534)
    fd = open_dir(str(tmp_path))
    try:
        with pytest.raises(ReportOutputError, match="belongs to another user"):
            make_dir(fd, "r-charts", force=True)
    finally:
        os.close(fd)
