"""The deep dive without root: allocator choice, artifact names, parsing hostile
artifacts, the leak facts and rule, the report section, the options."""

from __future__ import annotations

import json
import os
import time

import pytest

from snapcollect.analysis.deepdive import leaking_stacks, LEAK_MIN_BYTES
from snapcollect.bundle import names
from snapcollect.collect.bpf import allocator
from snapcollect.collect.bpf import deepdive_program as P
from snapcollect.collect.options import CollectOptions
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.deepdive import PARTS, parse_target, split_name

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def maps(*paths: str) -> str:
    lines = ["7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]",
             "55d0c8a00000-55d0c8a21000 rw-p 00000000 00:00 0 [heap]"]
    for i, p in enumerate(paths):
        lines.append(f"7f{i:02x}00000000-7f{i:02x}00028000 r-xp 00000000 fe:01 {1000 + i} {p}")
        lines.append(f"7f{i:02x}00028000-7f{i:02x}00030000 r--p 00028000 fe:01 {1000 + i} {p}")
    return "\n".join(lines) + "\n"


def definer(*files: str):
    return lambda path, sym: sym == "malloc" and path in files


# -- allocator choice -----------------------------------------------------------


def test_glibc_program_probes_libc():
    c = allocator.choose(maps("/usr/bin/app", LIBC), "/usr/bin/app", definer(LIBC))
    assert (c.allocator, c.path) == ("glibc", LIBC)


def test_jemalloc_is_probed_ahead_of_glibc():
    c = allocator.choose(maps("/usr/bin/app", JEMALLOC, LIBC), "/usr/bin/app", definer(JEMALLOC, LIBC))
    assert (c.allocator, c.path) == ("jemalloc", JEMALLOC)
    assert "ahead of glibc" in c.why


def test_static_binary_probes_the_executable():
    c = allocator.choose(maps("/opt/static"), "/opt/static", definer("/opt/static"))
    assert (c.allocator, c.path) == ("own", "/opt/static")
    assert "statically linked" in c.why


def test_stripped_static_binary_says_why_nothing_is_probed():
    c = allocator.choose(maps("/opt/stripped"), "/opt/stripped", definer())
    assert c.path is None and "nothing to probe" in c.why


def test_exited_process_maps_nothing():
    c = allocator.choose("", "/usr/bin/app", definer(LIBC))
    assert c.path is None and "exited" in c.why


def test_deleted_and_pseudo_mappings_are_not_files():
    text = maps(LIBC) + "7f9900000000-7f9900001000 r-xp 00000000 00:05 9 /memfd:jit (deleted)\n"
    assert allocator.mapped_files(text) == [LIBC]


# -- names and the program ---------------------------------------------------------


def test_names_round_trip():
    for part in names.DEEPDIVE_PARTS:
        name = names.deepdive(4242, part)
        assert names.deepdive_pid(name) == (4242, part)
        assert split_name(name) == (4242, part)
    assert set(PARTS) == set(names.DEEPDIVE_PARTS)
    for bad in ("deepdive/x/target.json", "deepdive/1/other", "bpf/1/target.json", "deepdive//target.json",
                "deepdive/٣/target.json"):
        assert split_name(bad) is None and names.deepdive_pid(bad) is None


def test_program_text_compiles_only_present_tracepoints():
    text = P.build_text({"exceptions:page_fault_user"})
    assert "#define DD_TP_FAULT 1" in text and "DD_TP_BRK 1" not in text
    assert "int on_malloc(" in text


def test_log2_buckets_follow_bcc():
    assert P.log2_bucket(0) == (0, 0)
    assert P.log2_bucket(1) == (1, 1)
    assert P.log2_bucket(5) == (16, 31)


def test_overhead_is_calls_times_measured_cost():
    per = {"two_traps": 5000.0, "one_trap": 3000.0}
    assert P.overhead_s({"malloc": 1000, "free": 1000}, per) == pytest.approx(0.008)
    assert P.overhead_s({"malloc": 1}, {}) is None


def test_options_from_the_command_line():
    from snapcollect.cli import build_parser

    ns = build_parser().parse_args(["collect", "--pid", "12", "--pid", "34", "--comm", "nginx"])
    opts = CollectOptions.from_namespace(ns)
    assert opts.pids == (12, 34) and opts.comms == ("nginx",) and opts.deep_dive
    assert not CollectOptions().deep_dive


# -- parsing ---------------------------------------------------------------------


