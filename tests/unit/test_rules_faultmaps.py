"""Faults by file and mapping: region -> mapping, the document, its parser on hostile input,
SWAPIN_BY_PROCESS and FILE_REFAULTS_EXECUTABLE, and the report section."""

from __future__ import annotations

import json

import pytest

from findings_helpers import bpf, build, fault_files, fault_process, run
from snapcollect.analysis.model import build_model
from snapcollect.collect.bpf import fault_regions as fr
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.fault_files import parse_fault_files
from snapcollect.report.model import Table
from snapcollect.report.sections.fault_files import fault_file_sections

MAPS = b"""\
555555554000-555555556000 r--p 00000000 08:01 100 /usr/bin/app
555555556000-555555600000 r-xp 00002000 08:01 100 /usr/bin/app
555555800000-555555a00000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000400000 r--s 00000000 08:01 200 /data/cold\xff.bin
7f0000400000-7f0000600000 rw-s 00000000 00:1a 300 /dev/shm/seg (deleted)
7f0000600000-7f0000800000 rw-p 00000000 00:00 0
7f0000800000-7f0000a00000 rw-s 00000000 00:0f 9 /mnt/huge/seg
7ffff7fc1000-7ffff7fc3000 r-xp 00000000 00:00 0 [vdso]
garbage line
"""
MOUNTS = (b"25 1 0:26 / /dev/shm rw - tmpfs tmpfs rw\n"
          b"30 1 0:40 / /mnt/huge rw - hugetlbfs hugetlbfs rw\n")


def _region(addr: int) -> int:
    return addr >> fr.REGION_SHIFT


def test_regions_are_placed_in_the_mapping_covering_them():
    vmas = fr.parse_maps(MAPS)
    tmpfs, huge = fr.memory_mounts(MOUNTS)
    assert tmpfs == ("/dev/shm",) and huge == ("/mnt/huge",)
    place = lambda a: fr.place(_region(a), vmas, tmpfs, huge)  # noqa: E731
    code = place(0x555555557000)
    assert (code.label, code.kind, code.executable) == ("/usr/bin/app", "file", True)
    assert place(0x555555900000).kind == "anon" and place(0x555555900000).label == "[heap]"
    cold = place(0x7f0000100000)
    assert cold.kind == "file" and cold.label.encode("utf-8", "surrogateescape") == b"/data/cold\xff.bin"
    assert place(0x7f0000400000).kind == "shmem"
    assert place(0x7f0000600000).label == "[anon]"
    assert place(0x7f0000800000).kind == "hugetlb"
    assert place(0x7ffff7fc1000).kind == "special"
    assert place(0x100000).label == fr.NOT_MAPPED


@pytest.mark.parametrize("path, kind", [
    ("/memfd:jit (deleted)", "shmem"), ("/SYSV00000000 (deleted)", "shmem"), ("/dev/zero (deleted)", "shmem"),
    ("/anon_hugepage (deleted)", "hugetlb"), ("[stack]", "anon"), ("[anon:arena]", "anon"),
    ("/usr/lib/libc.so.6", "file"), ("", "anon")])
def test_mapping_kinds(path, kind):
    assert fr.mapping_kind(path)[1] == kind


def test_the_document_adds_per_process_and_mapping_and_counts_swapins():
    vmas = fr.parse_maps(MAPS)
    heap, code = _region(0x555555900000), _region(0x555555557000)
    places = {(7, heap): fr.place(heap, vmas), (7, code): fr.place(code, vmas)}
    rows = [(7, fr.MAJOR, heap, 30), (7, fr.SAMPLED, heap, 2), (7, fr.MAJOR, code, 5),
            (8, fr.MAJOR, 99, 4), (7, 9, heap, 100)]          # kind 9: not ours, ignored
    doc = fr.fault_files_document(rows, places, {7: "app"}, 128, {"region_keys_full": 3},
                                  {"sampled": True, "major": True})
    p7, p8 = doc["processes"]
    assert (p7["pid"], p7["comm"], p7["major_faults"], p7["swapins"], p7["faults_estimated"]) == (7, "app", 35, 30, 256)
    assert p7["executable_major_faults"] == 5
    assert p7["mappings"][0]["mapping"] == "[heap]"
    assert p8["mappings"][0]["mapping"] == fr.UNKNOWN and p8["comm"] == "?"
    assert doc["map_full"] == 3
    again = parse_fault_files(json.dumps(doc))
    assert again.processes[0].swapins == 30 and again.map_full == 3 and again.bad_rows == 0


