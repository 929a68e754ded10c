"""Processes whose name, executable path and arguments are not UTF-8, collected for real.

One process renames itself with ``prctl(PR_SET_NAME, b"idle\\xff")``;
another runs through a symlink whose file name holds Latin-1 bytes (so its
comm and cmdline have them) and gets a Latin-1 argument. Both hold enough
memory to be among the top processes, so their detail (cmdline, smaps)
is read too. The bundle must keep the bytes exactly, and every report
format must render, showing them as ``\\xNN``. A second, BPF collection
has a process named ``idle\\xff`` taking page faults during the window:
its name must reach the fault stacks and the flame graph the same way.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from snapcollect.bundle import open_bundle

pytestmark = pytest.mark.live

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "snapcollect"]
TAG = f"render{os.getpid()}"
HOLD_MIB = 256

HOLDER = (f"import ctypes, sys, time\n"
          f"name = sys.argv[1].encode('utf-8', 'surrogateescape')\n"
          f"if name:\n"
          f"    ctypes.CDLL(None).prctl(15, name, 0, 0, 0)   # PR_SET_NAME\n"
          f"buf = bytearray({HOLD_MIB} << 20)\n"
          f"for i in range(0, len(buf), 4096):\n"
          f"    buf[i] = 1\n"
          f"print('ready', flush=True)\n"
          f"time.sleep(600)\n")


# Takes page faults until killed (the BPF fault sampler sees 1 in 128).
FAULTER = ("import ctypes, mmap\n"
           "ctypes.CDLL(None).prctl(15, b'idle\\xff', 0, 0, 0)\n"
           "print('ready', flush=True)\n"
           "while True:\n"
           "    m = mmap.mmap(-1, 32 << 20)\n"
           "    for i in range(0, len(m), 4096):\n"
           "        m[i] = 1\n"
           "    m.close()\n")


def _start(argv: list[bytes]) -> subprocess.Popen:
    p = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ready"
    return p


@pytest.fixture(scope="module")
def collected():
    if os.geteuid() != 0:
        pytest.skip("needs root (runs as root on the CI machine)")
    work = tempfile.mkdtemp(prefix=f"snapcollect-{TAG}-")
    python = os.path.realpath(sys.executable)
    latin = os.path.join(os.fsencode(work), b"caf\xe9-" + TAG.encode())
    os.symlink(python, latin)
    # A script file, not -c: the report cuts a command line at 200 characters.
    script = os.path.join(work, "hold.py")
    with open(script, "w") as fh:
        fh.write(HOLDER)
    procs = []
    try:
        procs.append(_start([os.fsencode(python), os.fsencode(script), b"idle\xff"]))
        procs.append(_start([latin, os.fsencode(script), b"", b"--label=gr\xfc\xdfe"]))
        run = subprocess.run([*CLI, "collect", "-d", "2", "--no-bpf", "-q", "-o", work], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        yield run.stdout.strip().splitlines()[-1], procs, work
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def test_bundle_keeps_the_bytes(collected):
    path, (idle, latin), _ = collected
    b = open_bundle(path)
    top = {t["pid"]: t["comm"].encode("utf-8", "surrogateescape") for t in json.loads(b.text("procs/top"))}
    assert top.get(idle.pid) == b"idle\xff", top
    assert top.get(latin.pid) == (b"caf\xe9-" + TAG.encode())[:15], top
    cmdline = b.data(f"procs/{latin.pid}/cmdline")
    assert b"caf\xe9-" + TAG.encode() in cmdline and b"--label=gr\xfc\xdfe\0" in cmdline
    stat_lines = b.series("procs")[-1].text
    assert f"{idle.pid} (idle\udcff) " in stat_lines


@pytest.mark.parametrize("fmt", ["md", "html", "json", "pdf"])
def test_every_format_shows_the_bytes_escaped(collected, fmt):
    path, (idle, latin), work = collected
    out = os.path.join(work, f"report-{TAG}.{fmt}")
    run = subprocess.run([*CLI, "report", path, "-o", out], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    if fmt == "pdf":
        pypdf = pytest.importorskip("pypdf", reason="pypdf is a test dependency (pip install -e '.[test]')")
        with open(out, "rb") as fh:
            text = " ".join(p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(fh.read())).pages)
    else:
        with open(out, encoding="utf-8") as fh:      # strict: the file is valid UTF-8
            text = fh.read()
    if fmt == "json":
        text = json.dumps(json.loads(text), ensure_ascii=False).replace("\\\\", "\\")
    if fmt == "md":
        text = text.replace("\\\\", "\\")            # Markdown escapes the backslash itself
    assert "idle\\xff" in text
    assert f"caf\\xe9-{TAG}"[:18] in text
    if fmt != "pdf":         # the PDF's pmap sections may wrap the long command line
        assert "--label=gr\\xfc\\xdfe" in text


def test_bpf_fault_stacks_keep_the_name(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (runs as root on the CI machine)")
    faulter = _start([os.fsencode(sys.executable), b"-c", FAULTER.encode()])
    try:
        # Long enough that compiling the BPF programs fits in the run on a
        # busy two-core machine (the compile may take the first seconds).
        run = subprocess.run([*CLI, "collect", "-d", "10", "-q", "-o", str(tmp_path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    finally:
        faulter.kill()
        faulter.wait()
    assert run.returncode == 0, run.stderr
    path = run.stdout.strip().splitlines()[-1]
    b = open_bundle(path)
    status, reason = b.status("bpf/fault_stacks.folded")
    if status in ("unavailable", "denied") and "did not finish" not in (reason or ""):
        pytest.skip(f"BPF fault stacks not available on this host: {reason}")
    assert status == "ok", reason
    assert b"idle\xff;" in b.data("bpf/fault_stacks.folded")
    md = tmp_path / f"report-{TAG}.md"
    js = tmp_path / f"report-{TAG}.json"
    for out in (md, js):
        r = subprocess.run([*CLI, "report", path, "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    svgs = [p.read_text(encoding="utf-8") for p in (tmp_path / f"report-{TAG}-charts").glob("*.svg")]
    assert any("idle\\xff" in svg for svg in svgs)
    doc = json.loads(js.read_text(encoding="utf-8"))
    folded = [frame for sec in doc["sections"] for blk in _blocks(sec) if blk["type"] == "flamegraph"
              for frame, _ in blk["folded"]]
    assert any(f.startswith("idle\\xff;") for f in folded), folded[:5]


def _blocks(section):
    yield from section["blocks"]
    for sub in section["subsections"]:
        yield from _blocks(sub)