def _target(**over) -> bytes:
    doc = {"pid": 7, "comm": "app", "exe": "/usr/bin/app", "allocator": "glibc", "probed_file": LIBC,
           "why": "glibc's malloc", "probed": ["malloc", "free"], "not_probed": {},
           "attached_at": 100.0, "exited_at": None, "window_end": 110.0,
           "calls": {"malloc": 30, "free": 20},
           "malloc_sizes": [{"slot": 5, "low": 16, "high": 31, "count": 30}], "overhead_s": 0.001}
    doc.update(over)
    return json.dumps(doc).encode()


def _outstanding(held: list[int], blocks_bytes: int = 200 * 4096) -> bytes:
    return json.dumps({"older_than_s": 1.0, "total_bytes": blocks_bytes, "stacks": [
        {"stack_id": 3, "bytes": blocks_bytes, "blocks": 200, "oldest_t": 101.0,
         "frames": ["_start", "main", "leak_here"]}],
        "held_samples": [{"t": 100.0 + i, "stacks": {"3": [b, b // 4096]}} for i, b in enumerate(held)]}).encode()


def test_parse_a_whole_target():
    t = parse_target(7, {"target.json": _target(), "alloc_bytes.folded": b"main;churn 720\n",
                         "outstanding.json": _outstanding([0, 100 * 4096, 200 * 4096]),
                         "heap_growth.json": b'{"stacks": [{"syscall": "brk", "bytes": 4096, "calls": 1, '
                                             b'"frames": ["brk"]}]}'})
    assert t.calls == {"malloc": 30, "free": 20}
    assert [(b.low, b.high, b.count) for b in t.malloc_sizes] == [(16, 31, 30)]
    assert t.alloc_bytes == [("main;churn", 720)]
    assert t.outstanding[0].frames[-1] == "leak_here" and t.outstanding_total_bytes == 200 * 4096
    assert t.growth[0].kind == "brk"
    assert not t.problems


@pytest.mark.parametrize("raw", [b"\xff\xfe not json", b"[1, 2]", b'{"calls": "many", "probed": 3, '
                                 b'"malloc_sizes": [{"low": -1}], "exited_at": "soon"}', b"{}"])
def test_hostile_target_gives_notes_not_tracebacks(raw):
    t = parse_target(7, {"target.json": raw, "alloc_bytes.folded": b"no count here\nmain 1e9\n\xff 3\n",
                         "outstanding.json": b'{"stacks": {"a": 1}, "held_samples": [1, {"t": "x"}]}'})
    assert t.pid == 7 and t.calls.get("malloc") is None
    assert t.exited_at is None and t.outstanding == ()
    assert t.alloc_bytes == [("\ufffd", 3)]


def test_a_missing_target_file_is_a_parse_error():
    with pytest.raises(ParseError):
        parse_target(7, {"alloc_bytes.folded": b"main 1\n"})


# -- the leak facts ----------------------------------------------------------------


def test_a_stack_that_keeps_growing_leaks():
    t = parse_target(7, {"target.json": _target(), "outstanding.json": _outstanding([0, 400_000, 819_200])})
    (leak,) = leaking_stacks(t)
    assert leak.frames[-1] == "leak_here" and leak.outstanding_bytes == 819_200 and leak.grew_bytes == 819_200


@pytest.mark.parametrize("held", [[819_200, 819_200, 819_200],      # filled once, before: a cache
                                  [0, 819_200, 400_000],            # freed in between
                                  [0, 819_200],                     # two points are no trend
                                  [0, LEAK_MIN_BYTES // 2, LEAK_MIN_BYTES - 1]])
def test_no_leak_without_a_lasting_trend(held):
    t = parse_target(7, {"target.json": _target(), "outstanding.json": _outstanding(held)})
    assert leaking_stacks(t) == []


# -- a bundle with a real deep dive (tests/fixtures/deepdive-6.18) -----------------

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "deepdive-6.18")


def _fixture(name: str) -> bytes:
    with open(f"{FIXTURE}/{name}", "rb") as fh:
        return fh.read()


def deepdive_bundle(tmp_path, **target_over) -> str:
    entry = json.loads(_fixture("manifest-entry.json"))
    target = json.loads(_fixture("target.json"))
    target.update(target_over)
    pid = target["pid"]
    files = {names.deepdive(pid, part): _fixture(part) for part in names.DEEPDIVE_PARTS}
    files[names.deepdive(pid, names.DEEPDIVE_TARGET)] = json.dumps(target).encode()
    from snapcollect.bundle.writer import BundleWriter

    w = BundleWriter(str(tmp_path / "dive.tar.zst"), {"tool_version": "0.0.test", "host": "box",
                                                       "kernel": "6.18.0", "interval_s": 1.0,
                                                       "clock": {"wall": 1.796e9, "monotonic": 100.0}})
    for name, data in files.items():
        w.add_file(name, data)
    w.merge_manifest("deepdive", **entry["deepdive"])
    return w.close(complete=True, stopped_by="deadline")


def _report(path):
    from snapcollect.bundle.reader import open_bundle
    from snapcollect.report.build import build_report

    return build_report(open_bundle(path))


def test_report_has_a_section_per_process_and_the_leak_finding(tmp_path):
    from snapcollect.report.model import FlameGraph, Table

    report = _report(deepdive_bundle(tmp_path))
    top = next(s for s in report.sections if s.id == "deepdive")
    (sec,) = top.subsections
    assert sec.id == "deepdive-18767" and sec.title == "Deep dive: ap (18767)"
    tables = {b.id: b for b in sec.blocks if isinstance(b, Table)}
    calls = {r["fn"]: r["calls"] for r in tables["deepdive-18767-calls"].rows}
    assert calls["malloc"] == 3360 and calls["free"] == 3330
    sizes = {r["range"]: r["count"] for r in tables["deepdive-18767-sizes"].rows}
    assert sizes["[4096, 8191]"] == 30
    (row,) = tables["deepdive-18767-outstanding"].rows
    assert row["bytes"] == 30 * 4096 and "leak_here" in row["stack"]
    flames = [b.id for b in sec.blocks if isinstance(b, FlameGraph)]
    assert flames == ["deepdive-18767-alloc-bytes", "deepdive-18767-faults"]
    (leak,) = [f for f in report.findings if f.key == "LEAKING_ALLOCATION_STACK"]
    assert "leak_here" in leak.title and leak.severity == "INFO"


def test_report_notes_an_exit(tmp_path):
    from snapcollect.report.model import Paragraph

    report = _report(deepdive_bundle(tmp_path, exited_at=1.796e9 + 5))
    sec = next(s for s in report.sections if s.id == "deepdive").subsections[0]
    assert any("exited during the window" in b.text for b in sec.blocks if isinstance(b, Paragraph))


def test_report_json_of_a_deep_dive_follows_the_schema(tmp_path):
    from snapcollect.report.json_out import render_json

    from tests.report_schema import assert_valid_report

    assert_valid_report(json.loads(render_json(_report(deepdive_bundle(tmp_path)))))


# -- the collector's side: the deep-dive process supervised like the BPF process ----


def test_deep_dive_hook_records_under_its_own_manifest_key():
    from snapcollect.collect.deepdive_hook import DeepDiveHook
    from tests.unit.test_bpf_process import PLENTY, NoStop, RecordingWriter, fake

    w = RecordingWriter()
    hook = DeepDiveHook(CollectOptions(pids=(1,), bpf_start_timeout=20), w, NoStop(), command=fake(),
                        room=lambda: PLENTY)
    assert hook.config_options() == {"pids": [1], "comms": []}
    hook.start()
    assert hook.enabled
    hook.finish_async(time.monotonic() + 10)
    assert hook.wait_finish(time.monotonic() + 10)
    entry = w.manifest["deepdive"]
    assert entry["process"]["peak_rss_kb"] > 0 and "start_s" in entry
    assert "bpf" not in w.manifest or "process" not in w.manifest.get("bpf", {})


def test_deep_dive_is_not_started_without_bpf():
    from snapcollect.collect.deepdive_hook import DeepDiveHook
    from tests.unit.test_bpf_process import NoStop, RecordingWriter

    w = RecordingWriter()
    hook = DeepDiveHook(CollectOptions(pids=(1,), no_bpf=True), w, NoStop())
    hook.start()
    assert hook.proc is None and w.manifest["deepdive"]["enabled"] is False
    assert "--no-bpf" in w.manifest["deepdive"]["reason"]


def test_the_cost_is_said_from_the_measurement():
    from snapcollect.collect.deepdive_hook import measured_cost_line

    line = measured_cost_line({"enabled": True, "targets": [5], "calibration": {
        "measured": True, "per_call_ns": {"two_traps": 5700.0, "one_trap": 3100.0}}})
    assert "5.7 us" in line and "3.1 us" in line
    assert "not started: none" in measured_cost_line({"enabled": False, "reason": "none of them"})
