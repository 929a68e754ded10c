"""Start-up of a real collection: signals at any moment, bundle names, -o.

A signal from 0 to 200 ms after the collector starts, SIGINT and SIGTERM,
many times: never a traceback, the documented exit code (130, 143), and
either no bundle with one line saying so or an incomplete bundle that
says it was stopped by the signal. The clock starts when the collector's
program is exec'd: a launcher blocks the signals and execs it, so that one
sent during the interpreter's own start-up (site, before any line of
snapcollect runs, which no Python program can cover) is delivered when
snapcollect installs its handler instead, as it would be to a program
started with the signals blocked. Also: five collections started together
into one directory give five bundles; planted files at every name the
collector may draw do not stop it; --quiet prints nothing on stderr; a
missing -o directory is an error naming it.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from snapcollect.bundle import names, open_bundle

pytestmark = pytest.mark.live

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "snapcollect"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs as root on the CI machine)")

# Blocks the signals, tells the test (one byte on the fd in argv[1]) and
# execs the collector.
LAUNCHER = ("import os, signal, sys\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])\n"
            "fd = int(sys.argv[1]); os.write(fd, b'x'); os.close(fd)\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'snapcollect', *sys.argv[2:]])\n")


def _launch(args: list[str]) -> subprocess.Popen:
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(w), *args], cwd=ROOT, pass_fds=(w,),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(w)
    assert os.read(r, 1) == b"x"       # the exec is next
    os.close(r)
    return p


def _bundles(d) -> list[str]:
    return sorted(glob.glob(os.path.join(str(d), "*" + names.SUFFIX)) +
                  glob.glob(os.path.join(str(d), "*" + names.SUFFIX + names.PARTIAL_SUFFIX)))


@needs_root
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_start_up_never_gives_a_traceback(tmp_path, sig, code):
    outcomes = {"no bundle": 0, "incomplete bundle": 0}
    # 0 to 200 ms, then later until a run had created its bundle when the
    # signal came (how long start-up takes depends on the machine's load).
    delays = [0, 0, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 450, 700, 1000, 1500, 2500]
    for i, delay_ms in enumerate(delays):
        if delay_ms > 200 and outcomes["incomplete bundle"]:
            break
        d = tmp_path / f"run{i}"
        d.mkdir()
        p = _launch(["collect", "-d", "1", "--no-bpf", "-q", "-o", str(d)])
        time.sleep(delay_ms / 1000)
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        where = f"{signal.Signals(sig).name} at {delay_ms} ms: rc={p.returncode} stderr={err!r}"
        assert "Traceback" not in err and "Traceback" not in out, where
        assert p.returncode == code, where
        found = _bundles(d)
        if not found:
            outcomes["no bundle"] += 1
            assert len(err.strip().splitlines()) == 1 and "stopped by" in err, where
            assert re.search(r"no bundle written|nothing done", err), where
        else:
            outcomes["incomplete bundle"] += 1
            assert len(found) == 1, where
            b = open_bundle(found[0])
            assert not b.complete and b.stopped_by == "signal", where
            assert signal.Signals(sig).name in b.manifest["stop_reason"], where
    # Both ends were reached: the early signals stopped runs before a bundle existed.
    assert outcomes["no bundle"] >= 1 and outcomes["incomplete bundle"] >= 1, outcomes


@needs_root
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_right_after_the_entry_point_is_imported(tmp_path, sig, code):
    # No launcher: python -X importtime says on stderr when snapcollect.cli
    # has been imported; the signal follows at once, while main() parses
    # the arguments and imports the collector (before the collector's own
    # set-up, which the test above reaches).
    for i, delay_ms in enumerate([0, 0, 1, 2, 3, 5, 8, 12, 20, 30]):
        d = tmp_path / f"run{i}"
        d.mkdir()
        p = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "snapcollect", "collect", "-d", "1",
                              "--no-bpf", "-q", "-o", str(d)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        seen = []
        for line in p.stderr:
            seen.append(line)
            if line.rstrip().endswith("| snapcollect.cli"):
                break
        time.sleep(delay_ms / 1000)
        p.send_signal(sig)
        out, rest = p.communicate(timeout=60)
        err = "".join(ln for ln in seen + rest.splitlines(keepends=True) if not ln.startswith("import time:"))
        where = f"{signal.Signals(sig).name} {delay_ms} ms after the import: rc={p.returncode} stderr={err!r}"
        assert "Traceback" not in err, where
        assert p.returncode == code, where
        if not _bundles(d):
            assert len(err.strip().splitlines()) == 1 and "stopped by" in err, where


@needs_root
def test_quiet_prints_nothing_on_stderr(tmp_path):
    # BPF on: bcc and clang are the usual sources of stray warnings.
    p = subprocess.run([*CLI, "collect", "-d", "1", "-q", "-o", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert p.stdout.strip().splitlines()[-1] == _bundles(tmp_path)[0]


@needs_root
def test_five_collections_together_into_one_directory_give_five_bundles(tmp_path):
    procs = [subprocess.Popen([*CLI, "collect", "-d", "1", "--no-bpf", "-q", "--top", "1", "-o", str(tmp_path)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(5)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(rc == 0 for rc, _, _ in results), results
    paths = {out.strip().splitlines()[-1] for _, out, _ in results}
    assert len(paths) == 5 and sorted(paths) == _bundles(tmp_path)
    for path in paths:
        # Five at once on a small machine may run out of time for a phase
        # (then not complete); each still ran to its own deadline.
        b = open_bundle(path)
        assert b.stopped_by == "deadline" and b.manifest["ticks"] >= 1, b.manifest.get("stop_reason")


@needs_root
def test_planted_files_at_the_next_names_do_not_block_a_run(tmp_path):
    # Another user of a shared directory plants files (and a dangling
    # symlink) at every name of this second and the next, without the
    # random part, the way the old names were made: the run still succeeds.
    t = time.time()
    host = open("/proc/sys/kernel/hostname").read().strip()
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", host)
    planted = []
    for s in range(int(t), int(t) + 30):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(s))
        for name in (f"snapcollect-{host}-{stamp}Z{names.SUFFIX}",
                     f"snapcollect-{host}-{stamp}Z{names.SUFFIX}{names.PARTIAL_SUFFIX}"):
            path = tmp_path / name
            path.write_text("planted")
            planted.append(path)
    os.symlink("/nonexistent-redact-target", tmp_path / "snapcollect-planted-link.tar.zst.partial")
    p = subprocess.run([*CLI, "collect", "-d", "1", "--no-bpf", "-q", "--top", "1", "-o", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip().splitlines()[-1]
    assert open_bundle(path).complete
    assert re.fullmatch(rf"snapcollect-{re.escape(host)}-\d{{8}}T\d{{6}}\.\d{{3}}Z-[0-9a-f]{{8}}\.tar\.zst",
                        os.path.basename(path))
    assert all(pl.read_text() == "planted" for pl in planted)


def test_missing_output_directory_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "does" / "not" / "exist"
    p = subprocess.run([*CLI, "collect", "-d", "1", "--no-bpf", "-o", str(missing) + "/"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0 and str(missing) in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "does").exists()


@needs_root
def test_a_file_name_in_an_existing_directory_still_works(tmp_path):
    target = tmp_path / "name.tar.zst"
    p = subprocess.run([*CLI, "collect", "-d", "1", "--no-bpf", "-q", "--top", "1", "-o", str(target)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == str(target) and open_bundle(str(target)).complete
