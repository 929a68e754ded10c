"""Compile and load the plan's C text with bcc: text -> loaded ``bcc.BPF``.

bcc runs clang/LLVM in this process and loads every program and map
(bpf(2) BPF_PROG_LOAD / BPF_MAP_CREATE); nothing is attached here
(attach.py does that, one probe at a time). The compile runs in a worker
thread so that it is bounded by a deadline, and the RSS of this process
is sampled meanwhile (/proc/self/statm): the compile is most of the BPF
side's memory. clang's diagnostics go to fd 2; they are kept for the
reason given when the compile fails.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass, field

from snapcollect.collect.bpf import capabilities
from snapcollect.collect.bpf.capabilities import Problem

RSS_SAMPLE_S = 0.05


def rss_kb() -> int:
    """This process's resident set now (/proc/self/statm), in KiB; 0 when unreadable."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Compiled:
    bpf: object = None              # the loaded bcc.BPF, None when the compile failed
    problem: Problem | None = None  # why there is none
    info: dict = field(default_factory=dict)   # compile_s, RSS before/peak/after, compile_error


def compile_program(bcc, text: str, limit_mono: float) -> Compiled:
    """Compile ``text`` and load its programs, giving up at ``limit_mono``."""

    class _NoAutoAttach(bcc.BPF):
        # bcc attaches every tracepoint__* function while constructing
        # and raises on the first failure; attach.py attaches one by one instead.
        def _trace_autoload(self):
            pass

    result: dict = {}

    def work():
        try:
            result["bpf"] = _NoAutoAttach(text=text.encode(), cflags=["-w"])
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc

    rss_before = rss_kb()
    peak = rss_before
    # clang writes its diagnostics to fd 2: keep them for the reason.
    err_file = tempfile.TemporaryFile()
    saved_fd = os.dup(2)
    os.dup2(err_file.fileno(), 2)
    t0 = time.monotonic()
    worker = threading.Thread(target=work, name="bpf-compile", daemon=True)
    try:
        worker.start()
        while worker.is_alive() and time.monotonic() < limit_mono:
            worker.join(RSS_SAMPLE_S)
            peak = max(peak, rss_kb())
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
    compile_s = time.monotonic() - t0
    err_file.seek(0)
    diagnostics = err_file.read().decode("utf-8", "replace")
    err_file.close()
    out = Compiled(info=dict(compile_s=round(compile_s, 3), compile_rss_before_kb=rss_before,
                             compile_peak_rss_kb=max(peak, rss_kb()), rss_after_compile_kb=rss_kb()))
    if worker.is_alive():
        out.problem = Problem(f"compiling the BPF programs did not finish within {compile_s:.1f} s, "
                              "the BPF start's time", "give a larger --bpf-start-timeout, or --no-bpf")
        return out
    if "error" in result:
        message = diagnostics.strip() or str(result["error"])
        errors = [line for line in message.splitlines() if "error" in line.lower()]
        out.info["compile_error"] = "\n".join(errors[-5:] or message.splitlines()[-5:])
        out.problem = capabilities.compile_problem("\n".join(errors[-1:]) or message)
        return out
    out.bpf = result["bpf"]
    return out
