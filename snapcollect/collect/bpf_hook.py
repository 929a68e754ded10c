"""The collector's side of BPF: start, poll and finish a ``BpfSession``.

The session (snapcollect/collect/bpf/session.py) compiles, attaches and
drains the BPF programs and records its own artifacts and the manifest's
``bpf`` field. This hook only schedules it and makes sure that nothing it
does can break the run: an import error, an exception or an overrun turns
into ``bpf: {"enabled": false, "reason": ...}`` (or an ``error`` note
beside what the session recorded) and the collection goes on. start() and
finish() run in worker threads so that a compile or a symbolisation that
overruns cannot carry the run past its deadline.
"""

from __future__ import annotations

import inspect
import time

from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect.jobs import Job, Jobs
from snapcollect.collect.signals import StopFlag

# How long past its own deadline start() may run before the run goes on
# without BPF (bcc's compile cannot be interrupted).
START_GRACE_S = 0.5


class BpfHook:
    def __init__(self, args, writer: BundleWriter, jobs: Jobs, stop: StopFlag):
        self.args = args
        self.writer = writer
        self.jobs = jobs
        self.stop = stop
        self.session = None
        self._poll_broken = False
        self._finish_job: Job | None = None
        self._finish_skipped = False
        self.start_s: float | None = None

    # -- manifest --------------------------------------------------------

    def _note(self, **fields) -> None:
        self.writer.merge_manifest("bpf", **fields)

    def _disable(self, reason: str) -> None:
        self._note(enabled=False, reason=reason)

    # -- phases ----------------------------------------------------------

    def start(self, deadline_mono: float) -> None:
        """Compile and attach, bounded by ``deadline_mono`` (+ a short grace)."""
        if getattr(self.args, "no_bpf", False):
            self._disable("--no-bpf")
            return
        try:
            from snapcollect.collect.bpf.session import BpfSession
        except Exception as exc:  # noqa: BLE001 - any failure: run without BPF
            self._disable(f"BPF support could not be loaded: {type(exc).__name__}: {exc}")
            return
        t0 = time.monotonic()
        job = self.jobs.start(lambda j: BpfSession.start(self.args, self.writer, deadline_mono), "bpf-start")
        if job is None:
            self._disable("not started: earlier reads of this host are still blocked")
            return
        # Not cut short by a second Ctrl-C: a thread left attaching probes
        # while the interpreter exits races bcc's own atexit clean-up.
        limit = deadline_mono + START_GRACE_S
        while not job.done.is_set() and time.monotonic() < limit:
            job.done.wait(min(0.1, max(0.0, limit - time.monotonic())))
        self.start_s = round(time.monotonic() - t0, 3)
        if not job.done.is_set():
            self.jobs.abandon(job)
            self._disable(f"BPF set-up abandoned: compile and attach did not finish within "
                          f"{limit - t0:.1f} s; collected without BPF")
            return
        if job.error is not None:
            self._disable(f"BPF set-up failed: {type(job.error).__name__}: {job.error}")
            return
        self.session = job.result
        if self.session is None:
            self._note(enabled=False)
        elif "bpf" not in self.writer.manifest:
            self._note(enabled=True)

    def poll(self, timeout_s: float) -> None:
        if self.session is None or self._poll_broken:
            return
        try:
            self.session.poll(timeout_s)
        except Exception as exc:  # noqa: BLE001
            self._poll_broken = True
            self._note(error=f"event polling failed and stopped: {type(exc).__name__}: {exc}")

    @property
    def polling(self) -> bool:
        return self.session is not None and not self._poll_broken

    def finish_async(self, deadline_mono: float) -> None:
        """Start detaching and writing the aggregated artifacts in a thread.

        After a second Ctrl-C it is not started: the probes are then
        detached by bcc's clean-up at exit, and only the events already
        streamed are in the bundle. A session whose finish() takes a
        ``deadline_mono`` keyword gets the run's deadline.
        """
        if self.session is None:
            return
        if self.stop.hurry:
            self._note(error="finish skipped after a second signal: aggregated BPF artifacts not written")
            self.session = None
            self._finish_skipped = True
            return
        session = self.session
        try:
            takes_deadline = "deadline_mono" in inspect.signature(session.finish).parameters
        except (TypeError, ValueError):
            takes_deadline = False
        if takes_deadline:
            self._finish_job = self.jobs.start(lambda j: session.finish(deadline_mono=deadline_mono),
                                               "bpf-finish")
        else:
            self._finish_job = self.jobs.start(lambda j: session.finish(), "bpf-finish")
        if self._finish_job is None:
            self._note(error="finish not started: earlier reads of this host are still blocked")

    def wait_finish(self, deadline_mono: float) -> bool:
        """Wait for finish(); True when it completed (or there was nothing to do)."""
        job = self._finish_job
        if job is None:
            return self.session is None and not self._finish_skipped
        # Once started, finish is waited for (until the deadline) even after
        # a second Ctrl-C: it is detaching, which must not race the exit.
        while not job.done.is_set() and time.monotonic() < deadline_mono:
            job.done.wait(min(0.1, max(0.0, deadline_mono - time.monotonic())))
        if not job.done.is_set():
            self.jobs.abandon(job)
            self._note(error="finish (detach, final drain, aggregation) did not complete before the "
                             "run's deadline; BPF artifacts may be incomplete")
            return False
        if job.error is not None:
            self._note(error=f"finish failed: {type(job.error).__name__}: {job.error}")
            return False
        return True
