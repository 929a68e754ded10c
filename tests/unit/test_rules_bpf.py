"""BPF built against another kernel's headers: the manifest fact, BPF_HEADERS_MISMATCH, the report row, doctor."""

import pytest

from findings_helpers import bpf, build, run

from snapcollect.analysis.bpf_headers import header_mismatch
from snapcollect.analysis.model import build_model
from snapcollect.bundle import schema
from snapcollect.collect import doctor
from snapcollect.collect.bpf import capabilities, header_layouts
from snapcollect.report.sections.bpf import _headers_row

KEY = "BPF_HEADERS_MISMATCH"
LAYOUTS = header_layouts.manifest_entry()


def _ds(info, available=True):
    ds = build(bpf=bpf() if available else None)
    ds.manifest = {**ds.manifest, "bpf": info}
    return ds


def _info(**kw):
    info = {"kernel": "6.18.44", "headers": "/usr/src/linux-headers-6.1.0-57-amd64",
            "headers_release": "6.1.0-57-amd64", "header_layouts": LAYOUTS}
    info.update(kw)
    return info


def test_matching_versions_give_no_finding():
    f, skip = run("BPF_HEADERS_MISMATCH", _ds(_info(headers_release="6.18.44")))
    assert f is None and skip is None


def test_mismatch_with_nothing_header_dependent_is_info_citing_the_manifest():
    f, skip = run("BPF_HEADERS_MISMATCH", _ds(_info()))
    assert skip is None and f.severity == "INFO"
    assert f.title == "BPF built on 6.1.0-57-amd64 headers, kernel 6.18.44: no artifact affected"
    assert "headers; here no artifact is affected: the programs read only tracepoint fields" in f.explanation
    assert f.evidence.artifacts == ["manifest.json"]
    assert f.evidence.values["affected"] == [] and f.evidence.section == "bpf-cost"
    # only what was collected: the test dataset has three BPF artifacts ok
    assert f.evidence.values["unaffected"] == ["bpf/compaction", "bpf/fault_files", "bpf/kswapd_runs",
                                                  "bpf/migration", "bpf/oom_kill", "bpf/reclaim", "bpf/shrinker_slow",
                                                  "bpf/shrinkers"]


def test_mismatch_cites_the_affected_artifacts():
    layouts = {**LAYOUTS, "bpf/oom_kill": {**LAYOUTS["bpf/oom_kill"], "kernel_structs": ["task_struct"],
                                           "header_dependent": True}}
    f, _ = run("BPF_HEADERS_MISMATCH", _ds(_info(header_layouts=layouts)))
    assert f.title.endswith(": 1 artifact(s) may be affected")
    assert f.evidence.artifacts == ["manifest.json", "bpf/oom_kill"]
    assert "bpf/oom_kill read kernel structs (task_struct) laid out by those headers" in f.explanation
    assert f.evidence.values["kernel_structs"] == ["task_struct"]


def test_a_bundle_without_header_layouts_gives_no_finding_and_the_row_says_it_cannot_tell():
    info = _info()
    del info["header_layouts"]
    f, skip = run("BPF_HEADERS_MISMATCH", _ds(info))
    assert f is None and skip is None
    m = build_model(_ds(info))
    assert m.bpf_headers.unknown == ("bpf/compaction", "bpf/fault_files", "bpf/kswapd_runs", "bpf/migration",
                                     "bpf/oom_kill", "bpf/reclaim", "bpf/shrinker_slow", "bpf/shrinkers")
    assert _headers_row(m, info).endswith("the bundle was written before the manifest recorded, per "
                                          "artifact, whether its programs read any")


@pytest.mark.parametrize("info", [
    None, "not a dict", [], {},
    {"kernel": "6.18.44"},                                      # no headers_release
    {"headers_release": "6.1.0-57-amd64"},                      # no kernel
    _info(headers_release=None), _info(headers_release=61), _info(kernel=["6.18"]),
    _info(headers_release="  "),
])
def test_missing_or_hostile_versions_give_no_finding(info):
    f, skip = run("BPF_HEADERS_MISMATCH", _ds(info))
    assert f is None and skip is None


def test_hostile_layout_entries_are_unknown_never_a_crash():
    layouts = {"bpf/oom_kill": "yes", "bpf/reclaim": {"header_dependent": "true"},
               "bpf/compaction": {"header_dependent": True, "kernel_structs": "task_struct"}}
    h = header_mismatch(_ds(_info(header_layouts=layouts)))
    assert h.unknown == ("bpf/fault_files", "bpf/kswapd_runs", "bpf/migration", "bpf/oom_kill", "bpf/reclaim",
                         "bpf/shrinker_slow", "bpf/shrinkers") and h.affected == ("bpf/compaction",)
    assert h.kernel_structs == ()
    f, skip = run("BPF_HEADERS_MISMATCH", _ds(_info(header_layouts=[1, 2])))     # not an object: undeclared
    assert f is None and skip is None
    f, _ = run("BPF_HEADERS_MISMATCH", _ds(_info(header_layouts={"bpf/oom_kill": None})))
    assert f.title.endswith(": artifacts affected unknown")


def test_schema_drops_a_header_layouts_of_the_wrong_type():
    warnings = []
    out = schema.MANIFEST.check({"format": "snapcollect", "format_version": 1,
                                 "bpf": {"kernel": "6.18", "header_layouts": ["x"]}}, warnings)
    assert "header_layouts" not in out["bpf"] and "header_layouts" in warnings[0]


def test_no_finding_when_bpf_did_not_run():
    f, skip = run("BPF_HEADERS_MISMATCH", _ds(_info(), available=False))
    assert f is None and skip.startswith("needs bpf/oom_kill")


def test_the_report_row_says_it():
    m = build_model(_ds(_info()))
    assert _headers_row(m, m.ds.manifest["bpf"]) == (
        "6.1.0-57-amd64, not the running kernel's (6.18.44): no artifact is affected: the programs "
        "read only tracepoint fields and BPF helpers")
    m = build_model(_ds(_info(headers_release="6.18.44")))
    assert _headers_row(m, m.ds.manifest["bpf"]) == "6.18.44 (kernel 6.18.44)"


def test_doctor_says_it_in_one_line(monkeypatch):
    monkeypatch.setattr(capabilities, "find_headers", lambda release=None: ("/usr/src/h", "6.1.0-57-amd64"))
    c = doctor.check_header_release()
    running = doctor.os.uname().release
    if running == "6.1.0-57-amd64":
        assert c is None
        return
    assert c.detail == f"6.1.0-57-amd64 != kernel {running}: BPF data unaffected"
    lines = doctor._format([c]).splitlines()
    assert [ln for ln in lines if "6.1.0-57-amd64" in ln] == [lines[2]] and lines[3] == ""   # one line
    monkeypatch.setattr(capabilities, "find_headers", lambda release=None: ("/usr/src/h", running))
    assert doctor.check_header_release() is None
