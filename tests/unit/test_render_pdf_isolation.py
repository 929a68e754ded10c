"""A PDF render starts no program and writes only where it should; missing libraries: one line.

The render runs in a child process with fake ``ldconfig``, ``gcc``, ``cc``,
``ld``, ``collect2`` and ``fc-list`` first in $PATH (each records that it
ran), a private TMPDIR and a fresh HOME (so matplotlib builds its font
list, the step that runs fc-list), and an audit hook recording every
program started (absolute paths such as /sbin/ldconfig included), every
temporary file or directory and every file opened for writing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fixture_files import BUNDLE

FAKES = ("ldconfig", "gcc", "cc", "ld", "collect2", "fc-list")

DRIVER = r"""
import json, os, sys
events = []
def hook(ev, args):
    if ev in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.fork",
              "os.forkpty", "pty.spawn"):
        events.append(["run", ev, repr(args)[:200]])
    elif ev in ("tempfile.mkstemp", "tempfile.mkdtemp"):
        events.append(["temp", ev, os.fsdecode(args[0])])
    elif ev == "open" and isinstance(args[0], (str, bytes)):
        mode, flags = args[1], args[2]
        # open() gives a mode string; os.open gives None and the flags.
        if (mode and any(c in mode for c in "wax+")) or (
                mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            events.append(["write", ev, os.path.abspath(os.fsdecode(args[0]))])
sys.addaudithook(hook)
log, argv = sys.argv[1], sys.argv[2:]
from snapcollect.cli import main
code = main(argv)
events = list(events)
hook.__code__ = (lambda ev, args: None).__code__     # stop recording: the log itself is not the render's
with open(log, "w") as fh:
    json.dump({"code": code, "events": events}, fh)
"""

MISSING_LIBS = r"""
import sys
import cffi

def dlopen(self, name, flags=0):
    # cffi's message on a host without pango (a minimal Debian image)
    raise OSError(f"cannot load library '{name}': {name}: cannot open shared object file: "
                  "No such file or directory")

cffi.FFI.dlopen = dlopen
from snapcollect.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _fake_bin(tmp_path) -> tuple[str, str]:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    ran = tmp_path / "ran.log"
    for name in FAKES:
        script = fake / name
        script.write_text(f"#!/bin/sh\necho {name} \"$@\" >> {ran}\nexit 1\n")
        script.chmod(0o755)
    return str(fake), str(ran)


def test_pdf_render_starts_no_program_and_writes_only_where_it_should(tmp_path):
    fake, ran = _fake_bin(tmp_path)
    private_tmp, home, out_dir = tmp_path / "tmp", tmp_path / "home", tmp_path / "out"
    for d in (private_tmp, home, out_dir):
        d.mkdir()
    log = tmp_path / "events.json"
    env = dict(os.environ, PATH=f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}", TMPDIR=str(private_tmp),
               HOME=str(home))
    env.pop("MPLCONFIGDIR", None)
    env.pop("XDG_CACHE_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    out = out_dir / "r.pdf"
    # Run in the output directory: the audit event of an open relative to a
    # directory descriptor names only the file, and so resolves there.
    p = subprocess.run([sys.executable, "-c", DRIVER, str(log), "report", BUNDLE, "-o", str(out)], env=env,
                       cwd=out_dir, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    result = json.loads(log.read_text())
    assert result["code"] == 0
    assert out.read_bytes().startswith(b"%PDF-")

    assert not os.path.exists(ran), open(ran).read()
    started = [e for e in result["events"] if e[0] == "run"]
    assert started == []
    temps = [e[2] for e in result["events"] if e[0] == "temp"]
    assert all(t.startswith(str(private_tmp) + os.sep) for t in temps), temps
    # Written: the report (through a fresh name in its directory), and
    # matplotlib's own font list in the user's cache on first use.
    allowed = (str(out_dir) + os.sep, str(private_tmp) + os.sep, str(home / ".cache" / "matplotlib") + os.sep)
    writes = [e[2] for e in result["events"] if e[0] == "write"]
    assert all(w.startswith(allowed) for w in writes), writes
    assert any(w.startswith(str(out_dir) + os.sep + ".r.pdf.") for w in writes), writes
    assert os.listdir(private_tmp) == []
    assert os.listdir(out_dir) == ["r.pdf"]
    # (No check of /tmp itself: the audit events above name every temporary
    # and every write, and /tmp is shared with whatever else renders a PDF.)


def test_missing_pdf_libraries_one_line_naming_the_packages(tmp_path):
    out = tmp_path / "r.pdf"
    p = subprocess.run([sys.executable, "-c", MISSING_LIBS, "report", BUNDLE, "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert p.stdout == ""                    # weasyprint's banner does not reach stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    line = lines[0]
    assert line.startswith("snapcollect: PDF needs")
    assert "apt install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b" in line
    assert ".md, .html and .json reports work" in line
    assert "libgobject-2.0" in line          # what failed to load
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_other_formats_work_without_pdf_libraries(tmp_path, fmt):
    out = tmp_path / f"r.{fmt}"
    p = subprocess.run([sys.executable, "-c", MISSING_LIBS, "report", BUNDLE, "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > 1000


def test_missing_weasyprint_package(tmp_path):
    code = ("import sys\nsys.modules['weasyprint'] = None\n"      # import weasyprint -> ImportError
            "from snapcollect.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    p = subprocess.run([sys.executable, "-c", code, "report", BUNDLE, "-o", str(tmp_path / "r.pdf")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install weasyprint" in lines[0] and "Traceback" not in p.stderr
