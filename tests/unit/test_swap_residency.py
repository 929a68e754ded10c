"""Swap residency (bpf/swap_residency): the kprobe pair's attach, the document, the parser on
hostile input, the model's facts, the section, and the evidence SWAP_THRASHING takes from it."""

from __future__ import annotations

import json

import pytest

from findings_helpers import bpf, build, ramp, run
from snapcollect.analysis.model import build_model
from snapcollect.analysis.swap_residency import swap_residency_facts
from snapcollect.collect.bpf import aggregates, attach, program
from snapcollect.collect.bpf.capabilities import Problem
from snapcollect.parsers.bpf_events import load_bpf_data
from snapcollect.parsers.records import SwapinResidency, SwapResidency
from snapcollect.report.sections.swap_residency import swap_residency_section, swap_residency_sections


# -- attach: a pair, each probe on the first function that takes it ---------------------

class _Bcc:
    class PerfType:
        SOFTWARE = 1

    class PerfSWConfig:
        PAGE_FAULTS = 2
        PAGE_FAULTS_MAJ = 6


class _Bpf:
    def __init__(self, refuse=()):
        self.refuse = set(refuse)
        self.tracepoint_fds, self.raw_tracepoint_fds, self.open_perf_events = {}, {}, {}
        self.kprobes: dict[bytes, str] = {}
        self.detached: list[bytes] = []

    def _attach(self, kind, event, fn_name):
        if event.decode() in self.refuse:
            raise Exception(f"Failed to attach BPF program {fn_name} to {kind} {event}")
        self.kprobes[event] = kind

    def attach_kprobe(self, event, fn_name):
        self._attach("kprobe", event, fn_name)

    def attach_kretprobe(self, event, fn_name):
        self._attach("kretprobe", event, fn_name)

    def detach_kprobe(self, event):
        self.detached.append(event)
        self.kprobes.pop(event)

    detach_kretprobe = detach_kprobe

    def attach_raw_tracepoint(self, tp, fn_name):
        raise Exception("raw tracepoints not in this test")

    def attach_tracepoint(self, tp, fn_name):
        self.tracepoint_fds[tp] = 1

    def detach_tracepoint(self, tp):
        pass

    def attach_perf_event(self, ev_type, ev_config, fn_name, sample_period):
        self.open_perf_events[(ev_type, ev_config)] = 1

    def detach_perf_event(self, ev_type, ev_config):
        pass

    def cleanup(self):
        pass


def _attach(bpf, kprobe_problem=lambda: None):
    a = attach.Attachments(_Bcc, bpf, program.Plan(text="", probes=list(program.TRACEPOINTS)),
                           kprobe_problem=kprobe_problem)
    # as the loader seeds it from the default plan: bpf/thp_faults is opt-in (--thp-fallback)
    unavailable = {"bpf/thp_faults": Problem("not measured by default", "give --thp-fallback")}
    result = a.attach(unavailable)
    return a, unavailable, result


def test_a_renamed_function_is_found_under_its_older_name():
    bpf = _Bpf(refuse={"folio_alloc_swap", "swap_cache_get_folio"})      # a 5.10 kernel
    a, unavailable, result = _attach(bpf)
    assert "bpf/swap_residency" not in unavailable
    assert result["kretprobe:get_swap_page"] == "ok" and result["kprobe:lookup_swap_cache"] == "ok"
    assert a.kprobes == [("kretprobe", "get_swap_page"), ("kprobe", "lookup_swap_cache")]
    a.detach()
    assert bpf.kprobes == {} and a.kprobes == []


def test_half_a_pair_is_taken_off_and_the_artifact_says_why():
    bpf = _Bpf(refuse={"swap_cache_get_folio", "lookup_swap_cache"})
    a, unavailable, result = _attach(bpf)
    p = unavailable["bpf/swap_residency"]
    assert "kprobe to swap_cache_get_folio or lookup_swap_cache" in p.reason and "kprobes" in p.remedy
    assert bpf.kprobes == {} and bpf.detached == [b"folio_alloc_swap"] and a.kprobes == []
    assert result["kretprobe:folio_alloc_swap"].startswith("detached")
    assert set(unavailable) == {"bpf/swap_residency", "bpf/thp_faults"}          # nothing else depends on kprobes