def test_region_namer_reads_live_maps_and_marks_the_gone(tmp_path):
    import os
    namer = fr.RegionNamer(own_tgids=frozenset(), mountinfo=MOUNTS)
    me = os.getpid()
    addr = id(namer)          # an address in this process's heap or an anonymous arena
    namer.observe([(me, _region(addr)), (2 ** 22 + 7, 1)])
    assert namer.places[(me, _region(addr))].kind in ("anon", "file")
    assert 2 ** 22 + 7 in namer.gone and namer.comms[me]


@pytest.mark.parametrize("raw", [b"", b"[1,2]", b"{\"processes\": 3}", b"\xff\xfe"])
def test_parser_refuses_what_is_not_a_document(raw):
    with pytest.raises(ParseError):
        parse_fault_files(raw)


def test_parser_skips_rows_of_the_wrong_type():
    doc = {"sample_period": "x", "map_full": -1, "processes": [
        "junk", {"pid": -3}, {"pid": True}, {"pid": 5, "comm": 7},
        {"pid": 9, "comm": "ok", "major_faults": 3, "swapins": 3,
         "mappings": [{"mapping": "[heap]", "kind": "anon", "major_faults": 3}, {"major_faults": "3"}, 1,
                      {"mapping": "/x", "kind": "weird"}]}]}
    ff = parse_fault_files(json.dumps(doc))
    assert [p.pid for p in ff.processes] == [9]
    assert ff.sample_period == 1 and ff.map_full == 0
    assert ff.bad_rows == 4 + 2
    assert [m.kind for m in ff.processes[0].mappings] == ["anon", "unknown"]


def _ds(*procs):
    return build(bpf=bpf(fault_files=fault_files(*procs)))


def test_swapin_by_process_fires_and_names_the_process():
    f, _ = run("SWAPIN_BY_PROCESS", _ds(fault_process(11, "db", swapins=2000), fault_process(12, "web", swapins=1500)))
    assert f.severity == "WARN" and "db (pid 11) took 2,000 swap-ins" in f.title
    assert "web (pid 12, 1,500)" in f.explanation and "bpf/fault_files" in f.evidence.artifacts


def test_swapin_by_process_high_and_quiet():
    assert run("SWAPIN_BY_PROCESS", _ds(fault_process(11, "db", swapins=12_000)))[0].severity == "HIGH"
    assert run("SWAPIN_BY_PROCESS", _ds(fault_process(11, "db", swapins=999)))[0] is None
    assert run("SWAPIN_BY_PROCESS", _ds(fault_process(11, "db", file_major=50_000)))[0] is None
    assert run("SWAPIN_BY_PROCESS", build(bpf=bpf()))[0] is None
    f, skip = run("SWAPIN_BY_PROCESS", build())
    assert f is None and skip.startswith("needs bpf/fault_files")


def test_file_refaults_executable_fires_on_code_major_faults():
    f, _ = run("FILE_REFAULTS_EXECUTABLE", _ds(fault_process(11, "app", code=800, file_major=100)))
    assert f.severity == "WARN" and "/usr/bin/app" in f.title and "800 of the 900" in f.explanation


def test_file_refaults_executable_stays_quiet():
    assert run("FILE_REFAULTS_EXECUTABLE", _ds(fault_process(11, "app", code=499)))[0] is None
    # code is the minority of its disk reads: a data reader that also loads code
    assert run("FILE_REFAULTS_EXECUTABLE", _ds(fault_process(11, "app", code=800, file_major=5000)))[0] is None
    assert run("FILE_REFAULTS_EXECUTABLE", build(bpf=bpf()))[0] is None
    assert run("FILE_REFAULTS_EXECUTABLE", build())[1].startswith("needs bpf/fault_files")


def test_section_lays_out_mappings_swapins_and_huge_pages():
    m = build_model(_ds(fault_process(11, "db", swapins=2000, code=10, hugetlb=512)))
    sec, = fault_file_sections(m)
    table = next(b for b in sec.blocks if isinstance(b, Table))
    assert {r["mapping"] for r in table.rows} == {"[heap]", "/usr/bin/app", "/dev/hugepages/seg"}
    swap, huge = sec.subsections
    assert next(b for b in swap.blocks if isinstance(b, Table)).rows[0]["swapins"] == 2000
    assert next(b for b in huge.blocks if isinstance(b, Table)).rows[0]["faults"] == 512
    assert "kprobes" in huge.blocks[-1].text


def test_section_without_the_artifact_says_so():
    assert fault_file_sections(build_model(build())) == []      # an older bundle: no section
    ds = build(bpf=bpf())
    ds.bpf.available["bpf/fault_files"] = ("unavailable", "no perf events")
    sec, = fault_file_sections(build_model(ds))
    assert sec.blocks[0].text == "Not collected (`bpf/fault_files` unavailable): no perf events."
