"""THP fault fallbacks (bpf/thp_faults): the opt-in kretprobe's program text and attach, the
document from the maps, the parser on hostile input, the model's facts, the section, and the
culprit THP_FALLBACK names from it."""

from __future__ import annotations

import json
import re

import pytest

from findings_helpers import bpf, build, fault_files, fault_process, ramp, run
from snapcollect.analysis.model import build_model
from snapcollect.analysis.thp_faults import thp_fault_facts
from snapcollect.collect.bpf import aggregates, artifacts, attach, host_plan, program
from snapcollect.collect.bpf.capabilities import Problem
from snapcollect.collect.options import CollectOptions
from snapcollect.parsers.bpf_events import load_bpf_data
from snapcollect.parsers.records import ThpFaultCount, ThpFaults
from snapcollect.report.printable import printable_report
from snapcollect.report.sections.fault_files import NO_THP_TRACE
from snapcollect.report.sections.thp_faults import thp_faults_section, thp_faults_sections
from test_swap_residency import _Bcc, _Bpf

THP = "bpf/thp_faults"


# -- the program text: compiled only when asked for ---------------------------------------

def _program_part(text: str) -> str:
    """The C of the THP block as the preprocessor would keep it: the block's #ifdef is true
    only when the generated defines say so."""
    defined = "#define SC_THP_FALLBACK 1" in text.split("\n\n", 1)[0]
    block = text[text.index("#ifdef SC_THP_FALLBACK"):]
    return block if defined else ""


def test_the_kretprobe_program_is_in_the_text_only_with_the_option():
    off = host_plan.make_plan(CollectOptions(), {}, {}, {})
    on = host_plan.make_plan(CollectOptions(thp_fallback=True), {}, {}, {})
    assert _program_part(off.text) == "" and "#define SC_THP_FALLBACK" not in off.text
    body = _program_part(on.text)
    assert "int on_thp_fault_return(struct pt_regs *ctx)" in body and "PT_REGS_RC(ctx)" in body
    assert "SC_VM_FAULT_FALLBACK 0x800" in body and "thp_by_proc" in body
    assert f"#define SC_THP_KEYS {program.THP_KEYS}" in on.text
    assert program.KPROBE_GROUPS[THP] == [("kretprobe", ("do_huge_pmd_anonymous_page",),
                                           "on_thp_fault_return")]


def test_it_is_opt_in_and_says_how_to_ask_for_it():
    why, remedy = host_plan.make_plan(CollectOptions(), {}, {}, {}).missing[THP]
    assert why == ("not measured by default: it needs a kretprobe on the THP fault path, which patches "
                   "kernel text")
    assert remedy == "give --thp-fallback (on a kernel that offers kprobes)"
    on = host_plan.make_plan(CollectOptions(thp_fallback=True), {}, {}, {})
    assert THP not in on.missing and "bpf/swap_residency" in on.missing     # each option its own
    assert CollectOptions.from_wire({"thp_fallback": True}).thp_fallback is True
    assert CollectOptions.from_wire({"thp_fallback": "yes"}).thp_fallback is False


def test_the_bpf_process_is_sent_the_kprobe_options():
    from snapcollect.collect.bpf import wire
    assert {"thp_fallback", "swap_residency"} <= set(wire.OPTIONS)


def test_the_cli_flag_reaches_the_options():
    from snapcollect.cli import build_parser
    ns = build_parser().parse_args(["collect", "--thp-fallback"])
    assert CollectOptions.from_namespace(ns).thp_fallback is True
    assert CollectOptions.from_namespace(build_parser().parse_args(["collect"])).thp_fallback is False


def test_error_slots_match_the_program():
    text = program._source()
    slots = {int(n): name for name, n in re.findall(r"#define ERR_([A-Z_]+) (\d+)", text) if name != "SLOTS"}
    assert [slots[i].lower().replace("start_full", "start_map_full") for i in range(len(slots))] == \
        list(artifacts.ERROR_SLOTS)
    assert f"#define ERR_SLOTS {len(artifacts.ERROR_SLOTS)}" in text
    assert "count_error(ERR_THP_KEYS_FULL)" in text


# -- attach ----------------------------------------------------------------------------------

def _attach(bpf_obj, kprobe_problem=lambda: None):
    a = attach.Attachments(_Bcc, bpf_obj, program.Plan(text="", probes=list(program.TRACEPOINTS)),
                           kprobe_problem=kprobe_problem)
    # --thp-fallback without --swap-residency, as the loader seeds it from the plan
    unavailable = {"bpf/swap_residency": Problem("not measured by default", "give --swap-residency")}
    return a, unavailable, a.attach(unavailable)


