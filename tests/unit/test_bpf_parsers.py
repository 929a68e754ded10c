"""BPF records of a bundle to typed records; the kernel log's OOM report; OOM kills merged from both."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from bpf_fixtures import dataset, inputs, kmsg_lines, load, manifest, text
from snapcollect.analysis.oom import merge_oom_kills, oom_facts
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.bpf_events import (decode_flags, flag_table, load_bpf_data, memcg_from_stack,
                                            oom_kill_from_record, symbolic_table)
from snapcollect.parsers.oom_report import oom_kills_from_kmsg
from snapcollect.parsers.records import BpfData, KmsgLine


def log_kills(lines: list[KmsgLine]):
    return [k for k, _ in oom_kills_from_kmsg(lines)]

FORMATS = load("tracepoint_formats.json")
GFP = flag_table(FORMATS["vmscan:mm_vmscan_memcg_reclaim_begin"])


def test_gfp_decoding_matches_the_kernels_own_ftrace_text():
    """Each reclaim record's gfp_flags, decoded, is what ftrace printed for the same events."""
    kernel = set(re.findall(r"gfp_flags=(\S+)", text("ftrace-memcg-reclaim-begin.txt")))
    ours = {decode_flags(r["gfp_flags"], GFP) for r in load("reclaim.json")}
    assert kernel and ours == kernel


@pytest.mark.parametrize("value, expected", [
    (0, "none"),
    (0xcc0, "GFP_KERNEL"),
    (0x140cca, "GFP_HIGHUSER_MOVABLE|__GFP_COMP"),
    (0xcc0 | (1 << 30), "GFP_KERNEL|0x40000000"),
])
def test_decode_flags_like_trace_print_flags_seq(value, expected):
    assert decode_flags(value, GFP) == expected


def test_without_a_table_flags_stay_hex():
    assert decode_flags(0xcc0, []) == "0xcc0"


def test_compaction_status_names_come_from_the_format():
    names = symbolic_table(FORMATS["compaction:mm_compaction_end"], "status")
    assert names[5] == "complete" and names[8] == "success" and names[1] == "skipped"


def test_print_fmt_with_an_unknown_expression_is_a_parse_error():
    bad = 'print fmt: "%s", __print_flags(REC->gfp_flags, "|", {(sizeof(x)), "X"})'
    with pytest.raises(ParseError):
        flag_table(bad)


def test_load_bpf_data_from_the_captured_artifacts():
    data = load_bpf_data(*inputs())
    kill, = data.oom_kills
    rec = load("oom_kill.json")[0]
    assert (kill.victim_pid, kill.victim_comm, kill.trigger_pid) == (rec["pid"], "sc-bpf-oom", rec["pid"])
    assert kill.memcg is True and kill.anon_rss_kb == rec["anon_rss"] and kill.sources == ("bpf/oom_kill",)
    assert kill.constraint is None                    # only the kernel log has it
    assert data.reclaim and all(s.kind == "memcg" and s.pid == rec["pid"] for s in data.reclaim)
    assert all(s.gfp_flags.startswith("GFP_") for s in data.reclaim)
    assert [s.t for s in data.reclaim] == sorted(s.t for s in data.reclaim)
    assert data.compaction[0].status == "complete"
    assert data.fault_sample_period == 64
    assert ("sc-faulter;__libc_start_call_main;main;sc_fault_outer;sc_fault_touch", 65536) in data.fault_stacks
    assert any(e["comm"] == "sc-grower" and e["syscall"] == "brk" for e in data.heap_growth)
    # captured before bpf/fault_files and the shrinker/kswapd/migration artifacts existed: those are missing
    later = {"bpf/fault_files", "bpf/shrinkers", "bpf/shrinker_slow", "bpf/kswapd_runs", "bpf/migration",
                 "bpf/swap_residency", "bpf/thp_faults"}
    assert all(st == "ok" for name, (st, _) in data.available.items() if name not in later)
    assert all(data.available[name][0] == "missing" for name in later - {"bpf/fault_files"})
    assert not (data.shrinkers or data.kswapd_runs or data.migration_by_reason)
    assert data.available["bpf/fault_files"][0] == "missing" and data.fault_files is None


