"""Load the BPF fixtures of tests/fixtures/bpf (see its README) for the unit tests."""

from __future__ import annotations

import json
import os

from snapcollect.analysis.dataset import Dataset, Snapshot
from snapcollect.parsers.bpf_events import load_bpf_data
from snapcollect.parsers.records import KmsgLine

DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "bpf")


def path(name: str) -> str:
    return os.path.join(DIR, name)


def load(name: str):
    with open(path(name)) as fh:
        return json.load(fh)


def text(name: str) -> str:
    with open(path(name)) as fh:
        return fh.read()


def manifest() -> dict:
    m = load("manifest-bpf.json")
    return {"clock": m["clock"], "bpf": m["bpf"], "artifacts": m["artifacts"]}


def kmsg_lines(before_window: bool = False) -> list[KmsgLine]:
    clock = manifest()["clock"]
    return [KmsgLine(seq=r["seq"], ts_us=r["ts_us"], t=clock["wall"] + r["ts_us"] / 1e6 - clock["monotonic"],
                     prio=r["prio"], text=r["text"], before_window=before_window)
            for r in load("kmsg-oom.json")]


def inputs() -> tuple[dict, dict, dict, dict]:
    """(streams, status, manifest, files) as analysis.dataset hands them to load_bpf_data."""
    m = manifest()
    streams = {"bpf/oom_kill": load("oom_kill.json"), "bpf/reclaim": load("reclaim.json"),
               "bpf/compaction": load("compaction.json"), "bpf/kswapd_wake": []}
    status = {a["name"]: (a["status"], a.get("reason")) for a in m["artifacts"]}
    files = {"bpf/tracepoint_formats": text("tracepoint_formats.json").encode(),
             "bpf/fault_stacks.folded": text("fault_stacks.folded").encode(),
             "bpf/fault_stacks.json": text("fault_stacks.json").encode(),
             "bpf/heap_growth": text("heap_growth.json").encode(),
             "bpf/majfault_by_proc": text("majfault_by_proc.json").encode()}
    return streams, status, m, files


def dataset(kmsg: list[KmsgLine] | None = None, bpf=None) -> Dataset:
    m = manifest()
    ds = Dataset(manifest=m, host={}, interval_s=1.0, page_size=4096, start=Snapshot(), end=Snapshot())
    ds.kmsg = kmsg if kmsg is not None else kmsg_lines()
    ds.bpf = bpf if bpf is not None else load_bpf_data(*inputs())
    return ds
