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

    def counter(self, fd):
        """What the event counted: set by a test in ``counts``, else 0."""
        if fd not in self.open:
            raise OSError(9, "Bad file descriptor")
        return self.counts.get(fd, 0)

    counts: dict = {}


class FakeCarry:
    def __init__(self, fail: bool = False):
        self.added: list[dict] = []
        self.fail = fail

    def add(self, faults_by_cpu):
        if self.fail:
            raise OSError(1, "Operation not permitted")
        self.added.append(dict(faults_by_cpu))


def make(kernel, pct=20, fds=(1, 2), now=0.0, prog=9, period=128, carry=None, fd_cpus=(0, 1)):
    kernel.open |= set(fds)
    kernel.counts = {}
    return FaultDuty(list(fds), prog, period, pct, now, cpus=[0, 1], opener=kernel.opener, closer=kernel.closer,
                     counter=kernel.counter, carry=carry, fd_cpus=list(fd_cpus))


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
    d = FaultDuty([1, 2], 9, 128, 20, 0.0, cpus=[0, 1], opener=k.opener, closer=k.closer, counter=k.counter)
    k.open |= {1, 2}
    d.start_thread()
    thread = d._thread
    assert thread is not None and thread.is_alive()
    d.stop(1.0)
    assert not thread.is_alive() and k.open == set() and d._thread is None
    always = FaultDuty([3], 9, 128, 100, 0.0, cpus=[0], opener=k.opener, closer=k.closer, counter=k.counter)
    always.start_thread()
    assert always._thread is None          # nothing to follow when always open


# -- what a closed event had counted goes on (the per-CPU carry) ------------------

def test_a_close_reads_each_count_and_carries_what_is_short_of_a_sample():
    k, carry = FakeKernel(), FakeCarry()
    d = make(k, period=16, carry=carry)
    k.counts = {1: 100, 2: 37}          # 6 samples + 4 on CPU 0, 2 samples + 5 on CPU 1
    d.step(0.1)
    assert carry.added == [{0: 4, 1: 5}] and d.faults_open == 137 and d.carried == 9
    d.step(0.5)                         # reopened: fds 101 (CPU 0), 102 (CPU 1)
    k.counts = {101: 15, 102: 0}
    d.step(0.6)
    assert carry.added[-1] == {0: 15, 1: 0} and d.faults_open == 152
    d.stop(0.7)
    st = d.stats(0.7)
    assert st["faults_open"] == 152 and st["carry"] is True and st["carried"] == 24
    assert st["event_period"] == 16 and st["count_errors"] == 0 and st["carry_error"] is None


def test_faults_while_open_are_not_known_before_the_end():
    d = make(FakeKernel(), carry=FakeCarry())
    assert d.stats(0.0)["faults_open"] is None


def test_a_carry_that_cannot_be_written_is_given_up_and_said():
    k = FakeKernel()
    d = make(k, period=16, carry=FakeCarry(fail=True))
    k.counts = {1: 20, 2: 20}
    d.step(0.1)
    st = d.stats(0.1)
    assert st["carry"] is False and "Operation not permitted" in st["carry_error"]
    assert d.faults_open == 40 and d.carried == 0
    d.step(0.5)
    d.step(0.6)                          # later closes do not try again
    assert d.carry is None and len(k.open) == 0


def test_a_count_that_cannot_be_read_is_counted_and_carries_nothing():
    k, carry = FakeKernel(), FakeCarry()
    d = make(k, period=16, carry=carry)
    k.counts = {1: 20}

    def broken(fd):
        if fd == 2:
            raise OSError(5, "Input/output error")
        return k.counter(fd)
    d.counter = broken
    d.step(0.1)
    assert carry.added == [{0: 4}] and d.count_errors == 1 and d.faults_open == 20


def test_events_on_unknown_cpus_are_counted_but_not_carried():
    k, carry = FakeKernel(), FakeCarry()
    d = make(k, period=16, carry=carry, fd_cpus=(-1, -1))
    k.counts = {1: 20, 2: 30}
    d.step(0.1)
    assert carry.added == [] and d.faults_open == 50


def test_fault_carry_adds_to_each_cpus_slot_of_the_per_cpu_array():
    import struct

    from snapcollect.collect.bpf.fault_duty import FaultCarry

    class Raw:
        def __init__(self):
            self.value = struct.pack("=4Q", 1, 2, 3, 4)

        def lookup(self, key):
            assert key == struct.pack("=I", 0)
            return self.value

        def update(self, key, value):
            self.value = value

    raw = Raw()
    FaultCarry(raw).add({0: 10, 2: 5, 7: 99, 1: 0})       # CPU 7 is not possible: ignored
    assert struct.unpack("=4Q", raw.value) == (11, 2, 8, 4)


def test_the_carry_makes_a_light_faulter_counted_where_a_fresh_start_loses_it():
    """A model of the kernel's overflow (every ``step`` faults since the
    event was opened) and of on_fault_sample's carry: 40 faults per phase on
    one CPU, 100 phases, 1 in 128 recorded."""
    period, step, per_phase, phases = 128, 16, 40, 100

    def run(carrying: bool) -> int:
        k, carry_box = FakeKernel(), {"v": 0}

        class Carry:
            def add(self, by_cpu):
                carry_box["v"] += by_cpu.get(0, 0)
        d = FaultDuty([1], 9, step if carrying else period, 20, 0.0, cpus=[0], opener=k.opener,
                      closer=k.closer, counter=k.counter, carry=Carry() if carrying else None, fd_cpus=[0])
        k.open |= {1}
        recorded, t = 0, 0.0
        for _ in range(phases):
            fd = d.fds[0]
            k.counts = {fd: per_phase}
            for n in range(1, per_phase + 1):
                if n % d.period == 0:                   # the event overflows: the program runs
                    if not carrying:
                        recorded += 1
                        continue
                    carry_box["v"] += step
                    if carry_box["v"] >= period:
                        carry_box["v"] -= period
                        recorded += 1
            d.step(t + 0.1)
            t += 0.5
            d.step(t)
        return recorded

    expected = per_phase * phases / period              # 31.25
    assert run(carrying=False) == 0
    assert abs(run(carrying=True) - expected) <= 1


def test_the_sampling_error_says_whether_the_rest_of_a_phase_was_carried():
    carried = aggregates.sampling_error(128, 5.0, carried=True)
    assert "carried to the next" in carried and "not seen at all" not in carried
    fresh = aggregates.sampling_error(128, 5.0)
    assert "not seen at all" in fresh


@pytest.mark.parametrize("value, got", [(12345, 12345), (0, 0), (-1, None), ("7", None), (True, None), (None, None)])
def test_the_parser_reads_the_faults_counted_while_open(value, got):
    meta = {"sample_period": 128, "duty": {"duty_pct": 20, "open_share": 0.2, "faults_open": value}}
    data = load_bpf_data({}, {}, {}, {"bpf/fault_stacks.json": json.dumps(meta).encode(),
                                      "bpf/fault_stacks.folded": b"a;main 512\n"})
    assert data.fault_open_counted == got
