"""Progress on stderr while collecting, on a terminal or not.

On a terminal: one line redrawn in place (carriage return) at most a few
times a second, kept under 80 columns. Example::

    snapcollect: sampling   12/60 s, 48 s left, 13 samples  Ctrl-C: stop+keep

When stderr is not a terminal (``ssh -T``, ``| tee``, cron, a log file) a
redrawn line would be a run of carriage returns, so a plain line is
written every ``PLAIN_EVERY_S`` seconds instead, and when the phase
changes::

    snapcollect: sampling 10/60 s elapsed, 11 samples, 50 s left

``--quiet`` turns both off.
"""

from __future__ import annotations

import sys
import time

from snapcollect.collect.protocols import Clock

WIDTH = 79
PLAIN_EVERY_S = 10.0

OFF, TTY, PLAIN = "off", "tty", "plain"


class Progress:
    def __init__(self, enabled: bool, stream=None, *, mode: str | None = None, clock: Clock = time.monotonic):
        self.stream = stream or sys.stderr
        self.mode = mode if mode is not None else (TTY if enabled else OFF)
        self.enabled = self.mode != OFF
        self._clock = clock
        self._last: float | None = None
        self._shown = False
        self._plain_phase: str | None = None

    @classmethod
    def for_args(cls, quiet: bool, stream=None) -> "Progress":
        stream = stream or sys.stderr
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(not quiet, stream, mode=OFF if quiet else TTY if tty else PLAIN)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # The terminal or pipe went away (SSH dropped): collect on, silently.
            self.enabled = False
            self.mode = OFF

    def say(self, line: str) -> None:
        """A line that stays (not redrawn), e.g. how to stop early."""
        if not self.enabled:
            return
        self.clear()
        self._write(line[:WIDTH] + "\n")

    def _due(self, every: float, force: bool) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < every and not force:
            return False
        self._last = now
        return True

    def update(self, phase: str, elapsed: float, total: float, left: float, samples: int, *,
               bound: bool = False, force: bool = False, hint: str = "Ctrl-C: stop+keep") -> None:
        """``elapsed`` of ``total`` seconds of the window; ``left`` until the run ends
        (``bound``: at most that long)."""
        if self.mode == PLAIN:
            # A line per PLAIN_EVERY_S, and one when the phase changes (a BPF
            # compile can take 20 s: the log says what is going on); forced
            # redraws within a phase add nothing.
            if self._due(PLAIN_EVERY_S, phase != self._plain_phase):
                self._plain_phase = phase
                self._write(f"snapcollect: {phase} {elapsed:.0f}/{total:.0f} s elapsed, {samples} samples, "
                            f"{'<=' if bound else ''}{max(0.0, left):.0f} s left\n")
            return
        if self.mode != TTY or not self._due(0.25, force):
            return
        text = (f"snapcollect: {phase:<10} {elapsed:4.0f}/{total:.0f} s, {'<=' if bound else ''}"
                f"{max(0.0, left):.0f} s left, {samples} samples")
        if hint:
            text += f"  {hint}"
        self._shown = True
        self._write("\r" + text[:WIDTH].ljust(WIDTH))

    def clear(self) -> None:
        if self.mode == TTY and self._shown:
            self._shown = False
            self._write("\r" + " " * WIDTH + "\r")
