"""Faults by file and mapping on this machine: a cold file read through mmap shows
in bpf/fault_files under its path with major faults, and in the report's section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bpf_harness import DirectSession, bpf_missing
from snapcollect.analysis.dataset import load_dataset
from snapcollect.analysis.model import build_model
from snapcollect.report.model import Table
from snapcollect.report.sections.fault_files import fault_file_sections

pytestmark = [pytest.mark.live]
needs_bpf = pytest.mark.skipif(bpf_missing() is not None, reason=f"BPF: {bpf_missing()}")


@needs_bpf
@pytest.mark.bpf
def test_a_cold_mapped_file_is_named_with_its_major_faults(tmp_path):
    data = tmp_path / "sc-cold-data.bin"
    with open(data, "wb") as fh:
        fh.write(os.urandom(1 << 20) * 16)
    os.sync()
    script = (
        "import mmap, os, sys\n"
        f"fd = os.open({str(data)!r}, os.O_RDONLY)\n"
        "os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n"
        "m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)\n"
        "m.madvise(mmap.MADV_RANDOM)\n"
        "s = sum(m[i] for i in range(0, len(m), 4096))\n"
        "print('done', flush=True); sys.stdin.readline()\n")
    s = DirectSession(str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    s.poll_until_line(proc, "done")
    # the process lives past a resolve pass (its maps are read while it lives)
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        s.session.poll(0.2)
    proc.stdin.write("x\n")
    proc.stdin.flush()
    s.poll_while(proc)
    bundle = s.close()
    doc = json.loads(bundle.text("bpf/fault_files"))
    mine, = [p for p in doc["processes"] if p["pid"] == proc.pid]
    maps = {m["mapping"]: m for m in mine["mappings"]}
    assert str(data) in maps, list(maps)
    m = maps[str(data)]
    assert m["kind"] == "file" and not m["executable"]
    # 4096 pages read cold with MADV_RANDOM: nearly every one a major fault
    assert m["major_faults"] > 1000, m
    assert mine["swapins"] == 0
    assert all(p["pid"] != os.getpid() for p in doc["processes"])   # the reader's own faults are left out
    ds = load_dataset(bundle)
    sec, = fault_file_sections(build_model(ds))
    table = next(b for b in sec.blocks if isinstance(b, Table))
    assert any(r["mapping"] == str(data) and r["pid"] == proc.pid and r["major"] == m["major_faults"]
               for r in table.rows)