def test_kernel_log_completes_the_bpf_kill():
    merged = merge_oom_kills(load_bpf_data(*inputs()).oom_kills, log_kills(kmsg_lines()))
    kill, = merged
    assert kill.constraint == "CONSTRAINT_MEMCG"
    assert kill.oom_memcg == kill.task_memcg == "/snapcollect-fixture-oom"
    assert kill.sources == ("bpf/oom_kill", "kmsg")
    logged = re.search(r"anon-rss:(\d+)kB", next(ln.text for ln in kmsg_lines() if "Killed process" in ln.text))
    assert kill.anon_rss_kb == int(logged.group(1))
    assert merge_oom_kills(merged, log_kills(kmsg_lines())) == merged      # idempotent


def test_without_bpf_the_kill_comes_from_the_kernel_log_alone():
    (kill, lines), = oom_kills_from_kmsg(kmsg_lines())
    rec = load("oom_kill.json")[0]
    assert (kill.victim_pid, kill.victim_comm) == (rec["pid"], "sc-bpf-oom")
    assert kill.trigger_comm == "sc-bpf-oom" and kill.trigger_pid == rec["pid"]   # from the CPU: line
    assert kill.memcg is True and kill.total_vm_kb == 68268 and kill.pgtables_kb == 172 and kill.uid == 0
    assert [ln.text.split(":")[0] for ln in lines][:1] == ["sc-bpf-oom invoked oom-killer"]
    assert merge_oom_kills([], log_kills(kmsg_lines()))[0].sources == ("kmsg",)


def test_kills_before_the_window_are_earlier_kills_not_kills_of_the_window():
    facts = oom_facts(dataset(kmsg=kmsg_lines(before_window=True), bpf=BpfData()))
    assert facts.kills == () and len(facts.earlier) == 1
    assert facts.earlier[0].victim_comm == "sc-bpf-oom"


def _line(seq: int, t: float, text_: str) -> KmsgLine:
    return KmsgLine(seq=seq, ts_us=int(t * 1e6), t=t, prio=3, text=text_, before_window=False)


def test_old_kernel_log_formats():
    lines = [
        # 4.14: no oom-kill: summary, no UID/pgtables
        _line(1, 100.0, "Out of memory: Kill process 321 (java) score 901 or sacrifice child"),
        _line(2, 100.1, "Killed process 321 (java) total-vm:4096000kB, anon-rss:2048000kB, "
                        "file-rss:1024kB, shmem-rss:0kB"),
        # 3.10: sizes without shmem-rss
        _line(3, 200.0, "Killed process 654 (mysqld) total-vm:100kB, anon-rss:80kB, file-rss:4kB"),
    ]
    kills = [k for k, _ in oom_kills_from_kmsg(lines)]
    assert [(k.victim_pid, k.victim_comm, k.anon_rss_kb) for k in kills] == [(321, "java", 2048000),
                                                                            (654, "mysqld", 80)]
    assert kills[0].shmem_rss_kb == 0 and kills[1].shmem_rss_kb is None and kills[0].memcg is None


def test_a_pid_only_bpf_kill_takes_the_name_from_the_kernel_log():
    clock = manifest()["clock"]
    rec = {k: v for k, v in load("oom_kill.json")[0].items()
           if k in ("t", "ts_ns", "pid", "trigger_pid", "trigger_comm", "cpu")}     # a 5.x event
    kill = oom_kill_from_record(rec, clock)
    assert kill.victim_comm == "[unknown]" and kill.anon_rss_kb is None and kill.memcg is None
    merged, = merge_oom_kills([kill], log_kills(kmsg_lines()))
    assert merged.victim_comm == "sc-bpf-oom" and merged.anon_rss_kb is not None and merged.memcg is True


def test_a_kill_far_from_the_log_line_in_time_is_not_matched():
    kill = oom_kill_from_record(load("oom_kill.json")[0])
    far = replace(kill, t=kill.t + 3600)
    out = merge_oom_kills([far], log_kills(kmsg_lines()))
    assert len(out) == 2 and out[0].sources == ("kmsg",) and out[1].sources == ("bpf/oom_kill",)


