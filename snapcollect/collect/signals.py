"""SIGINT, SIGTERM and SIGHUP during a collection: stop early, keep the data.

The handlers never raise (no KeyboardInterrupt in the middle of writing a
tar member); they record the signal and wake the main loop through a
self-pipe (``signal.set_wakeup_fd``) so a wait in ``select`` returns at
once. The first signal ends sampling and the run finishes its bundle; a
second one also skips the remaining expensive phases (process detail).
SIGHUP (the on-call's SSH session dropped) is handled like SIGTERM: the
bundle is finished, not lost.

The flag is installed first thing by ``python -m snapcollect`` (before
the command line is even imported) and on the first line of ``main``,
before the collector's heavy imports, so a signal during start-up is
recorded too: before the bundle is created it ends the run with one line
and no bundle, after that with an incomplete bundle; never a traceback.
Installing also unblocks these signals (sigprocmask(2)): one that came
while a parent held them blocked is delivered then, to this handler. What
no Python program can cover is the interpreter's own start-up, before the
first line of ``snapcollect`` runs (see the README).
"""

from __future__ import annotations

import os
import signal

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class StoppedBeforeStart(Exception):
    """A signal came before the bundle was created: nothing to keep."""


class StopFlag:
    """Which signals arrived, in order; installed for the run's duration."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self._old: dict[int, object] = {}
        self._old_wakeup = -1
        self._old_mask: set | None = None
        self.wakeup_r = -1
        self._wakeup_w = -1

    # -- state -----------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return bool(self.signals)

    @property
    def hurry(self) -> bool:
        """A second signal: finish the bundle now, skip what is left."""
        return len(self.signals) >= 2

    @property
    def first(self) -> int | None:
        return self.signals[0] if self.signals else None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.first, 128 + (self.first or 0))

    @property
    def name(self) -> str:
        return signal.Signals(self.first).name if self.first else ""

    # -- install / remove -------------------------------------------------

    def _handler(self, signum, _frame) -> None:
        self.signals.append(signum)

    @property
    def installed(self) -> bool:
        return self.wakeup_r >= 0

    def install(self) -> "StopFlag":
        if self.installed:
            return self
        # The handlers first: until they are in, a SIGINT is a KeyboardInterrupt.
        for sig in EXIT_CODES:
            self._old.setdefault(sig, signal.signal(sig, self._handler))
        self.wakeup_r, self._wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        # Pending ones (blocked by a parent) arrive now, to the handler above.
        self._old_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, list(EXIT_CODES))
        return self

    def check_not_stopped(self) -> None:
        """Raise StoppedBeforeStart if a signal came (call before creating the bundle)."""
        if self.stopped:
            raise StoppedBeforeStart(self.name)

    def drain_wakeup(self) -> None:
        try:
            while os.read(self.wakeup_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        if self._old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            self._old_mask = None
        if not self.installed:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for fd in (self.wakeup_r, self._wakeup_w):
            if fd >= 0:
                os.close(fd)
        self.wakeup_r = self._wakeup_w = -1