def test_the_kretprobe_is_attached_and_taken_off():
    b = _Bpf()
    a, unavailable, result = _attach(b)
    assert THP not in unavailable and result["kretprobe:do_huge_pmd_anonymous_page"] == "ok"
    assert a.kprobes == [("kretprobe", "do_huge_pmd_anonymous_page")]
    a.detach()
    assert b.kprobes == {} and b.detached == [b"do_huge_pmd_anonymous_page"]


def test_a_kernel_without_the_function_costs_only_this_artifact():
    b = _Bpf(refuse={"do_huge_pmd_anonymous_page"})     # CONFIG_TRANSPARENT_HUGEPAGE=n
    a, unavailable, result = _attach(b)
    p = unavailable[THP]
    assert "could not attach a kretprobe to do_huge_pmd_anonymous_page" in p.reason
    assert p.remedy == program.KPROBE_REMEDY
    assert set(unavailable) == {THP, "bpf/swap_residency"} and result["perf:major-faults"] == "ok"
    assert result["kretprobe:do_huge_pmd_anonymous_page"].startswith("failed")
    assert a.kprobes == [] and b.kprobes == {}


def test_a_kernel_that_offers_no_kprobes_is_told_so_without_trying():
    b = _Bpf()
    _, unavailable, result = _attach(b, kprobe_problem=lambda: "this kernel offers no kprobes (...)")
    assert unavailable[THP].reason == "this kernel offers no kprobes (...)"
    assert b.kprobes == {} and result["kretprobe"].startswith("not attached")


# -- the document from the maps, and the parser ---------------------------------------------

class _Key:
    def __init__(self, tgid, comm):
        self.tgid, self.comm = tgid, comm.encode().ljust(16, b"\0")


class _Val:
    def __init__(self, attempts, fallbacks, other):
        self.attempts, self.fallbacks, self.other = attempts, fallbacks, other


class _Maps:
    def __init__(self, rows, counts):
        self.rows, self.counts = rows, counts

    def items(self, name):
        assert name == "thp_by_proc"
        return [(_Key(t, c), _Val(*v)) for t, c, v in self.rows]

    def array_ints(self, name, n):
        assert name == "thp_counts" and n == 3
        return list(self.counts)


class _Writer:
    def __init__(self):
        self.files = {}

    def add_file(self, name, text):
        self.files[name] = text


def _written(rows, counts, errors=None, own=(), unavailable=()):
    w = _Writer()
    aw = artifacts.ArtifactWriter(w, _Maps(rows, counts), None, program.Plan(text="", probes=[]),
                                  {u: Problem("x", "y") for u in unavailable}, set(own), "perf")
    aw.write_thp_faults(errors or {}, 0.0)
    return json.loads(w.files[THP]) if THP in w.files else None


def test_the_document_from_the_maps_leaves_snapcollect_out():
    d = _written([(77, "java", (5000, 4400, 0)), (90, "db", (100, 3, 1)), (4242, "snapcollect", (50, 50, 0))],
                 (5150, 4453, 1), errors={"thp_keys_full": 7}, own={4242})
    assert [p["pid"] for p in d["processes"]] == [77, 90]
    assert d["processes"][0] == {"pid": 77, "comm": "java", "attempts": 5000, "fallbacks": 4400, "other": 0}
    assert (d["attempts"], d["fallbacks"], d["other"], d["map_full"]) == (5150, 4453, 1, 7)
    assert "kretprobe on do_huge_pmd_anonymous_page" in d["source"]
    assert "VM_FAULT_FALLBACK" in d["note"] and "memory cgroup" in d["note"]
    assert d["tracked_entries"] == program.THP_KEYS == 4096
    assert _written([], (0, 0, 0), unavailable=(THP,)) is None


def test_the_document_keeps_the_first_hundred_by_fallbacks():
    d = aggregates.thp_faults_document([(i, f"p{i}", 10, i % 10, 0) for i in range(150)], 1500, 675, 0, {}, 4096)
    assert len(d["processes"]) == 100 and d["processes_omitted"] == 50
    assert d["processes"][0]["fallbacks"] == 9


def _data(doc):
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return load_bpf_data({}, {}, {}, {THP: raw})


