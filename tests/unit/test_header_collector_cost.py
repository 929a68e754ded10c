"""The report header says when the collector bent its own sampling: passes
spaced out (processes, memory cgroups) and time bounds stretched on a slow
host; it says nothing of them when they did not happen, and nothing for
values of the wrong type."""

from __future__ import annotations

import pytest

from snapcollect.report.formatting import header_items
from snapcollect.report.model import Report


def _header(collector) -> dict[str, str]:
    return dict(header_items(Report(meta={"collector": collector}, missing=[], sections=[])))


def test_spaced_cgroup_reads_and_a_slow_host_are_named():
    h = _header({"cgroups_pass": {"groups": 12, "every_ticks": 3, "max_every_ticks": 4},
                 "host_speed": {"probe_ms": 320.4, "healthy_ms": 10.0, "factor": 8.0}})
    assert h["Cgroups"].startswith("12 groups read every 4 samples at most")
    assert h["Host speed"] == ("slow: starting a program and reading two /proc files took 320 ms "
                               "(healthy: 10 ms); the collector's time bounds were stretched 8 times")


def test_nothing_said_when_nothing_was_bent():
    h = _header({"cgroups_pass": {"groups": 6, "every_ticks": 1, "max_every_ticks": 1},
                 "host_speed": {"probe_ms": 3.9, "healthy_ms": 10.0, "factor": 1.0}})
    assert "Cgroups" not in h and "Host speed" not in h


@pytest.mark.parametrize("bad", [None, "8", [8], {"factor": "8"}, {"factor": True}, {"factor": float("nan")},
                                 {"max_every_ticks": -3}, {"max_every_ticks": 2.5}])
def test_wrong_types_say_nothing(bad):
    h = _header({"cgroups_pass": bad, "host_speed": bad})
    assert "Cgroups" not in h and "Host speed" not in h


def test_a_collector_entry_that_is_not_an_object():
    assert "Processes" not in dict(header_items(Report(meta={"collector": "x"}, missing=[], sections=[])))
