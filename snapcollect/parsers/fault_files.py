"""bpf/fault_files: page faults per process and mapping, as the BPF reader wrote them.

The document (collect/bpf/fault_regions.py) comes from the BPF map
``fault_regions`` (fault addresses of the sampled page faults and of every
major fault, per 2 MiB region) named from /proc/PID/maps::

    {"sample_period": 128, "sampled": true, "major": true, "map_full": 0,
     "processes": [{"pid": 4242, "comm": "reader", "samples": 42, "faults_estimated": 5376,
                    "major_faults": 4096, "swapins": 0, "hugetlb_faults_estimated": 0,
                    "hugetlb_major_faults": 0, "executable_major_faults": 0,
                    "mappings": [{"mapping": "/data/cold.bin", "kind": "file", "executable": false,
                                  "samples": 35, "faults_estimated": 4480, "major_faults": 4096,
                                  "from_shared_regions": 0}], "mappings_omitted": 0}]}

Input is hostile: a row of the wrong type is skipped and counted
(``bad_rows``), never a traceback; a document that is not an object is a
ParseError.
"""

from __future__ import annotations

import json

from snapcollect.bundle.names import BPF_FAULT_FILES
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.records import FaultFiles, FaultMapping, FaultProcess

KINDS = ("file", "anon", "shmem", "hugetlb", "special", "unknown")
MAX_ROWS = 1000          # processes and mappings per process read at most


def _count(row: dict, key: str) -> int:
    v = row.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{key}: not a count: {v!r:.40}")
    return v


def _text(row: dict, key: str, default: str) -> str:
    v = row.get(key, default)
    if not isinstance(v, str):
        raise ValueError(f"{key}: not a string: {v!r:.40}")
    return v.replace("\n", " ")


def _mapping(row) -> FaultMapping:
    if not isinstance(row, dict):
        raise ValueError("mapping: not an object")
    kind = _text(row, "kind", "unknown")
    return FaultMapping(mapping=_text(row, "mapping", "[unknown mapping]") or "[unknown mapping]",
                        kind=kind if kind in KINDS else "unknown",
                        executable=row.get("executable") is True,
                        faults_estimated=_count(row, "faults_estimated"),
                        major_faults=_count(row, "major_faults"),
                        from_shared_regions=_count(row, "from_shared_regions"))


def _process(row) -> tuple[FaultProcess, int]:
    if not isinstance(row, dict):
        raise ValueError("process: not an object")
    pid = _count(row, "pid")
    maps, bad = [], 0
    raw = row.get("mappings") or []
    if not isinstance(raw, list):
        raise ValueError("mappings: not a list")
    for m in raw[:MAX_ROWS]:
        try:
            maps.append(_mapping(m))
        except ValueError:
            bad += 1
    return FaultProcess(pid=pid, comm=_text(row, "comm", "?"), faults_estimated=_count(row, "faults_estimated"),
                        major_faults=_count(row, "major_faults"), swapins=_count(row, "swapins"),
                        hugetlb_faults_estimated=_count(row, "hugetlb_faults_estimated"),
                        hugetlb_major_faults=_count(row, "hugetlb_major_faults"),
                        executable_major_faults=_count(row, "executable_major_faults"),
                        mappings=tuple(maps), mappings_omitted=_count(row, "mappings_omitted")), bad


def parse_fault_files(raw: bytes | str) -> FaultFiles:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParseError(f"{BPF_FAULT_FILES}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ParseError(f"{BPF_FAULT_FILES}: not a JSON object")
    procs, bad = [], 0
    rows = doc.get("processes") or []
    if not isinstance(rows, list):
        raise ParseError(f"{BPF_FAULT_FILES}: processes is not a list")
    for row in rows[:MAX_ROWS]:
        try:
            p, bad_maps = _process(row)
        except ValueError:
            bad += 1
            continue
        procs.append(p)
        bad += bad_maps
    period = doc.get("sample_period")
    map_full = doc.get("map_full")
    return FaultFiles(
        processes=tuple(sorted(procs, key=lambda p: (-(p.major_faults + p.faults_estimated), p.pid))),
        sample_period=period if isinstance(period, int) and not isinstance(period, bool) and period > 0 else 1,
        sampled=doc.get("sampled") is not False, major=doc.get("major") is not False,
        map_full=map_full if isinstance(map_full, int) and not isinstance(map_full, bool) and map_full > 0 else 0,
        bad_rows=bad)