def _doc(**kw):
    d = {"attempts": 5150, "fallbacks": 4453, "other": 1, "tracked_entries": 4096, "map_full": 0,
         "processes": [{"pid": 77, "comm": "java", "attempts": 5000, "fallbacks": 4400, "other": 0},
                       {"pid": 90, "comm": "db", "attempts": 100, "fallbacks": 3, "other": 1}]}
    d.update(kw)
    return d


def test_the_parser_reads_the_document():
    r = _data(_doc()).thp_faults
    assert r.processes[0] == ThpFaultCount(77, "java", 5000, 4400, 0)
    assert (r.attempts, r.fallbacks, r.other, r.tracked_entries, r.warnings) == (5150, 4453, 1, 4096, [])


@pytest.mark.parametrize("row, why", [
    ({"pid": "77", "comm": "x", "attempts": 1}, "pid is not an integer"),
    ({"pid": 7, "comm": "x", "attempts": -1}, "attempts is negative"),
    ({"pid": 7, "comm": "x", "attempts": 1 << 70}, "beyond a 64-bit counter"),
    ({"pid": 7, "comm": "x", "attempts": 1, "fallbacks": 2}, "exceed attempts"),
    ({"pid": 7, "comm": ["x"], "attempts": 1}, "comm is not a string"),
    ({"pid": 7, "comm": "x", "attempts": True}, "attempts is not an integer"),
    ({"pid": 7, "comm": "x", "attempts": 1.5}, "attempts is not an integer"),
    ("a row", "not an object"),
])
def test_a_bad_row_is_left_out_with_a_warning_and_the_rest_kept(row, why):
    r = _data(_doc(processes=[row, {"pid": 77, "comm": "java", "attempts": 9, "fallbacks": 9}])).thp_faults
    assert [p.pid for p in r.processes] == [77]
    assert len(r.warnings) == 1 and why in r.warnings[0] and r.warnings[0].startswith("process row 0")


def test_a_comm_that_is_not_text_is_kept_and_the_report_shows_it_escaped():
    r = _data(b'{"attempts": 1, "processes": [{"pid": 5, "comm": "ab\\udcff\\u0007cdefghijklmnopqrstu", '
              b'"attempts": 1, "fallbacks": 1}]}').thp_faults
    comm = r.processes[0].comm
    assert comm == "ab\udcff\x07cdefghijklmn" and len(comm) == 16     # lossless, bounded
    shown = printable_report(thp_faults_section(thp_fault_facts(_ds(r))))
    row = shown.blocks[1].rows[0]
    assert row["comm"] == "ab\\xff\\x07cdefghijklmn"
    row["comm"].encode("utf-8")        # no lone surrogate left to fail the report's write


@pytest.mark.parametrize("doc", [
    [], "x", 5, {"processes": "no"}, {"attempts": -1}, {"fallbacks": "many"}, {"attempts": 1 << 64},
    {"map_full": None}, b"\xff\xfe{", b"{not json",
])
def test_a_hostile_document_is_a_warning_not_a_traceback(doc):
    data = _data(doc)
    assert data.thp_faults is None
    st, reason = data.available[THP]
    assert st == "error" and THP in reason


# -- facts, section, and THP_FALLBACK ---------------------------------------------------------

def _thp(**kw) -> ThpFaults:
    base = dict(processes=[ThpFaultCount(77, "java", 5000, 4400, 0), ThpFaultCount(90, "db", 100, 3, 1),
                           ThpFaultCount(5, "idle", 0, 0, 0)],
                attempts=5150, fallbacks=4453, other=1, tracked_entries=4096, map_full=0)
    base.update(kw)
    return ThpFaults(**base)


def _ds(thp, vmstat=None, status=("ok", None)):
    b = bpf(thp_faults=thp, fault_files=fault_files(fault_process()))
    b.available[THP] = status
    return build(bpf=b, vmstat=vmstat)


def test_facts_give_each_process_its_fallback_share_and_the_host_totals():
    f = thp_fault_facts(_ds(_thp()))
    assert f.ok and (f.attempts, f.fallbacks, f.other, f.mapped) == (5150, 4453, 1, 696)
    assert f.fallback_share == pytest.approx(4453 / 5150)
    assert [p.pid for p in f.processes] == [77, 90]          # a row without attempts is dropped
    assert f.processes[0].fallback_share == pytest.approx(0.88) and f.top.comm == "java"
    none = thp_fault_facts(_ds(_thp(processes=[ThpFaultCount(90, "db", 100, 0, 0)], fallbacks=0)))
    assert none.top is None and none.fallback_share == 0.0
    missing = thp_fault_facts(build(bpf=bpf()))
    assert not missing.ok and missing.processes == () and missing.fallback_share is None


