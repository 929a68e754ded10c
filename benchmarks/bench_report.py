#!/usr/bin/env python3
"""Benchmark: render a 60-second and a one-hour bundle to each format.

    .venv/bin/python benchmarks/bench_report.py [--keep DIR] [--formats md,json,html,pdf]

Both bundles are synthesised with BundleWriter from the real /proc text of
the fixture bundle (tests/fixtures/bundles/memcg-swap-6.18.tar.zst):
every file artifact is copied, and the per-tick series are extended to
61 and 3601 ticks at 1 s. Counters keep rising at the rates the fixture
recorded (so sar rates stay realistic), levels (MemFree, PSI averages,
RSS) vary along a slow wave, so that no two ticks are alike.

Each (bundle, format) runs in a fresh Python process, as a user's
``snapcollect report`` would, and reports: open (read the archive),
build (parse + analyse + findings), render (the format itself, charts
included) and the total. Targets (issue 3): Markdown and JSON under 1 s
for 60 s of data, PDF under 10 s; cost growing linearly with duration.
Not a test: the machine is shared and timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "bundles", "memcg-swap-6.18.tar.zst")
# "md-stdout": Markdown to stdout, which writes no chart (matplotlib is not
# even imported); "md" writes the .md file and its SVG charts.
FORMATS = ("md-stdout", "md", "json", "html", "pdf")
TARGETS = {"md-stdout": 1.0, "md": 1.0, "json": 1.0, "pdf": 10.0}

_NUM = re.compile(r"-?\d+")


# -- synthesis -------------------------------------------------------------

def _extend(values: list[int], k: int) -> int:
    """Tick k of a counter sampled n times: repeats its steps, never goes back."""
    n = len(values)
    if n == 1:
        return values[0]
    step = (values[-1] - values[0]) * n / (n - 1)
    return values[k % n] + int((k // n) * step)


def _wave(k: int, period: int = 600, depth: float = 0.1) -> float:
    return 1.0 + depth * math.sin(2 * math.pi * k / period)


class _KeyValues:
    """/proc/vmstat, meminfo, numastat style: one "name value" per line."""

    LINE = re.compile(r"^(\S+?:?)(\s+)(\d+)(.*)$")

    def __init__(self, texts: list[str], kind: callable):
        self.n = len(texts)
        self.ends_nl = texts[0].endswith("\n")
        parsed = [[self.LINE.match(line) for line in t.splitlines()] for t in texts]
        self.lines = []          # per line: (prefix, sep, suffix, kind, values per sample) or raw text
        for i, m in enumerate(parsed[0]):
            if m is None:
                self.lines.append(texts[0].splitlines()[i])
                continue
            vals = []
            for p in parsed:
                mm = p[i] if i < len(p) else None
                vals.append(int(mm.group(3)) if mm else int(m.group(3)))
            self.lines.append((m.group(1), m.group(2), m.group(4), kind(m.group(1).rstrip(":")), vals))

    def tick(self, k: int) -> str:
        out = []
        for item in self.lines:
            if isinstance(item, str):
                out.append(item)
                continue
            prefix, sep, suffix, kind, vals = item
            if kind == "counter":
                value = _extend(vals, k)
            elif kind == "wave":
                # Downwards only: MemFree and MemAvailable stay below MemTotal.
                value = int(vals[k % self.n] * (_wave(k) - 0.1))
            else:
                value = vals[k % self.n]
            out.append(f"{prefix}{sep}{value}{suffix}")
        return "\n".join(out) + ("\n" if self.ends_nl else "")


def _vmstat_kind(name: str) -> str:
    return "level" if name.startswith("nr_") or name.startswith("workingset_nodes") else "counter"


_MEM_WAVE = {"MemFree", "MemAvailable", "Cached", "AnonPages", "Active(anon)", "Inactive(anon)", "Dirty",
             "Active", "Inactive", "Committed_AS"}


def _meminfo_kind(name: str) -> str:
    return "wave" if name in _MEM_WAVE else "level"


class _Psi:
    def __init__(self, texts: list[str]):
        self.texts = texts
        self.totals = [[int(line.split("total=")[1]) for line in t.splitlines() if "total=" in line]
                       for t in texts]

    def tick(self, k: int) -> str:
        n = len(self.texts)
        out = []
        for li, line in enumerate(l for l in self.texts[k % n].splitlines() if l.strip()):
            parts = line.split()
            fields = []
            for p in parts[1:]:
                key, _, val = p.partition("=")
                if key == "total":
                    fields.append(f"total={_extend([t[li] for t in self.totals], k)}")
                else:
                    fields.append(f"{key}={min(100.0, float(val) * _wave(k, 300, 0.5)):.2f}")
            out.append(" ".join([parts[0]] + fields))
        return "\n".join(out) + "\n"


class _Uptime:
    def __init__(self, texts: list[str]):
        ups = [float(t.split()[0]) for t in texts]
        idles = [float(t.split()[1]) for t in texts]
        n = len(texts)
        self.up0, self.idle0 = ups[0], idles[0]
        self.dup = (ups[-1] - ups[0]) / (n - 1) if n > 1 else 1.0
        self.didle = (idles[-1] - idles[0]) / (n - 1) if n > 1 else 1.0

    def tick(self, k: int) -> str:
        return f"{self.up0 + k * self.dup:.2f} {self.idle0 + k * self.didle:.2f}\n"


# /proc/PID/stat fields after the ")" (0 = state): counters and the RSS level.
_STAT_COUNTERS = (7, 8, 9, 10, 11, 12)   # minflt cminflt majflt cmajflt utime stime
_STAT_RSS = 21


class _Procs:
    """The cheap per-tick process pass: raw stat line, TAB, uid, TAB, VmSwap."""

    def __init__(self, texts: list[str]):
        self.samples = []
        for text in texts:
            sample = {}
            for line in text.splitlines():
                stat, _, rest = line.partition("\t")
                head, _, tail = stat.rpartition(") ")
                sample[head.split(" ", 1)[0]] = (head + ") ", tail.split(), rest)
            self.samples.append(sample)
        self.series = {}
        for pid in {p for s in self.samples for p in s}:
            seen = [s[pid][1] for s in self.samples if pid in s]
            self.series[pid] = {i: [int(f[i]) for f in seen] for i in _STAT_COUNTERS if i < len(seen[0])}

    def tick(self, k: int) -> str:
        out = []
        for pid, (head, fields, rest) in self.samples[k % len(self.samples)].items():
            fields = list(fields)
            for i, vals in self.series[pid].items():
                if i < len(fields):
                    fields[i] = str(_extend(vals, k))
            if _STAT_RSS < len(fields):
                fields[_STAT_RSS] = str(int(int(fields[_STAT_RSS]) * _wave(k + int(pid) % 97, 900, 0.2)))
            out.append(head + " ".join(fields) + "\t" + rest)
        return "\n".join(out) + "\n"


class _Repeat:
    def __init__(self, texts: list[str]):
        self.texts = texts

    def tick(self, k: int) -> str:
        return self.texts[k % len(self.texts)]


def _synth_for(source: str, texts: list[str]):
    if source == "proc/vmstat" or source.endswith("/numastat"):
        return _KeyValues(texts, _vmstat_kind)
    if source == "proc/meminfo":
        return _KeyValues(texts, _meminfo_kind)
    if source == "proc/pressure/memory":
        return _Psi(texts)
    if source == "proc/uptime":
        return _Uptime(texts)
    if source == "procs":
        return _Procs(texts)
    return _Repeat(texts)


def synthesise(path: str, seconds: int, fixture: str = FIXTURE) -> str:
    """Write a bundle of seconds+1 ticks at 1 s beside path; return its path."""
    from snapcollect.bundle import open_bundle
    from snapcollect.bundle.writer import BundleWriter

    src = open_bundle(fixture)
    texts: dict[str, list[str]] = {s: [x.text for x in src.series(s)] for s in src.series_sources()}
    m = {k: v for k, v in src.manifest.items() if k not in ("artifacts", "format", "format_version")}
    t0 = src.ticks[0]["t"]
    mono0 = src.ticks[0]["mono"]
    m.update(duration_requested_s=seconds, interval_s=1.0,
             started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
             clock={"wall": t0, "monotonic": mono0})
    m.pop("ended_at", None)
    w = BundleWriter(path, m)
    for a in src.artifacts():
        if a.get("kind") == "file" and a.get("status") == "ok" and src.data(a["name"]) is not None:
            w.add_file(a["name"], src.data(a["name"]))
    synths = {source: _synth_for(source, values) for source, values in texts.items()}
    for k in range(seconds + 1):
        w.add_tick(k, t0 + k, mono0 + k, {source: syn.tick(k) for source, syn in synths.items()})
    for name in src.streams:
        w.add_records(name, src.records(name))
    return w.close(complete=True, stopped_by="deadline",
                   ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + seconds)))


# -- measuring -------------------------------------------------------------

def measure_one(bundle: str, fmt: str, out_dir: str) -> dict:
    """In this (fresh) process: open, build, render one format to a file."""
    t = time.perf_counter()
    from snapcollect.bundle import open_bundle
    from snapcollect.report.build import build_report
    from snapcollect.report.render import render_to

    b = open_bundle(bundle)
    t_open = time.perf_counter()
    report = build_report(b)
    t_build = time.perf_counter()
    if fmt == "md-stdout":
        from snapcollect.report.markdown import render_markdown

        text, _ = render_markdown(report, None)
        assert text
    else:
        # force: a --keep directory holds the reports of the previous run.
        render_to(report, fmt, os.path.join(out_dir, f"{os.path.basename(bundle)}.{fmt}"), force=True)
    t_render = time.perf_counter()
    return {"open": t_open - t, "build": t_build - t_open, "render": t_render - t_build, "total": t_render - t}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", metavar="DIR", help="write bundles and reports here and keep them")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--durations", default="60,3600", help="seconds of data per bundle (default 60,3600)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    ap.add_argument("--one", nargs=3, metavar=("BUNDLE", "FMT", "OUTDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one)))
        return 0
    work = args.keep or tempfile.mkdtemp(prefix="snapcollect-bench-")
    os.makedirs(work, exist_ok=True)
    formats = [f for f in args.formats.split(",") if f]
    rows = []
    for seconds in (int(s) for s in args.durations.split(",")):
        path = os.path.join(work, f"bench-{seconds}s.tar.zst")
        if not os.path.exists(path):
            t = time.perf_counter()
            synthesise(path, seconds)
            print(f"synthesised {path} ({os.path.getsize(path) / 1e6:.1f} MB, {seconds + 1} ticks) "
                  f"in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        for fmt in formats:
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", path, fmt, work],
                               capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{seconds} s {fmt}: failed: {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append((seconds, fmt, r))
    print(f"{'data':>6} {'format':<9} {'open':>7} {'build':>7} {'render':>7} {'total':>7}  target")
    for seconds, fmt, r in rows:
        target = TARGETS.get(fmt) if seconds <= 60 else None
        verdict = "" if target is None else (f"< {target:g} s " + ("ok" if r["total"] < target else "MISSED"))
        print(f"{seconds:>5}s {fmt:<9} {r['open']:>7.2f} {r['build']:>7.2f} {r['render']:>7.2f} "
              f"{r['total']:>7.2f}  {verdict}")
    by = {(s, f): r["total"] for s, f, r in rows}
    durs = sorted({s for s, _, _ in rows})
    if len(durs) == 2:
        a, b = durs
        print(f"\ncost ratio {b} s / {a} s of data (linear would be {b / a:.0f}x):")
        for fmt in formats:
            if (a, fmt) in by and (b, fmt) in by:
                print(f"  {fmt:<9} {by[(b, fmt)] / by[(a, fmt)]:6.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{"seconds": sec, "format": fmt, **r, "target_s": TARGETS.get(fmt) if sec <= 60 else None}
                       for sec, fmt, r in rows], fh, indent=1)
    if not args.keep:
        print(f"(files in {work}; pass --keep DIR to choose where)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
