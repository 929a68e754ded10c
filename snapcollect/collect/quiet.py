"""``--quiet``: nothing on stderr from libraries, only the collector's own lines.

libbcc and clang write warnings to file descriptor 2 from C, bcc's
Python code and the ``warnings`` module write to ``sys.stderr``; none of
them knows about --quiet. For the run, fd 2 points at /dev/null
(dup2(2)), ``sys.stderr`` is a /dev/null stream and Python warnings are
ignored; the collector's own messages (a stop by signal, a full disk, an
error: one line each) go to a duplicate of the original fd 2 that is
handed out. Everything is put back afterwards, so the command line's
error line still reaches the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings


@contextlib.contextmanager
def quiet_output(enabled: bool):
    """Yield the stream for the collector's own lines; silence the rest if ``enabled``."""
    if not enabled:
        yield None
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    old_stderr = sys.stderr
    ours = None
    try:
        os.dup2(devnull, 2)
        ours = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace", closefd=True)
        sys.stderr = open(os.devnull, "w")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield ours
    finally:
        quiet_stream, sys.stderr = sys.stderr, old_stderr
        if quiet_stream is not old_stderr:
            quiet_stream.close()
        if ours is not None:
            try:
                ours.close()
            except OSError:
                pass
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
