"""The page-fault sampler's duty cycle (collect/bpf/fault_duty.py), with a fake perf_event_open and clock."""

from __future__ import annotations

import json
import threading

import pytest

from snapcollect.collect.bpf import aggregates
from snapcollect.collect.bpf.fault_duty import FaultDuty, schedule
from snapcollect.parsers.bpf_events import load_bpf_data


class FakeKernel:
    def __init__(self, fail_from: int | None = None):
        self.open: set[int] = set()
        self.next_fd = 100
        self.opens = 0
        self.fail_from = fail_from

    def opener(self, cpu, period, prog):
        self.opens += 1
        if self.fail_from is not None and self.opens >= self.fail_from:
            raise OSError(24, "Too many open files")
        self.next_fd += 1
        self.open.add(self.next_fd)
        return self.next_fd

    def closer(self, fd):
        self.open.remove(fd)


def make(kernel, pct=20, fds=(1, 2), now=0.0, prog=9):
    kernel.open |= set(fds)
    return FaultDuty(list(fds), prog, 128, pct, now, cpus=[0, 1], opener=kernel.opener, closer=kernel.closer)


def test_schedule_is_a_share_of_a_half_second():
    assert schedule(20) == (0.5, 0.1)
    assert schedule(100) == (0.5, 0.5)
    assert schedule(0)[1] == pytest.approx(0.005)     # clamped to 1 %
    assert schedule(250)[1] == 0.5


def test_it_closes_after_the_open_part_and_opens_on_every_cpu_at_the_next_cycle():
    k = FakeKernel()
    d = make(k)
    assert d.cycling and d.next_change(0.0) == pytest.approx(0.1)
    d.step(0.05)
    assert k.open == {1, 2}                           # still in the open part
    d.step(0.1)
    assert k.open == set() and d.fds == []            # the loader's events are closed too
    assert d.next_change(0.2) == pytest.approx(0.5)
    d.step(0.5)
    assert len(k.open) == 2 and d.phases == 2
    d.step(0.61)
    assert k.open == set()
    d.stop(0.7)
    assert d.open_s == pytest.approx(0.21)
    st = d.stats(0.7)
    assert st["open_share"] == pytest.approx(0.21 / 0.7, abs=1e-3) and st["phases"] == 2
    assert d.scale(0.7) == pytest.approx(0.7 / 0.21)


def test_always_open_does_not_cycle_and_scales_by_one():
    k = FakeKernel()
    d = make(k, pct=100)
    assert not d.cycling and d.next_change(0.0) is None
    d.step(0.3)
    assert k.open == {1, 2}
    d.stop(10.0)
    assert d.open_s == pytest.approx(10.0) and d.scale(10.0) == 1.0


def test_without_the_program_fd_it_cannot_reattach_and_stays_open():
    k = FakeKernel()
    d = make(k, prog=None)
    assert not d.cycling
    d.step(0.2)
    assert k.open == {1, 2}


def test_a_failed_open_leaks_nothing_and_gives_up_after_three():
    k = FakeKernel(fail_from=2)      # the second CPU of the first re-open fails
    d = make(k)
    d.step(0.1)
    for t in (0.5, 1.0, 1.5):
        d.step(t)
    assert k.open == set() and not d.cycling
    assert len(d.errors) == 3 and "Too many open files" in d.errors[0]
    d.stop(2.0)
    assert d.open_s == pytest.approx(0.1) and d.scale(2.0) == pytest.approx(20.0)


def test_the_thread_follows_the_clock_and_stops_when_asked():
    k = FakeKernel()
    d = make(k)
    now = [0.0]
    stopping = threading.Event()
    waits = []

    class Clock:
        def __call__(self):
            return now[0]

    def wait(s):
        waits.append(s)
        now[0] += s
        if len(waits) >= 6:
            return True
        return False

    stopping.wait = wait
    d.run(stopping, clock=Clock())
    assert waits[:4] == pytest.approx([0.1, 0.4, 0.1, 0.4])
    assert d.phases == 3


def test_counts_are_scaled_by_the_time_the_sampler_was_open():
    rows = [aggregates.FaultRow(7, 1, -1, "a", 10)]
    duty = {"duty_pct": 20, "open_share": 0.25, "scale": 4.0, "phases": 10}
    text, meta = aggregates.fault_documents(rows, 128, False, 16384, {}, lambda t, s: ["main"], duty=duty)
    assert text.strip() == f"a;main {10 * 128 * 4}"
    assert meta["faults_estimated"] == 5120 and meta["processes"][0]["faults_estimated"] == 5120
    assert meta["duty"] == duty and "25% of the window" in meta["note"]
    assert "0.5 s cycle" in meta["sampling_error"]
    _, plain = aggregates.fault_documents(rows, 128, False, 16384, {}, lambda t, s: ["main"])
    assert plain["faults_estimated"] == 1280 and "cycle" not in plain["sampling_error"]


@pytest.mark.parametrize("duty, share", [
    ({"duty_pct": 20, "open_share": 0.2}, 0.2),
    ({"duty_pct": 100, "open_share": 1.0}, 1.0),
    ({"duty_pct": 20, "open_share": "x"}, 1.0),      # hostile: ignored
    ({"duty_pct": 20, "open_share": 7}, 1.0),
    ("nonsense", 1.0),
])
def test_the_parser_reads_the_open_share_and_refuses_nonsense(duty, share):
    meta = {"sample_period": 128, "duty": duty}
    data = load_bpf_data({}, {}, {}, {"bpf/fault_stacks.json": json.dumps(meta).encode(),
                                      "bpf/fault_stacks.folded": b"a;main 512\n"})
    assert data.fault_open_share == share


def test_stop_ends_the_thread_and_closes_everything():
    k = FakeKernel()
    d = FaultDuty([1, 2], 9, 128, 20, 0.0, cpus=[0, 1], opener=k.opener, closer=k.closer)
    k.open |= {1, 2}
    d.start_thread()
    thread = d._thread
    assert thread is not None and thread.is_alive()
    d.stop(1.0)
    assert not thread.is_alive() and k.open == set() and d._thread is None
    always = FaultDuty([3], 9, 128, 100, 0.0, cpus=[0], opener=k.opener, closer=k.closer)
    always.start_thread()
    assert always._thread is None          # nothing to follow when always open
