"""The collector's side of BPF: a supervised BPF process (collect/bpf/child.py).

The whole BPF session (compile and attach in a short-lived loader, event
intake, symbolisation, aggregation in the reader) runs in processes of
its own, so that bcc and LLVM never enter the collector's address space and an OOM kill or a crash of that
process costs the BPF artifacts only. A reader thread replays the
process's bundle-writer calls on the real writer as they arrive (the
writer is locked); see collect/bpf/wire.py for the protocol.

Nothing it does can break the run: a process that cannot start, is
killed, or overruns turns into ``bpf: {"enabled": false, "reason": ...}``
or an ``error`` note, and the artifacts it still meant to write are
recorded as missing, with the reason. Before starting it, the memory
left to the collector is checked (bpf_start.may_start). The window
waits for the start up to ``--bpf-start-timeout`` (bpf_start.outcome).
The process's peak RSS and CPU come from wait4(2), whatever its end, less
its loader's (a process of its own, which compiles: see bpf/reader.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import snapcollect
from snapcollect.collect import bpf_start, headroom, own_processes
from snapcollect.collect.bpf import capabilities, wire
from snapcollect.collect.protocols import BpfWriter, BpfProcessCommand, MeasureHeadroom, StopState

STDERR_TAIL = 300           # characters of the process's stderr kept for a reason
EXIT_WAIT_S = 1.0           # after "finished" or a kill, for the process to be reaped
SESSION_MARGIN_S = 2.0      # the session's own deadline, past --bpf-start-timeout


def bpf_process_command(out_fd: int) -> list[str]:
    """argv of the BPF process: this interpreter, this copy of snapcollect."""
    return [sys.executable, "-m", "snapcollect.collect.bpf.child", "--out-fd", str(out_fd)]


def _package_root() -> str:
    # the directory (or zip archive) that holds the snapcollect package
    return os.path.dirname(os.path.dirname(os.path.abspath(snapcollect.__file__)))


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


class BpfHook:
    manifest_key = "bpf"        # the manifest entry this process's outcome goes to

    def __init__(self, args, writer: BpfWriter, stop: StopState, command: BpfProcessCommand | None = None,
                 room: MeasureHeadroom | None = None):
        self.args = args
        # the collector's BundleWriter; the process's calls are replayed on it
        self.writer = writer
        self.stop = stop
        # looked up per run: tests put a stand-in process in their place
        self.command = command or bpf_process_command
        self.room = room or headroom.measure
        self.proc: subprocess.Popen | None = None
        self.enabled = False
        self.start_s: float | None = None
        self.outcome: bpf_start.Outcome | None = None
        self._to_child = None
        self._stderr = None
        self._reader: threading.Thread | None = None
        self._started = threading.Event()
        self._finished = threading.Event()
        self._detached = threading.Event()
        self._ended = threading.Event()
        self._pending: list[str] = []
        self._written: set[str] = set()
        self._bad_messages = 0
        self._reader_error: BaseException | None = None
        self._exit: str | None = None
        self._killed_by_us: str | None = None
        self.process_cost: dict = {}
        self._reap_lock = threading.Lock()

    # -- manifest --------------------------------------------------------

    def _note(self, **fields) -> None:
        self.writer.merge_manifest(self.manifest_key, **fields)

    def _disable(self, reason: str) -> None:
        self._note(enabled=False, reason=reason)

    # -- the process -----------------------------------------------------

    def _spawn(self, deadline_mono: float) -> str | None:
        r_out, w_out = os.pipe()
        self._stderr = tempfile.TemporaryFile(prefix="snapcollect-bpf-")
        env = dict(os.environ)
        root = _package_root()
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self.proc = subprocess.Popen(self.command(w_out), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._stderr, pass_fds=(w_out,), env=env, close_fds=True,
                                         # a session of its own: the terminal's Ctrl-C or hang-up
                                         # reaches the collector only, which then asks it to finish
                                         start_new_session=True)
        except OSError as exc:
            os.close(r_out)
            os.close(w_out)
            return f"the BPF process could not be started: {exc.strerror or exc}"
        finally:
            if self.proc is not None:
                os.close(w_out)
        # one of the collector's own: left out of the incident's processes
        own_processes.register(self.proc.pid)
        self._to_child = self.proc.stdin
        config = {"op": "config", "options": self.config_options(),
                  "clock": self.writer.manifest.get("clock"), "deadline_mono": deadline_mono,
                  "collector_pid": os.getpid()}
        self._reader = threading.Thread(target=self._read, args=(r_out,), name="bpf-reader", daemon=True)
        self._reader.start()
        self._send(config)
        return None

    def config_options(self) -> dict:
        """The options the process is sent."""
        return {k: getattr(self.args, k) for k in wire.OPTIONS}

    def _send(self, message: dict) -> bool:
        try:
            self._to_child.write(wire.encode(message))
            self._to_child.flush()
            return True
        except (OSError, ValueError):
            return False

    def _read(self, fd: int) -> None:
        """Reader thread: replay calls, note started/finished, reap the process at EOF."""
        buf = b""
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._handle(line)
        except BaseException as exc:  # noqa: BLE001 - e.g. DiskFull from the writer
            self._reader_error = exc
            self._kill("the bundle could not take the BPF data")
        finally:
            os.close(fd)
            self._reap()
            self._ended.set()

    def _handle(self, line: bytes) -> None:
        msg = wire.decode(line)
        if msg is None:
            self._bad_messages += 1
            return
        op = msg["op"]
        if op == "call":
            try:
                name = wire.apply_call(msg, self.writer)
            except (ValueError, TypeError):
                self._bad_messages += 1
                return
            if name:
                self._written.add(name)
        elif op == "started":
            self.enabled = bool(msg.get("enabled"))
            pending = msg.get("pending")
            self._pending = [p for p in pending if isinstance(p, str)] if isinstance(pending, list) else []
            self._started.set()
        elif op == "detached":
            self._detached.set()
        elif op == "finished":
            self._finished.set()
        else:
            self._bad_messages += 1

    def _reap(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self._close_stdin()
        deadline = time.monotonic() + EXIT_WAIT_S
        while True:
            with self._reap_lock:
                try:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    return
                if pid:
                    proc.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                    break
            if time.monotonic() > deadline:
                self._kill("it did not exit after its end of file")
            time.sleep(0.02)
        self._exit = _describe_exit(status)
        self.process_cost = self._reader_cost(proc.pid, usage)

    def _reader_cost(self, pid: int, usage) -> dict:
        """The BPF process's own peak RSS and CPU. wait4 counts the children
        it waited for too (its loader, ~180 MB for the compile): the peak is
        the one the process measured itself (VmHWM) when it lived to say it,
        and the loader's CPU, which it recorded apart, is taken off."""
        info = self.writer.manifest.get("bpf") or {}
        loader = info.get("loader") if isinstance(info.get("loader"), dict) else {}
        cpu = usage.ru_utime + usage.ru_stime
        own_peak = info.get("reader_peak_rss_kb")
        cost = {"pid": pid, "exit": self._exit,
                # ru_maxrss is kB on Linux
                "peak_rss_kb": own_peak if isinstance(own_peak, int) and own_peak > 0 else usage.ru_maxrss,
                "cpu_s": round(cpu, 3)}
        if isinstance(loader.get("cpu_s"), (int, float)):
            cost["cpu_s"] = round(max(cpu - loader["cpu_s"], 0.0), 3)
            cost["wait4_peak_rss_kb"] = usage.ru_maxrss      # the larger of it and its loader
        return cost

    def _close_stdin(self) -> None:
        try:
            if self._to_child is not None:
                self._to_child.close()
        except OSError:
            pass

    def _kill(self, why: str) -> None:
        proc = self.proc
        if proc is None:
            return
        # os.kill, not Popen.send_signal: that one reaps the process first
        # (waitpid), and only wait4 gives its peak RSS. The lock keeps the
        # reader thread from reaping it (freeing the pid) in between.
        with self._reap_lock:
            if proc.returncode is not None:
                return
            self._killed_by_us = self._killed_by_us or why
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except OSError:
                pass

    def _how_it_ended(self) -> str:
        if self._exit is None:
            return "the BPF process ended"
        return "the BPF process " + ("was " if self._exit.startswith("killed") else "") + self._exit

    def _stderr_tail(self) -> str:
        if self._stderr is None:        # the process was never started
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - STDERR_TAIL))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):   # ValueError: the file was closed
            return ""

    def _record_loss(self, why: str) -> None:
        """The process ended before writing what it meant to: say so, per artifact."""
        for name in self._pending:
            if name not in self._written:
                self.writer.add_missing(name, "missing", why)
                self._written.add(name)

    # -- phases ----------------------------------------------------------

    def start(self) -> None:
        """Decide, start the BPF process and wait for its attach, up to --bpf-start-timeout."""
        if not self.args.no_bpf and capabilities.privilege_problem() is not None:
            # Without the privilege there is nothing to start a process for
            # (and an unprivileged user may not even be able to run this
            # interpreter again): the session records, in this process, every
            # BPF artifact as unavailable with the reason; it loads nothing.
            from snapcollect.collect.bpf.reader import ReaderSession

            ReaderSession.start(self.args, self.writer, time.monotonic())
            return
        go = bpf_start.may_start(self.args, self.room())
        if not go.start:
            self._disable(go.reason)
            if not self.args.no_bpf:
                self.writer.merge_manifest("degraded", **{self.manifest_key: go.reason})
            return
        limit = bpf_start.timeout_s(self.args)
        t0 = time.monotonic()
        # The limit is enforced here, by bpf_start.outcome, the function doctor
        # uses too; the session's own deadline lies past it so that it never
        # decides first.
        why = self._spawn(t0 + limit + SESSION_MARGIN_S)
        if why:
            self._disable(why)
            return
        end = t0 + limit
        while not self._started.is_set() and not self._ended.is_set() and not self.stop.stopped:
            left = end - time.monotonic()
            if left <= 0:
                break
            self._started.wait(min(0.1, left))
        took = time.monotonic() - t0
        self.start_s = round(took, 3)
        if self._started.is_set():
            self._note(start_s=self.start_s, start_limit_s=limit)
            if self.enabled:
                # a session that found no headers, tracefs, ... has said why itself
                self.outcome = bpf_start.outcome(took, limit)
            return
        if self._ended.wait(0) and not self.stop.stopped:
            self._ended.wait(EXIT_WAIT_S)
            tail = self._stderr_tail()
            self._disable(f"{self._how_it_ended()} during its start"
                          + (f": {tail.splitlines()[-1]}" if tail else ""))
            return
        self._kill("start abandoned")
        self._ended.wait(EXIT_WAIT_S)
        if self.stop.stopped:
            self._disable(f"not started: the run was stopped during the BPF start ({took:.1f} s in)")
            return
        self.outcome = bpf_start.outcome(None, limit)
        self._disable(self.outcome.text + f"; give a larger --bpf-start-timeout (e.g. "
                      f"{bpf_start.suggested_timeout_s(limit)}), or --no-bpf")
        self._note(start_s=self.start_s, start_limit_s=limit)

    def finish_async(self, deadline_mono: float) -> None:
        """Ask the BPF process to detach and write its artifacts; after a
        second Ctrl-C, kill it instead (the kernel detaches its probes when
        its file descriptors close)."""
        if self.proc is None:
            return
        if self.stop.hurry:
            self._kill("a second signal")
            return
        if not self._ended.is_set() and not self._send({"op": "finish", "deadline_mono": deadline_mono - 0.2,
                                                    # free, vmstat, pmap...: their faults are ours
                                                    "own_pids": own_processes.pids()}):
            self._kill("its pipe broke")

    def wait_detached(self, timeout_s: float) -> bool:
        """Wait, at most ``timeout_s``, until the BPF process has detached its
        probes (or is gone); True when they are off."""
        if self.proc is None:
            return True
        end = time.monotonic() + max(timeout_s, 0.0)
        while not self._detached.is_set() and not self._ended.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._detached.wait(min(0.05, left))
        return True

    def wait_finish(self, deadline_mono: float) -> bool:
        """Wait for the BPF process to finish; True unless time ran out for it."""
        if self.proc is None:
            return True
        timely = True
        while not self._ended.is_set() and time.monotonic() < deadline_mono:
            self._ended.wait(min(0.1, max(0.0, deadline_mono - time.monotonic())))
        if not self._ended.is_set():
            timely = False
            self._kill("the run's deadline came first")
            self._ended.wait(EXIT_WAIT_S)
        self._close_stdin()
        self._conclude(timely)
        if self._reader_error is not None and isinstance(self._reader_error, OSError):
            raise self._reader_error
        return timely

    def _conclude(self, timely: bool) -> None:
        if self._finished.is_set():
            pass
        elif not timely:
            self._note(error="finish (detach, final drain, aggregation) did not complete before the "
                             "run's deadline; the BPF process was killed")
            self._record_loss("the BPF process was killed at the run's deadline before writing it")
        elif self._killed_by_us == "a second signal":
            self._note(error="finish skipped after a second signal: aggregated BPF artifacts not written")
            self._record_loss("skipped: the run was stopped by a second signal")
        elif self.enabled or self._started.is_set():
            tail = self._stderr_tail()
            why = f"{self._how_it_ended()} before it finished"
            self._note(error=why + (f" ({tail.splitlines()[-1]})" if tail else "")
                       + "; events received until then are in the bundle")
            self._record_loss(why)
        if self.process_cost:
            self._note(process=self.process_cost)
        if self._bad_messages:
            self._note(bad_messages=self._bad_messages)

    def abandon(self) -> None:
        """The run is ending abnormally: do not leave the process behind."""
        if self.proc is None:
            return
        self._kill("the run ended")
        self._close_stdin()
        self._ended.wait(EXIT_WAIT_S)     # reaped: its cost goes into the manifest
