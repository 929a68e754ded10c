"""Classic commands (free, vmstat -s, swapon, numastat, pmap, dmesg).

Their verbatim output sits beside the /proc text it was computed from, so
the report can show what the on-call already knows and cross-check it.
Commands run with LC_ALL=C (stable number formats), in their own process
group (a Ctrl-C at the terminal stops the collector, which then finishes
the bundle, not the commands), several at once, each with a timeout and a
cap on its output. A command that is not installed is ``missing``; one
that overruns is killed and recorded as ``timeout``.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from snapcollect.collect import own_processes
from snapcollect.collect.sources import Outcome

# Debian package that provides each command: named in "missing" reasons.
PACKAGES = {"free": "procps", "vmstat": "procps", "pmap": "procps", "swapon": "util-linux",
            "dmesg": "util-linux", "numastat": "numactl"}

# Non-root PATHs often lack the sbin directories where swapon lives.
_EXTRA_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

DEFAULT_CAP = 1024 * 1024


def command_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    path = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(path + [p for p in _EXTRA_PATH if p not in path])
    # Tools that page or colour their output must not do it here.
    env.pop("PAGER", None)
    env["TERM"] = "dumb"
    return env


def which(name: str) -> str | None:
    return shutil.which(name, path=command_env()["PATH"])


@dataclass
class Command:
    """One command to run: artifact name, argv, output cap."""

    name: str
    argv: list[str]
    cap: int = DEFAULT_CAP
    outcome: Outcome | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    out: bytearray = field(default_factory=bytearray, repr=False)
    err: bytearray = field(default_factory=bytearray, repr=False)
    cut: bool = False


def _finish(cmd: Command) -> Outcome:
    rc = cmd.proc.returncode
    data = bytes(cmd.out)
    if rc != 0:
        first = bytes(cmd.err).decode("utf-8", "replace").strip().splitlines()
        msg = first[0] if first else ""
        if rc < 0:
            reason = f"{cmd.argv[0]} killed by {signal.Signals(-rc).name}"
        else:
            reason = f"{' '.join(cmd.argv)} exited with status {rc}"
        if msg:
            reason += f": {msg}"
        low = msg.lower()
        status = "denied" if ("permission denied" in low or "not permitted" in low) else "error"
        return Outcome(status, data, reason)
    if cmd.cut:
        return Outcome("truncated", data, f"output cut at the size cap of {cmd.cap} bytes")
    return Outcome("ok", data)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass


def run_commands(cmds: list[Command], deadline_mono: float, *, parallel: int = 6) -> list[Command]:
    """Run commands, at most ``parallel`` at a time, all done by the deadline.

    Fills ``cmd.outcome`` for every command and returns the list.
    """
    env = command_env()
    pending = list(cmds)
    running: dict[int, Command] = {}
    sel = selectors.DefaultSelector()
    try:
        while pending or running:
            while pending and len(running) < parallel:
                cmd = pending.pop(0)
                exe = shutil.which(cmd.argv[0], path=env["PATH"])
                if exe is None:
                    pkg = PACKAGES.get(cmd.argv[0])
                    cmd.outcome = Outcome("missing", b"", f"{cmd.argv[0]} not installed"
                                          + (f" (Debian package {pkg})" if pkg else ""))
                    continue
                if time.monotonic() >= deadline_mono:
                    cmd.outcome = Outcome("timeout", b"", "not run: no time left before the deadline")
                    continue
                try:
                    cmd.proc = subprocess.Popen([exe, *cmd.argv[1:]], stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                env=env, close_fds=True,
                                                # Own process group so a timeout kills the whole
                                                # command (process_group= needs Python 3.11).
                                                start_new_session=True)
                except OSError as exc:
                    cmd.outcome = Outcome("error", b"", f"cannot run {cmd.argv[0]}: {exc.strerror}")
                    continue
                own_processes.register(cmd.proc.pid)
                running[cmd.proc.pid] = cmd
                for stream in (cmd.proc.stdout, cmd.proc.stderr):
                    os.set_blocking(stream.fileno(), False)
                    sel.register(stream, selectors.EVENT_READ, cmd)
            if not running:
                break
            left = deadline_mono - time.monotonic()
            if left <= 0:
                for cmd in running.values():
                    _kill(cmd.proc)
                    cmd.outcome = Outcome("timeout", bytes(cmd.out),
                                          f"{' '.join(cmd.argv)} did not finish before the deadline")
                    for stream in (cmd.proc.stdout, cmd.proc.stderr):
                        # One of the two may have reached EOF (and been
                        # unregistered and closed) already.
                        if not stream.closed:
                            sel.unregister(stream)
                            stream.close()
                running.clear()
                break
            for key, _ in sel.select(timeout=min(left, 0.2)):
                cmd = key.data
                stream = key.fileobj
                try:
                    chunk = os.read(stream.fileno(), 65536)
                except BlockingIOError:
                    continue
                if chunk:
                    buf = cmd.out if stream is cmd.proc.stdout else cmd.err
                    room = (cmd.cap if buf is cmd.out else 64 * 1024) - len(buf)
                    if len(chunk) > room:
                        chunk = chunk[:max(room, 0)]
                        if buf is cmd.out:
                            cmd.cut = True
                    buf.extend(chunk)
                    if cmd.cut:
                        # Enough: stop the command rather than drain it.
                        _kill(cmd.proc)
                    continue
                sel.unregister(stream)
                stream.close()
                if cmd.proc.stdout.closed and cmd.proc.stderr.closed:
                    try:
                        cmd.proc.wait(timeout=max(0.0, deadline_mono - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        _kill(cmd.proc)
                    if cmd.cut and cmd.proc.returncode and cmd.proc.returncode < 0:
                        cmd.proc.returncode = 0     # killed by us for the cap
                    cmd.outcome = _finish(cmd)
                    del running[cmd.proc.pid]
    finally:
        sel.close()
    for cmd in cmds:
        if cmd.outcome is None:     # still queued when the deadline came
            cmd.outcome = Outcome("timeout", b"", "not run: no time left before the deadline")
    return cmds


def run_one(argv: list[str], deadline_mono: float, cap: int = DEFAULT_CAP) -> Outcome:
    cmd = Command(argv[0], argv, cap)
    run_commands([cmd], deadline_mono)
    return cmd.outcome
