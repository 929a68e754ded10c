"""A one-line progress display on stderr while collecting.

Shown only when stderr is a terminal and --quiet was not given, redrawn
in place (carriage return) at most a few times a second, and kept under
80 columns. Example::

    snapcollect: sampling   12/60 s, 48 s left, 13 samples  Ctrl-C: stop+keep
"""

from __future__ import annotations

import sys
import time

WIDTH = 79


class Progress:
    def __init__(self, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._last = 0.0
        self._shown = False

    @classmethod
    def for_args(cls, quiet: bool) -> "Progress":
        try:
            tty = sys.stderr.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(tty and not quiet)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # The terminal went away (SSH dropped): collect on, silently.
            self.enabled = False

    def say(self, line: str) -> None:
        """A line that stays (not redrawn), e.g. how to stop early."""
        if not self.enabled:
            return
        self.clear()
        self._write(line[:WIDTH] + "\n")

    def update(self, phase: str, elapsed: float, total: float, left: float, samples: int, *,
               bound: bool = False, force: bool = False, hint: str = "Ctrl-C: stop+keep") -> None:
        """``elapsed`` of ``total`` seconds of the window; ``left`` until the run ends
        (``bound``: at most that long)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        text = (f"snapcollect: {phase:<10} {elapsed:4.0f}/{total:.0f} s, {'<=' if bound else ''}"
                f"{max(0.0, left):.0f} s left, {samples} samples")
        if hint:
            text += f"  {hint}"
        self._shown = True
        self._write("\r" + text[:WIDTH].ljust(WIDTH))

    def clear(self) -> None:
        if self.enabled and self._shown:
            self._shown = False
            self._write("\r" + " " * WIDTH + "\r")
