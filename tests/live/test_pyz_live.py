"""The single file, dist/snapcollect.pyz, run for real on the host's Pythons.

Built into a temporary directory by scripts/build-pyz.py (what ``make
dist`` runs), then run as on-call would run it: ``python3 snapcollect.pyz
collect|show|doctor|report``, outside the source tree, on

- Python 3.9 and 3.13 (pyenv's, under ~/.pyenv/versions) with only
  zstandard installed (their .venv-core-<version>, scripts/core-venv.sh):
  a real collection without BPF;
- Debian's /usr/bin/python3 with python3-zstandard and python3-bpfcc: a
  real collection with BPF, whose C source is read from inside the zip.

A Python without zstandard gets one line naming the package; one older
than 3.9 gets one line saying which it needs.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

from snapcollect.bundle import open_bundle

pytestmark = [pytest.mark.live, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV = os.path.expanduser("~/.pyenv/versions")
SYSTEM_PYTHON = "/usr/bin/python3"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs as root on the CI machine)")


def _pyenv(minor: str) -> str | None:
    found = sorted(glob.glob(os.path.join(PYENV, f"{minor}.*", "bin", "python")))
    return found[-1] if found else None


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("pyz") / "snapcollect.pyz")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build-pyz.py"), out], check=True,
                   capture_output=True)
    return out


def _core_python(minor: str) -> str:
    base = _pyenv(minor)
    if base is None:
        pytest.skip(f"Python {minor} not installed under {PYENV}")
    got = subprocess.run([os.path.join(ROOT, "scripts", "core-venv.sh"), base], capture_output=True, text=True,
                         timeout=600)
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def _run(python: str, pyz: str, *args: str, cwd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # Outside the source tree and with no PYTHONPATH: only the zip and the
    # interpreter's own site-packages can be imported.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([python, pyz, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def _collect_show_doctor_report(python: str, pyz: str, work: str, *collect_args: str) -> dict:
    """A real collection with the single file, then show, doctor and the md/json reports."""
    c = _run(python, pyz, "collect", "-d", "2", *collect_args, "-o", work, cwd=work)
    assert c.returncode == 0, c.stderr
    assert "Traceback" not in c.stderr, c.stderr
    path = c.stdout.strip().splitlines()[-1]
    assert f"see: {python} {pyz} show {path}" in c.stderr or f"see: python3 {pyz} show {path}" in c.stderr, c.stderr
    b = open_bundle(path)
    assert b.complete and b.manifest["ticks"] >= 2
    assert b.series("procs") and b.text("proc/meminfo@start").startswith("MemTotal:")

    s = _run(python, pyz, "show", path, cwd=work)
    assert s.returncode == 0 and "complete:  yes" in s.stdout, s.stdout + s.stderr

    d = _run(python, pyz, "doctor", cwd=work)
    assert d.returncode == 0 and "core collection: works" in d.stdout, d.stdout + d.stderr

    js, md = os.path.join(work, "r.json"), os.path.join(work, "r.md")
    for out in (js, md):
        r = _run(python, pyz, "report", path, "-o", out, cwd=work)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    doc = json.load(open(js))
    assert doc["meta"]["complete"] is True and doc["sections"]
    text = open(md).read()
    assert "**Complete:** yes" in text and "## " in text
    return b.manifest


@needs_root
@pytest.mark.parametrize("minor", ["3.9", "3.13"])
def test_pyz_collects_on_python(minor, pyz, tmp_path):
    python = _core_python(minor)
    got = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == minor
    m = _collect_show_doctor_report(python, pyz, str(tmp_path), "--no-bpf")
    assert m["bpf"] == {"enabled": False, "reason": "--no-bpf"}


@needs_root
def test_pyz_collects_with_bpf_on_the_system_python(pyz, tmp_path):
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} not installed")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import zstandard, bcc"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} lacks python3-zstandard or python3-bpfcc: {probe.stderr.strip()[-200:]}")
    m = _collect_show_doctor_report(SYSTEM_PYTHON, pyz, str(tmp_path))
    assert m["bpf"]["enabled"] is True, m["bpf"]
    b = open_bundle(glob.glob(str(tmp_path / "*.tar.zst"))[0])
    assert b.data("bpf/fault_stacks.folded") is not None and b.data("bpf/tracepoint_formats")


def test_pyz_without_zstandard_is_one_line(pyz, tmp_path):
    base = _pyenv("3.9") or _pyenv("3.13")
    if base is None:
        pytest.skip(f"no pyenv Python under {PYENV}")
    if subprocess.run([base, "-c", "import zstandard"], capture_output=True).returncode == 0:
        pytest.skip(f"{base} has zstandard installed")
    r = _run(base, pyz, "show", os.path.join(ROOT, "samples", "sample-memcg-oom.tar.zst"), cwd=str(tmp_path))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install python3-zstandard" in lines[0], r.stderr


def test_pyz_refuses_an_old_python_in_one_line(pyz, tmp_path):
    old = _pyenv("3.8") or _pyenv("3.7")
    if old is None:
        pytest.skip(f"no Python older than 3.9 under {PYENV}")
    r = _run(old, pyz, "show", "x", cwd=str(tmp_path))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "needs Python 3.9 or newer" in r.stderr