def test_memcg_from_stack():
    assert memcg_from_stack(["out_of_memory", "mem_cgroup_out_of_memory"]) is True
    assert memcg_from_stack(["out_of_memory", "__alloc_pages_may_oom", "__alloc_pages_slowpath"]) is False
    assert memcg_from_stack([]) is None and memcg_from_stack(None) is None


def test_unavailable_artifacts_carry_the_remedy():
    streams, status, m, files = inputs()
    m = dict(m)
    m["artifacts"] = [{"name": "bpf/oom_kill", "kind": "stream", "status": "unavailable",
                       "reason": "not running as root (uid 1000)", "remedy": "run as root"}]
    m["bpf"] = {"enabled": False, "reason": "not running as root"}
    data = load_bpf_data({}, {"bpf/oom_kill": ("unavailable", "not running as root (uid 1000)")}, m, {})
    assert data.available["bpf/oom_kill"] == ("unavailable", "not running as root (uid 1000); to fix: run as root")
    assert data.available["bpf/reclaim"] == ("missing", "not running as root")


def test_a_broken_artifact_costs_only_itself():
    """One artifact that does not parse is marked error; the other BPF artifacts still load."""
    streams, status, m, files = inputs()
    whole = load_bpf_data(streams, status, m, files)
    broken = load_bpf_data(streams, status, m, dict(files, **{"bpf/heap_growth": b"{not json"}))
    assert broken.available["bpf/heap_growth"][0] == "error"
    assert "bpf/heap_growth" in broken.available["bpf/heap_growth"][1]
    assert broken.heap_growth == [] and whole.heap_growth
    assert broken.reclaim == whole.reclaim and broken.oom_kills == whole.oom_kills
    bad = load_bpf_data(dict(streams, **{"bpf/reclaim": [{"t": 1.0, "pid": 1}]}), status, m, files)
    assert bad.available["bpf/reclaim"][0] == "error" and "latency_ns" in bad.available["bpf/reclaim"][1]
    assert bad.reclaim == [] and bad.oom_kills == whole.oom_kills


# The gfp part of 6.1's print fmt (Debian 6.1.0 vmscan:mm_vmscan_memcg_reclaim_begin):
# constants carry a lowercase 'u' suffix.
FMT_61 = ('print fmt: "order=%d gfp_flags=%s", REC->order, (REC->gfp_flags) ? '
          '__print_flags(REC->gfp_flags, "|", '
          '{(unsigned long)(((gfp_t)(0x400u|0x800u)) | ((gfp_t)0x40u) | ((gfp_t)0x80u)), "GFP_KERNEL"}, '
          '{(unsigned long)((gfp_t)0x100000u), "__GFP_HARDWALL"}, '
          '{(unsigned long)((gfp_t)0x40000ull), "__GFP_COMP"}) : "none"')


def test_lowercase_integer_suffixes_of_6_1_formats():
    table = flag_table(FMT_61)
    assert table == [(0xcc0, "GFP_KERNEL"), (0x100000, "__GFP_HARDWALL"), (0x40000, "__GFP_COMP")]
    assert decode_flags(0x140cc0, table) == "GFP_KERNEL|__GFP_HARDWALL|__GFP_COMP"


def test_an_unreadable_print_fmt_keeps_the_events():
    """A flag table this parser cannot read leaves flags in hex; the stalls are all there."""
    streams, status, m, files = inputs()
    fmts = json.loads(files["bpf/tracepoint_formats"])
    fmts = {k: v.replace("__print_flags(REC->gfp_flags, \"|\", {", "__print_flags(REC->gfp_flags, \"|\", {sizeof(x) ")
            for k, v in fmts.items()}
    data = load_bpf_data(streams, status, m, dict(files, **{"bpf/tracepoint_formats": json.dumps(fmts).encode()}))
    whole = load_bpf_data(streams, status, m, files)
    assert data.available["bpf/tracepoint_formats"][0] == "error"
    assert len(data.reclaim) == len(whole.reclaim) > 0
    assert all(s.gfp_flags.startswith("0x") or s.gfp_flags == "none" for s in data.reclaim)


def test_records_without_wall_time_use_the_clock():
    clock = manifest()["clock"]
    rec = dict(load("oom_kill.json")[0])
    t = rec.pop("t")
    assert oom_kill_from_record(rec, clock).t == pytest.approx(t, abs=1e-5)
    json.dumps(rec)