def test_the_model_holds_the_facts():
    assert build_model(_ds(_thp())).thp_faults.top.pid == 77


def test_the_section_shows_the_totals_and_the_processes():
    sec = thp_faults_section(thp_fault_facts(_ds(_thp(map_full=12))))
    text = sec.blocks[0].text
    assert "5,150 anonymous fault(s) asked for a transparent huge page" in text
    assert "696 mapped one, 4,453 (86%) fell back to 4 KiB pages" in text and "1 ended otherwise" in text
    assert "12 fault(s) of processes beyond the map's 4,096" in text
    table = sec.blocks[1]
    assert table.rows[0] == {"pid": 77, "comm": "java", "attempts": 5000, "fallbacks": 4400,
                             "share": pytest.approx(88.0), "other": 0}
    assert table.source == [THP]


def test_the_section_is_placed_with_the_huge_page_content_and_points_there():
    from snapcollect.report.sections.bpf import bpf_sections
    m = build_model(_ds(_thp()))
    ids = [s.id for s in bpf_sections(m)]
    assert ids[ids.index("fault-files") + 1] == "thp-faults"
    files = next(s for s in bpf_sections(m) if s.id == "fault-files")
    huge = next(s for s in files.subsections if s.id == "hugepages-by-process").blocks[-1].text
    assert NO_THP_TRACE not in huge and f"`{THP}`" in huge
    plain = build_model(build(bpf=bpf(fault_files=fault_files(fault_process()))))
    files = next(s for s in bpf_sections(plain) if s.id == "fault-files")
    assert NO_THP_TRACE in next(s for s in files.subsections if s.id == "hugepages-by-process").blocks[-1].text
    assert "--thp-fallback" in NO_THP_TRACE


def test_not_measured_says_why_and_where_the_counters_are():
    m = build_model(_ds(None, status=("unavailable", "this kernel offers no kprobes")))
    secs = thp_faults_sections(m)
    assert len(secs) == 1 and "Not measured" in secs[0].blocks[0].text
    assert "this kernel offers no kprobes" in secs[0].blocks[0].text and "thp_fault_fallback" in secs[0].blocks[0].text
    assert thp_faults_sections(build_model(build(bpf=bpf()))) == []      # an older bundle: nothing
    quiet = thp_faults_section(thp_fault_facts(_ds(_thp(processes=[], attempts=0, fallbacks=0, other=0))))
    assert len(quiet.blocks) == 1 and "No anonymous fault asked" in quiet.blocks[0].text


VM = {"thp_fault_alloc": ramp(10), "thp_fault_fallback": ramp(5)}


def test_thp_fallback_names_the_process_with_the_most_fallbacks_and_cites_the_artifact():
    f, _ = run("THP_FALLBACK", _ds(_thp(), vmstat=VM))
    assert "java (pid 77) had the most fallbacks: 4,400 of its 5,000 THP faults (88%" in f.explanation
    assert "4,453 of 5,150 host-wide while the kretprobe was on" in f.explanation
    assert THP in f.evidence.artifacts and "series/proc/vmstat" in f.evidence.artifacts
    assert f.evidence.values["pid"] == 77 and f.evidence.values["comm"] == "java"
    assert f.evidence.values["processes"][0]["fallbacks"] == 4400 and len(f.evidence.values["processes"]) == 2
    assert round(f.evidence.values["pct"], 1) == 33.3        # the vmstat figures stay the rule's own


def test_thp_fallback_is_unchanged_without_the_artifact():
    plain, _ = run("THP_FALLBACK", build(vmstat=VM))
    for ds in (_ds(None, vmstat=VM, status=("unavailable", "no kprobes")),
               _ds(_thp(processes=[ThpFaultCount(90, "db", 100, 0, 0)], fallbacks=0), vmstat=VM)):
        f, _ = run("THP_FALLBACK", ds)
        assert f.explanation == plain.explanation and f.evidence.artifacts == plain.evidence.artifacts
        assert THP not in f.evidence.artifacts and "pid" not in f.evidence.values
    assert "had the most fallbacks" not in plain.explanation
    assert "fell back to 4 KiB pages (memory too fragmented, or the cgroup charge failed). The program" \
        in plain.explanation
