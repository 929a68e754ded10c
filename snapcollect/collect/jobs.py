"""Reads that may block, run in daemon threads with a timeout.

Reading /proc/PID/{smaps,cmdline,status} takes the target's mmap lock; on
a sick host a read can wait for seconds or forever (a process stuck in
reclaim holds the lock). Such reads run in a daemon thread each; the
caller waits at most until its deadline and records ``timeout`` for what
did not come back. A thread that stays blocked is abandoned (it cannot be
cancelled), and it is counted: past ``MAX_STUCK`` abandoned threads no new
blocking read is started, so a host that blocks every read cannot make the
collector pile up threads.

A job function gets the ``Job`` and sets ``job.current`` to what it is
reading, so a timeout can name the file and process that blocked.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

MAX_STUCK = 8


class Job:
    """One function running in its own daemon thread."""

    def __init__(self, fn: Callable[["Job"], Any], label: str):
        self.label = label
        self.current: str | None = None     # what the job is reading right now
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.started = time.monotonic()
        self._fn = fn
        self.thread = threading.Thread(target=self._run, name=f"snapcollect:{label}", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self._fn(self)
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting caller
            self.error = exc
        finally:
            self.done.set()

    def wait_until(self, deadline_mono: float) -> bool:
        """Wait for the job until ``deadline_mono``; True when it finished."""
        while not self.done.is_set():
            left = deadline_mono - time.monotonic()
            if left <= 0:
                return False
            # Short slices: signal handlers run in the main thread between them.
            self.done.wait(min(left, 0.2))
        return True


class Jobs:
    """Starts jobs and keeps count of the ones abandoned while blocked."""

    def __init__(self, max_stuck: int = MAX_STUCK):
        self.max_stuck = max_stuck
        self._abandoned: list[Job] = []

    @property
    def stuck(self) -> list[Job]:
        """Abandoned jobs that are still blocked."""
        self._abandoned = [j for j in self._abandoned if not j.done.is_set()]
        return list(self._abandoned)

    def can_start(self) -> bool:
        return len(self.stuck) < self.max_stuck

    def start(self, fn: Callable[[Job], Any], label: str) -> Job | None:
        """Start ``fn(job)`` in a daemon thread; None when too many are stuck."""
        if not self.can_start():
            return None
        job = Job(fn, label)
        job.thread.start()
        return job

    def abandon(self, job: Job) -> str:
        """Give up on a job that missed its deadline; returns what it was reading."""
        if not job.done.is_set():
            self._abandoned.append(job)
        return job.current or job.label


def run_bounded(jobs: Jobs, items: list[tuple[str, Callable[[], Any]]], deadline_mono: float, *,
                item_timeout_s: float = 1.0, label: str = "read") -> dict[str, Any]:
    """Run ``items`` (key, fn) one after another in a worker thread, bounded.

    Each item gets at most ``item_timeout_s``, all of them together until
    ``deadline_mono``. Returns key -> fn's result for what finished, key ->
    ``BLOCKED`` for an item that overran (its thread is abandoned; the
    items after it go on in a fresh thread), key -> ``NOT_RUN`` for items
    the deadline left no time for, key -> ``NO_THREAD`` when too many
    earlier reads are still blocked to start another.
    """
    results: dict[str, Any] = {}
    pending = list(items)
    while pending:
        batch = pending
        state = {"key": None, "since": time.monotonic()}

        def work(job: Job, batch=batch, state=state) -> None:
            for key, fn in batch:
                state["key"], state["since"] = key, time.monotonic()
                job.current = key
                value = fn()
                results[key] = value
            job.current = None

        job = jobs.start(work, label)
        if job is None:
            for k, _fn in pending:
                results.setdefault(k, NO_THREAD)
            break
        stuck = None
        while not job.done.is_set():
            t = time.monotonic()
            item_end = state["since"] + item_timeout_s
            if t >= deadline_mono or t >= item_end:
                stuck = state["key"]
                break
            job.done.wait(min(deadline_mono, item_end) - t)
        if stuck is None:
            if job.error is not None:
                raise job.error
            break
        jobs.abandon(job)
        if stuck not in results:
            results[stuck] = BLOCKED
        pending = [(k, fn) for k, fn in batch if k not in results]
        if time.monotonic() >= deadline_mono:
            break
    for key, _ in items:
        results.setdefault(key, NOT_RUN)
    return results


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


BLOCKED = _Marker("BLOCKED")
NOT_RUN = _Marker("NOT_RUN")
NO_THREAD = _Marker("NO_THREAD")