def test_a_kernel_without_kprobes_costs_only_this_artifact():
    bpf = _Bpf(refuse={"folio_alloc_swap", "get_swap_page", "swap_cache_get_folio", "lookup_swap_cache"})
    _, unavailable, result = _attach(bpf)
    assert set(unavailable) == {"bpf/swap_residency", "bpf/thp_faults"}
    assert result["perf:major-faults"] == "ok"


def test_a_kernel_that_offers_no_kprobes_is_told_so_without_trying():
    bpf = _Bpf()
    _, unavailable, result = _attach(bpf, kprobe_problem=lambda: "this kernel offers no kprobes (...)")
    assert unavailable["bpf/swap_residency"].reason == "this kernel offers no kprobes (...)"
    assert bpf.kprobes == {} and result["kprobe/kretprobe"].startswith("not attached")


def test_kprobes_are_offered_by_the_pmu_or_tracefs(tmp_path, monkeypatch):
    from snapcollect.collect.bpf import capabilities
    monkeypatch.setattr(capabilities, "KPROBE_PMU", str(tmp_path / "kprobe"))
    monkeypatch.setattr(capabilities, "KPROBE_EVENTS", (str(tmp_path / "kprobe_events"),))
    assert "offers no kprobes" in capabilities.kprobe_problem()
    (tmp_path / "kprobe_events").write_text("")
    assert capabilities.kprobe_problem() is None
    (tmp_path / "kprobe_events").unlink()
    (tmp_path / "kprobe").mkdir()
    assert capabilities.kprobe_problem() is None


# -- the document and the parser --------------------------------------------------------------

def _doc():
    return aggregates.swap_residency_document(
        hist=[(18, 300), (21, 100), (10, 50)],
        procs=[(812, "thrash", 420, 420 * 300_000, 350), (90, "db", 30, 30 * 4_000_000, 0)],
        slots_allocated=2000, swapins_matched=450, errors={"swap_keys_full": 2}, entries=32768)


def test_the_document_holds_the_histogram_processes_and_counts():
    d = _doc()
    assert d["histogram_us"] == [[10, 50], [18, 300], [21, 100]]
    assert [p["pid"] for p in d["processes"]] == [812, 90] and d["map_full"] == 2
    assert d["slots_allocated"] == 2000 and d["swapins_matched"] == 450 and "32,768" in d["note"]


def _data(doc):
    return load_bpf_data({}, {}, {}, {"bpf/swap_residency": json.dumps(doc).encode()})


def test_the_parser_reads_the_document():
    r = _data(_doc()).swap_residency
    assert r.histogram_us == {10: 50, 18: 300, 21: 100} and r.slots_allocated == 2000
    assert r.processes[0] == SwapinResidency(812, "thrash", 420, 420 * 300_000, 350)


@pytest.mark.parametrize("doc", [
    [], "x", {"histogram_us": "no"}, {"histogram_us": [[1]]}, {"histogram_us": [[99, 1]]},
    {"histogram_us": [[1, -5]]}, {"processes": [{"pid": "x"}]}, {"processes": "no"},
    {"slots_allocated": True}, {"histogram_us": [["1", 2]]},
])
def test_hostile_documents_are_a_warning_not_a_traceback(doc):
    data = _data(doc)
    assert data.swap_residency is None
    st, reason = data.available["bpf/swap_residency"]
    assert st != "ok" and "bpf/swap_residency" in reason


def test_not_json_is_a_warning():
    data = load_bpf_data({}, {}, {}, {"bpf/swap_residency": b"\xff\xfe{"})
    assert data.swap_residency is None and data.available["bpf/swap_residency"][0] != "ok"


# -- facts, section, and SWAP_THRASHING's evidence ---------------------------------------

