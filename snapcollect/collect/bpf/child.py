"""The BPF process: ``python -m snapcollect.collect.bpf.child``.

Started by the collector (collect/bpf_hook.py) with three pipes: its
stdin carries the collector's commands, the file descriptor named by
``--out-fd`` carries messages back, stderr goes to a file the collector
reads when something went wrong (see wire.py for the protocol). It runs
one ``reader.ReaderSession``: a short-lived loader process compiles and
attaches and hands the kernel objects over, then this one polls events
until told to finish or until its stdin closes (the collector is gone or
gave up on it), then detaches, aggregates and sends the artifacts. It
does not import bcc.

fd 1 is pointed at stderr (wire.process_main) so that nothing the loader
(bcc, clang) prints can be taken for a message. The process inherits the
collector's nice value, I/O priority and oom_score_adj (1000: the
kernel's first choice when memory runs out); the collector reads its
peak RSS and CPU from wait4(2).
"""

from __future__ import annotations

import sys
import time

from snapcollect.collect.bpf import wire

POLL_S = 0.2


def run(stdin_fd: int, out) -> int:
    from snapcollect.collect.bpf.reader import ReaderSession
    from snapcollect.collect.options import CollectOptions

    commands = wire.read_commands(stdin_fd)
    config = next(commands)
    if config is None or config.get("op") != "config":
        return 2
    writer = wire.PipeWriter(out, config.get("clock") or {"wall": time.time(),
                                                          "monotonic": time.monotonic()})
    opts = CollectOptions.from_wire(config.get("options"))
    own = config.get("collector_pid")
    session = ReaderSession.start(opts, writer, float(config["deadline_mono"]),
                               own_tgids=frozenset([own]) if isinstance(own, int) else frozenset())
    enabled = session.bpf is not None
    pending = session.pending_artifacts() if enabled else []
    writer.send({"op": "started", "enabled": enabled, "pending": pending})
    finish_deadline = None
    while enabled:
        session.poll(POLL_S)
        if not wire.readable(stdin_fd, 0):
            continue
        msg = next(commands)
        if msg is None:            # the collector is gone: detach and go
            break
        if msg.get("op") == "finish":
            finish_deadline = msg.get("deadline_mono")
            own_pids = msg.get("own_pids")
            if isinstance(own_pids, list):
                session.own_tgids |= {p for p in own_pids if isinstance(p, int)}
            break
    session.finish(deadline_mono=float(finish_deadline) if finish_deadline else None,
                   on_detached=lambda: writer.send({"op": "detached"}))
    writer.send({"op": "finished"})
    return 0


def main(argv=None) -> int:
    return wire.process_main(run, "snapcollect-bpf", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
