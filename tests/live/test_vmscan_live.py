"""Shrinkers, kswapd runs and page migration on this machine: a dentry cache made big and then
dropped shows super_cache_scan in bpf/shrinkers and in the report's section; compaction's migrations
show under reason compaction when the kernel moved anything; kswapd's stream is present and
well-formed (waking kswapd on a large idle host is not staged)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bpf_harness import DirectSession, bpf_missing
from snapcollect.analysis.dataset import load_dataset
from snapcollect.analysis.model import build_model
from snapcollect.report.model import Table
from snapcollect.report.sections.vmscan import vmscan_sections

pytestmark = [pytest.mark.live]
needs_bpf = pytest.mark.skipif(bpf_missing() is not None, reason=f"BPF: {bpf_missing()}")

NAMES = 200_000

# negative dentries: a stat of a name that does not exist leaves one behind;
# drop_caches=2 then runs every superblock's shrinker (super_cache_scan)
STAGE = f"""
import os, sys
d = sys.argv[1]
for i in range({NAMES}):
    try:
        os.stat(os.path.join(d, "sc-absent-%d" % i))
    except FileNotFoundError:
        pass
with open("/proc/sys/vm/drop_caches", "w") as fh:
    fh.write("2")
with open("/proc/sys/vm/compact_memory", "w") as fh:
    fh.write("1")
"""


@needs_bpf
@pytest.mark.bpf
def test_dropped_dentry_cache_shows_super_cache_scan(tmp_path):
    s = DirectSession(str(tmp_path))
    work = tmp_path / "names"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", STAGE, str(work)])
    s.poll_while(proc)
    assert proc.returncode == 0
    bundle = s.close()
    assert bundle.status("bpf/shrinkers")[0] == "ok", bundle.status("bpf/shrinkers")
    doc = json.loads(bundle.text("bpf/shrinkers"))
    by = {}
    for e in doc["entries"]:
        by.setdefault(e["callback"], 0)
        by[e["callback"]] += e["calls"]
    assert by.get("super_cache_scan", 0) > 0, sorted(by)
    assert sum(e["freed"] for e in doc["entries"] if e["callback"] == "super_cache_scan") > 0

    ds = load_dataset(bundle)
    secs = {sec.id: sec for sec in vmscan_sections(build_model(ds))}
    table = next(b for b in secs["shrinkers"].blocks if isinstance(b, Table) and b.id == "shrinkers")
    assert any(r["callback"] == "super_cache_scan" and r["calls"] > 0 for r in table.rows)

    # kswapd: the stream is declared and every record decodes (the parser would mark it error)
    assert bundle.status("bpf/kswapd_runs")[0] == "ok", bundle.status("bpf/kswapd_runs")
    assert ds.bpf.available["bpf/kswapd_runs"][0] == "ok"
    assert "kswapd-activity" in secs

    # migration: compaction ran; the reason is named from the print fmt when anything moved
    assert bundle.status("bpf/migration")[0] == "ok", bundle.status("bpf/migration")
    mig = json.loads(bundle.text("bpf/migration"))
    assert isinstance(mig["by_reason"], list) and isinstance(mig["processes"], list)
    assert ds.bpf.available["bpf/migration"][0] == "ok"
    if not mig["by_reason"]:
        pytest.skip("compaction migrated nothing on this host (memory not fragmented)")
    assert "compaction" in {m.reason for m in ds.bpf.migration_by_reason}, ds.bpf.migration_by_reason
