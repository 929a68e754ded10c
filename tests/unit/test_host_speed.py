"""The host-speed factor: the bounds a slow host gets, and what the snapshot does with it."""

from __future__ import annotations

import os
import threading
import time

from snapcollect.bundle import names, open_bundle
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect import host_speed
from snapcollect.collect.clock import Deadline
from snapcollect.collect.jobs import Jobs


def test_a_healthy_host_keeps_its_bounds():
    assert host_speed.factor_of(0.004) == 1.0
    assert host_speed.factor_of(host_speed.HEALTHY_S) == 1.0
    assert host_speed.factor_of(None) == 1.0


def test_a_slow_host_gets_bounds_in_proportion_up_to_the_cap():
    assert host_speed.factor_of(host_speed.HEALTHY_S * 3) == 3.0
    assert host_speed.factor_of(10.0) == host_speed.MAX_FACTOR
    s = host_speed.HostSpeed(0.03, 3.0)
    assert s.scale(1.5) == 4.5
    assert s.manifest()["factor"] == 3.0 and s.manifest()["probe_ms"] == 30.0


def test_measure_takes_the_median_of_its_rounds(monkeypatch):
    rounds = iter([0.5, 0.02, 0.04])          # one outlier: a single stall does not decide
    monkeypatch.setattr(host_speed, "_one_round", lambda: next(rounds))
    got = host_speed.measure()
    assert got.probe_s == 0.04 and got.factor == 4.0


def test_measure_without_a_true_program_keeps_the_bounds(monkeypatch):
    def gone():
        raise FileNotFoundError("true")
    monkeypatch.setattr(host_speed, "_one_round", gone)
    assert host_speed.measure().factor == 1.0


def test_measure_on_this_host_returns_a_factor_in_range():
    got = host_speed.measure()
    assert got.probe_s is not None and got.probe_s > 0
    assert 1.0 <= got.factor <= host_speed.MAX_FACTOR


def test_a_slow_read_is_kept_when_the_host_is_slow(tmp_path, monkeypatch):
    """A read that takes 0.5 s: a timeout at speed 1 (item bound 0.3 s), kept at speed 4."""
    from snapcollect.collect import snapshot
    from snapcollect.collect.signals import StopFlag
    from snapcollect.collect.sources import procfs

    real = procfs.read_file
    release = threading.Event()

    def slow(src):
        if src == "proc/slabinfo":
            release.wait(0.5)
        return real(src)

    monkeypatch.setattr(procfs, "read_file", slow)
    monkeypatch.setattr(snapshot, "ITEM_TIMEOUT_S", 0.3)
    layout = snapshot.HostLayout(nodes=[0] if os.path.isdir("/sys/devices/system/node/node0") else [], cgroup=None)
    statuses = {}
    for speed in (1.0, 4.0):
        path = str(tmp_path / f"b{speed}{names.SUFFIX}")
        w = BundleWriter(path, {})
        snapshot.take_snapshot("start", w, layout, Jobs(), Deadline.after(20), StopFlag(), speed=speed)
        w.close(ended_at="t")
        statuses[speed] = open_bundle(path).status("proc/slabinfo@start")[0]
        time.sleep(0.6)                     # the abandoned read of the first round is over
    assert statuses == {1.0: "timeout", 4.0: "ok"}
