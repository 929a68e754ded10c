"""``snapcollect export`` (time series as CSV) and ``show --extract`` (one artifact out)."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from fixture_files import BUNDLE
from snapcollect.analysis.dataset import load_dataset
from snapcollect.analysis.sar import sar_B
from snapcollect.bundle import open_bundle
from snapcollect.bundle.show import ExtractError, extract
from snapcollect.cli import main
from snapcollect.parsers.bpf_events import parse_folded


def _rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_writes_sar_tables_with_sar_names(tmp_path, capsys):
    out = tmp_path / "series"
    assert main(["export", BUNDLE, "-o", str(out)]) == 0
    names = sorted(os.listdir(out))
    assert {"sar-B.csv", "sar-r.csv", "sar-S.csv", "sar-W.csv", "sar-H.csv", "sar-q-MEM.csv",
            "pidstat-r.csv"} <= set(names)
    rows = _rows(out / "sar-B.csv")
    table = sar_B(load_dataset(open_bundle(BUNDLE)))
    assert list(rows[0])[:4] == ["hostname", "interval", "timestamp", "pgpgin/s"]
    assert len(rows) == len(table.rows)
    # raw values, not the report's rounded text; times ISO 8601 UTC
    assert float(rows[3]["majflt/s"]) == pytest.approx(table.rows[3]["majflt/s"], rel=1e-12)
    assert rows[0]["timestamp"].endswith("Z") and "T" in rows[0]["timestamp"]
    assert oct(os.stat(out / "sar-B.csv").st_mode & 0o777) == "0o600"
    pid = _rows(out / "pidstat-r.csv")
    assert pid and set(pid[0]) >= {"PID", "minflt/s", "majflt/s", "RSS", "Command"}
    # a second export into the same folder refuses to replace the files without --force
    assert main(["export", BUNDLE, "-o", str(out)]) != 0
    assert "exists" in capsys.readouterr().err
    assert main(["export", BUNDLE, "-o", str(out), "--force"]) == 0


SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "samples",
                      "sample-memcg-oom.tar.zst")


def test_extract_file_stream_and_series():
    folded = extract(open_bundle(SAMPLE), "bpf/fault_stacks.folded").decode()
    lines = folded.splitlines()
    # every line is "frames count", as flamegraph.pl and speedscope read
    assert lines and len(parse_folded(folded)) == len(lines)
    assert all(line.rpartition(" ")[2].isdigit() and ";" in line for line in lines)
    b = open_bundle(BUNDLE)
    kmsg = extract(b, "kmsg").decode().splitlines()
    assert kmsg and all(isinstance(json.loads(line), dict) for line in kmsg)
    vm = extract(b, "series/proc/vmstat").decode()
    assert vm.startswith("# k=0 t=") and vm.count("# k=") == len(b.series("proc/vmstat"))
    with pytest.raises(ExtractError, match="no such artifact"):
        extract(b, "proc/not-there")


def test_show_extract_cli(tmp_path, capsysbinary):
    assert main(["show", BUNDLE, "--extract", "proc/meminfo@end"]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b"MemTotal:")
    target = tmp_path / "m.txt"
    assert main(["show", BUNDLE, "--extract", "proc/meminfo@end", "-o", str(target)]) == 0
    assert target.read_bytes() == out
    assert main(["show", BUNDLE, "--extract", "proc/meminfo@end", "-o", str(target)]) != 0   # no overwrite
    assert main(["show", BUNDLE, "--extract", "nope"]) == 2


def test_export_writes_each_followed_cgroup_at_each_sample(tmp_path):
    """The sample was collected with the cgroup series: one row per group and tick, bytes raw."""
    out = tmp_path / "series"
    assert main(["export", SAMPLE, "-o", str(out)]) == 0
    rows = _rows(out / "cgroups-memory.csv")
    assert list(rows[0])[:8] == ["hostname", "interval", "timestamp", "cgroup", "usage_bytes", "limit_bytes",
                                 "%limit", "file_bytes"]
    from snapcollect.analysis.cgroup_series import cgroup_series

    groups = cgroup_series(load_dataset(open_bundle(SAMPLE)))
    assert len(rows) == sum(len(g.samples) for g in groups.values())
    thrash = [r for r in rows if r["cgroup"] == "/sample-thrash"]
    g = groups["/sample-thrash"]
    assert len(thrash) == len(g.samples) > 2
    assert int(thrash[0]["limit_bytes"]) == 64 << 20
    assert [int(r["usage_bytes"]) for r in thrash] == [s.usage_bytes for s in g.samples]
    assert max(float(r["%limit"]) for r in thrash) >= 99.0
