"""Memory cgroups (v1 fixture, v2 inline), kernel log records, settings dumps."""

from __future__ import annotations

import json

import pytest

from fixture_files import text
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.cgroups import parse_cgroups
from snapcollect.parsers.kmsg import parse_kmsg
from snapcollect.parsers.sysctl import parse_name_values, selected_choice


def test_cgroup_v1_fixture():
    doc = parse_cgroups(text("cgroups-v1.json"))
    assert doc["version"] == 1
    root, g = doc["groups"]["/"], doc["groups"]["/snapfix"]
    assert root.limit_bytes is None                 # 9223372036854771712: no limit
    assert g.limit_bytes == 64 << 20
    assert 0 < g.usage_bytes <= g.limit_bytes
    raw = json.loads(text("cgroups-v1.json"))["groups"]["/snapfix"]
    assert g.swap_usage_bytes == int(raw["memory.memsw.usage_in_bytes"]) - int(raw["memory.usage_in_bytes"])
    assert g.events["failcnt"] > 0 and g.events["oom_kill"] == 0
    assert g.stat["swap"] > 0
    assert g.pressure is None


V2 = {"version": 2, "root": "/sys/fs/cgroup", "groups": {"/app.slice": {
    "memory.current": "67043328\n", "memory.max": "67108864\n", "memory.high": "max\n",
    "memory.peak": "67108864\n", "memory.swap.current": "0\n", "memory.swap.max": "max\n",
    "memory.events": "low 0\nhigh 0\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n",
    "memory.stat": "anon 66060288\nfile 0\n",
    "memory.pressure": "some avg10=3.10 avg60=1.00 avg300=0.20 total=901\n"
                       "full avg10=2.00 avg60=0.50 avg300=0.10 total=800\n"}}}


def test_cgroup_v2_inline():
    g = parse_cgroups(json.dumps(V2))["groups"]["/app.slice"]
    assert (g.version, g.usage_bytes, g.limit_bytes, g.high_bytes) == (2, 67043328, 67108864, None)
    assert g.events == {"low": 0, "high": 0, "max": 17, "oom": 1, "oom_kill": 1, "oom_group_kill": 0}
    assert g.swap_limit_bytes is None and g.pressure.full.total_us == 800


@pytest.mark.parametrize("bad", ["not json", "[]", json.dumps({"version": 3, "groups": {}}),
                                 json.dumps({"version": 2, "groups": {"/": {"memory.current": "lots"}}})])
def test_bad_cgroups(bad):
    with pytest.raises(ParseError):
        parse_cgroups(bad)


def test_kmsg_records_to_bundle_clock():
    recs = [json.loads(l) for l in text("kmsg.jsonl").splitlines()]
    lines = parse_kmsg(recs, {"wall": 1000.0, "monotonic": 600.0})
    assert [l.seq for l in lines] == sorted(r["seq"] for r in recs)
    last = lines[-1]
    assert last.text.startswith("Adding 262140k swap")
    assert last.t == pytest.approx(1000.0 + last.ts_us / 1e6 - 600.0)
    assert parse_kmsg(recs, None)[0].t is None
    with pytest.raises(ParseError):
        parse_kmsg([{"text": "no seq"}])


def test_settings_dumps():
    vm = parse_name_values(text("sys-vm"))
    assert vm["overcommit_memory"] in ("0", "1", "2") and int(vm["swappiness"]) >= 0
    thp = parse_name_values(text("transparent_hugepage"))
    assert selected_choice(thp["enabled"]) in ("always", "madvise", "never")
    assert selected_choice("60") == "60"
    with pytest.raises(ParseError):
        parse_name_values("swappiness 60\n")


def test_kmsg_record_with_escaped_newlines_becomes_lines():
    """6.1 sends the OOM "Memory cgroup stats" block as one record joined with \\x0a."""
    rec = {"seq": 900, "ts_us": 5_000_000, "prio": 6,
           "text": "Memory cgroup stats for /sc-oom:\\x0aanon 66060288\\x0afile 0\\x0akernel 1028096\\x0a"}
    after = {"seq": 901, "ts_us": 5_000_100, "prio": 3, "text": "Memory cgroup out of memory: Killed process 42"}
    lines = parse_kmsg([after, rec], None)
    assert [l.text for l in lines] == ["Memory cgroup stats for /sc-oom:", "anon 66060288", "file 0",
                                       "kernel 1028096", "Memory cgroup out of memory: Killed process 42"]
    assert {l.seq for l in lines[:4]} == {900} and lines[4].seq == 901
    # Other escapes stay escaped: they are shown as the kernel wrote them.
    assert parse_kmsg([{"seq": 1, "ts_us": 1, "text": "tab\\x09here"}])[0].text == "tab\\x09here"