def _residency(**kw) -> SwapResidency:
    base = dict(histogram_us={10: 50, 18: 300, 21: 100},
                processes=[SwapinResidency(812, "thrash", 420, 420 * 300_000, 350),
                           SwapinResidency(90, "db", 30, 30 * 4_000_000, 0)],
                slots_allocated=2000, swapins_matched=450, tracked_entries=32768, map_full=0)
    base.update(kw)
    return SwapResidency(**base)


def _ds(residency, vmstat=None):
    b = bpf(swap_residency=residency)
    b.available["bpf/swap_residency"] = ("ok", None)
    return build(bpf=b, vmstat=vmstat)


def test_facts_give_the_median_bucket_and_the_share_read_back_soon():
    f = swap_residency_facts(_ds(_residency()))
    assert f.ok and f.read_back == 450 and f.swapped_out == 2000
    assert (f.median.low, f.median.high) == (131072, 262143)        # slot 18 holds the 225th of 450
    assert f.soon == 350 and f.soon_share == pytest.approx(350 / 450)
    assert f.processes[0].mean_us == 300_000 and f.processes[0].soon_share == pytest.approx(350 / 420)
    assert f.processes[1].soon_share == 0.0


def test_the_section_shows_the_histogram_and_the_processes():
    sec = swap_residency_section(swap_residency_facts(_ds(_residency())))
    text = sec.blocks[0].text
    assert "2,000 page(s) were given a swap slot" in text and "450 of them were faulted back" in text
    assert "78% of the pages read back had been out less than a second" in text
    assert "131 ms to 262 ms" in text
    hist = sec.blocks[1].text
    assert "131072 -> 262143 : 300" in hist and "|****************************************|" in hist
    table = sec.blocks[2]
    assert table.rows[0]["comm"] == "thrash" and table.rows[0]["mean_ms"] == 300.0
    assert table.rows[0]["soon"] == pytest.approx(83.33, abs=0.01)


def test_a_host_without_kprobes_gets_one_sentence_where_to_look_instead():
    b = bpf()
    b.available["bpf/swap_residency"] = ("unavailable", "could not attach a kretprobe to folio_alloc_swap")
    m = build_model(build(bpf=b))
    secs = swap_residency_sections(m)
    assert len(secs) == 1 and "Not measured" in secs[0].blocks[0].text
    assert "bpf/fault_files" in secs[0].blocks[0].text
    assert swap_residency_sections(build_model(build(bpf=bpf()))) == []     # an older bundle: nothing


def test_nothing_read_back_is_said_plainly():
    f = swap_residency_facts(_ds(_residency(histogram_us={}, processes=[], swapins_matched=0)))
    sec = swap_residency_section(f)
    assert len(sec.blocks) == 1 and "none of them was read back" in sec.blocks[0].text


def test_swap_thrashing_cites_the_residency_when_there_is_one():
    vm = {"pswpin": ramp(500), "pswpout": ramp(500)}
    f, _ = run("SWAP_THRASHING", _ds(_residency(), vmstat=vm))
    assert "Of 450 pages read back whose swap-out was seen, 78% had been out less than a second" in f.explanation
    assert "bpf/swap_residency" in f.evidence.artifacts
    assert f.evidence.values["read_back_soon_pct"] == pytest.approx(77.78, abs=0.01)
    plain, _ = run("SWAP_THRASHING", build(vmstat=vm))
    assert "pages read back" not in plain.explanation and plain.evidence.values["read_back_soon_pct"] is None
    assert "bpf/swap_residency" not in plain.evidence.artifacts


def test_swap_residency_is_opt_in_and_says_how_to_ask_for_it():
    from snapcollect.collect.bpf import host_plan
    from snapcollect.collect.options import CollectOptions
    off = host_plan.make_plan(CollectOptions(), {}, {}, {})
    why, remedy = off.missing["bpf/swap_residency"]
    assert "not measured by default" in why and "--swap-residency" in remedy
    on = host_plan.make_plan(CollectOptions(swap_residency=True), {}, {}, {})
    assert "bpf/swap_residency" not in on.missing
    assert CollectOptions.from_wire({"swap_residency": True}).swap_residency is True
