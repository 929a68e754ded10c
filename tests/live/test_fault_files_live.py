"""Faults by file and mapping on this machine: a cold file read through mmap shows
in bpf/fault_files under its path with major faults, and in the report's section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bpf_harness import DirectSession, bpf_missing, cold_mmap_reader, release_after
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
    script = cold_mmap_reader(data)
    s = DirectSession(str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    s.poll_until_line(proc, "done")
    # the process lives past a resolve pass (its maps are read while it lives)
    bundle = release_after(s, proc, live_s=2.5)
    doc = json.loads(bundle.text("bpf/fault_files"))
    mine, = [p for p in doc["processes"] if p["pid"] == proc.pid]
    maps = {m["mapping"]: m for m in mine["mappings"]}
    assert str(data) in maps, list(maps)
    m = maps[str(data)]
    assert m["kind"] == "file" and not m["executable"]
    # 4096 pages read cold with MADV_RANDOM: nearly every one a major fault
    assert m["major_faults"] > 1000, m
    # the file's major faults are not swap-ins. The interpreter's own anonymous pages may
    # be read back from swap when earlier work on a shared host pushed them out, so a few
    # are allowed, never a share of the file's
    anon = sum(x["major_faults"] for x in mine["mappings"] if x["kind"] != "file")
    assert mine["swapins"] <= anon, mine
    assert mine["swapins"] * 100 < m["major_faults"], mine
    assert all(p["pid"] != os.getpid() for p in doc["processes"])   # the reader's own faults are left out
    ds = load_dataset(bundle)
    sec, = fault_file_sections(build_model(ds))
    table = next(b for b in sec.blocks if isinstance(b, Table))
    assert any(r["mapping"] == str(data) and r["pid"] == proc.pid and r["major"] == m["major_faults"]
               for r in table.rows)


SWAPFILE = "/var/tmp/snapcollect-test-fault-files.swap"
MEMCG = "/sys/fs/cgroup/memory/snapcollect-test-swapins"


@needs_bpf
@pytest.mark.bpf
@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/memory"), reason="no cgroup v1 memory controller")
def test_a_process_swapping_in_a_small_memcg_has_swapins(tmp_path):
    subprocess.run(["swapoff", SWAPFILE], capture_output=True)
    subprocess.run(["dd", "if=/dev/zero", f"of={SWAPFILE}", "bs=1M", "count=256", "status=none"], check=True)
    os.chmod(SWAPFILE, 0o600)
    subprocess.run(["mkswap", SWAPFILE], check=True, capture_output=True)
    if subprocess.run(["swapon", SWAPFILE], capture_output=True).returncode != 0:
        os.unlink(SWAPFILE)
        pytest.skip("swapon refused a swap file here")
    if not os.path.isdir(MEMCG):
        os.mkdir(MEMCG)
    try:
        for name, value in (("memory.limit_in_bytes", 48 << 20), ("memory.swappiness", 60)):
            with open(os.path.join(MEMCG, name), "w") as fh:
                fh.write(str(value))
        # 96 MiB touched twice in a 48 MiB cgroup: the second pass reads pages back from swap
        script = ("import sys\n"
                  "b = bytearray(96 << 20)\n"
                  "for r in range(3):\n"
                  "    for i in range(0, len(b), 4096): b[i] = r + 1\n"
                  "print('done', flush=True); sys.stdin.readline()\n")
        s = DirectSession(str(tmp_path))
        proc = subprocess.Popen(["sh", "-c", f'echo $$ > {MEMCG}/cgroup.procs && exec "$@"', "sh",
                                 sys.executable, "-c", script],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        s.poll_until_line(proc, "done")
        bundle = release_after(s, proc, live_s=2.5)
    finally:
        subprocess.run(["swapoff", SWAPFILE], capture_output=True)
        os.unlink(SWAPFILE)
        for _ in range(50):
            try:
                os.rmdir(MEMCG)
                break
            except OSError:
                time.sleep(0.1)
    doc = json.loads(bundle.text("bpf/fault_files"))
    mine, = [p for p in doc["processes"] if p["pid"] == proc.pid]
    assert mine["swapins"] > 1000, mine
    sec, = fault_file_sections(build_model(load_dataset(bundle)))
    swap = next(ss for ss in sec.subsections if ss.id == "swapins-by-process")
    rows = next(b for b in swap.blocks if isinstance(b, Table)).rows
    assert any(r["pid"] == proc.pid and r["swapins"] == mine["swapins"] for r in rows)
