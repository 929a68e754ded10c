"""Fixtures of the VM tier: one boot per Debian release, reports rendered here.

``guest`` (indirectly parametrised with a release name) builds the image
when the cache lacks it, boots the guest once per test session, renders
each bundle it brought back with this checkout's ``snapcollect report``
(JSON and Markdown) and keeps everything in
$SNAPCOLLECT_VM_CACHE/runs/<release>-<pid>/ for a look after a failure:
console.log (the serial console), results/ (what the guest wrote) and
the rendered reports. The figures (build, boot, doctor, compile,
scenarios, render) are printed at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import driver  # noqa: E402
from report_schema import assert_valid_report  # noqa: E402

COLLECTIONS = ("incident", "swap", "deepdive")
_GUESTS: dict[str, "Guest"] = {}
_FAILED_SETUP: dict[str, str] = {}


@dataclass
class Guest:
    release: str
    boot: driver.Boot
    versions: dict
    scenarios: dict
    doctor: dict | None
    reports: dict = field(default_factory=dict)      # collection -> report JSON
    markdown: dict = field(default_factory=dict)     # collection -> report Markdown
    manifests: dict = field(default_factory=dict)    # collection -> bundle manifest
    timings: dict = field(default_factory=dict)

    def where(self) -> str:
        """For assertion messages: where to look."""
        return f"[{self.release}: run kept in {self.boot.run_dir}]"


def _render(bundle: str, out_base: str) -> tuple[dict, str]:
    for ext in ("json", "md"):
        # report refuses to overwrite its output (and the Markdown's charts
        # directory): a re-render replaces them.
        if os.path.exists(f"{out_base}.{ext}"):
            os.unlink(f"{out_base}.{ext}")
        shutil.rmtree(f"{out_base}-charts", ignore_errors=True)
        r = subprocess.run([sys.executable, "-m", "snapcollect", "report", bundle, "-o", f"{out_base}.{ext}"],
                           capture_output=True, text=True, timeout=600, cwd=driver.REPO)
        if r.returncode != 0:
            raise AssertionError(f"report -o {out_base}.{ext} exited {r.returncode}: {r.stderr[-2000:]}")
    with open(out_base + ".json", encoding="utf-8") as fh:
        doc = json.load(fh)
    assert_valid_report(doc)        # docs/report-schema.json: the JSON contract, on these kernels too
    with open(out_base + ".md", encoding="utf-8") as fh:
        return doc, fh.read()


def _load_json(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _drop_old_runs(release: str) -> None:
    runs = os.path.join(driver.cache_root(), "runs")
    if not os.path.isdir(runs):
        return
    for name in os.listdir(runs):
        head, _, pid = name.split(".try", 1)[0].rpartition("-")   # RELEASE-PID and RELEASE-PID.tryN
        if head == release and pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(runs, name), ignore_errors=True)


def _start(release: str) -> Guest:
    missing = driver.missing_host_facilities()
    if missing:
        driver.install_host_packages()
        missing = driver.missing_host_facilities()
    if missing:
        pytest.skip("VM tier needs " + ", ".join(missing))
    timings = {"build_s": None}
    b = _reused_run(release) if os.environ.get("SNAPCOLLECT_VM_REUSE") == "1" else None
    if b is None:
        image, timings["build_s"] = driver.ensure_image(release)
        _drop_old_runs(release)
        b = driver.boot_until_sound(release, image,
                                    os.path.join(driver.cache_root(), "runs", f"{release}-{os.getpid()}"))
    run_dir = b.run_dir
    timings["qemu_s"] = b.seconds
    scenarios = _load_json(os.path.join(b.results, "scenarios.json")) or {}
    g = Guest(release, b, driver.read_versions(run_dir), scenarios,
              _load_json(os.path.join(b.results, "doctor.json")), timings=timings)
    timings.update(scenarios.get("timings", {}))
    timings["guest_init_s"] = _guest_init_s(b)
    from snapcollect.bundle import open_bundle

    for name in COLLECTIONS:
        bundle = os.path.join(b.results, "bundles", f"{name}.tar.zst")
        if not os.path.isfile(bundle):
            continue
        g.manifests[name] = open_bundle(bundle).manifest
        t = time.monotonic()
        g.reports[name], g.markdown[name] = _render(bundle, os.path.join(run_dir, f"report-{name}"))
        timings[f"render_{name}_s"] = round(time.monotonic() - t, 1)
        timings[f"bpf_compile_{name}_s"] = (g.manifests[name].get("bpf") or {}).get("compile_s")
        timings[f"bpf_loaded_{name}_after_s"] = (scenarios.get(name) or {}).get("bpf_loaded_after_s")
    timings["bpf_compile_doctor_s"] = _doctor_compile_s(g.doctor)
    with open(os.path.join(run_dir, "timings.json"), "w") as fh:
        json.dump(timings, fh, indent=2)
    return g


def _reused_run(release: str) -> driver.Boot | None:
    """SNAPCOLLECT_VM_REUSE=1: the newest kept run of ``release``, re-rendered without a boot
    (for work on the assertions or the report; never in CI)."""
    runs = os.path.join(driver.cache_root(), "runs")
    kept = [os.path.join(runs, n) for n in (os.listdir(runs) if os.path.isdir(runs) else [])
            if n.rpartition("-")[0] == release and os.path.isfile(os.path.join(runs, n, "results", "scenarios.json"))]
    if not kept:
        return None
    d = max(kept, key=os.path.getmtime)
    return driver.Boot(release, d, os.path.join(d, "console.log"), os.path.join(d, "results"), "reused", 0.0,
                       0, False, [f"reused the run in {d} (SNAPCOLLECT_VM_REUSE=1): no boot"])


def _doctor_compile_s(doctor: dict | None):
    """doctor's own compile of the programs ("BPF compile: 6.37 s, ..."): the guest's real compile time."""
    for c in (doctor or {}).get("checks", []):
        if c.get("name") == "BPF compile" and c.get("ok"):
            try:
                return float(c["detail"].split(" s", 1)[0])
            except ValueError:
                return None
    return None


def _guest_init_s(b: driver.Boot):
    try:
        with open(b.console, errors="replace") as fh:
            for line in fh:
                if line.startswith("guest-init:") and " up after " in line:
                    return float(line.rsplit(" up after ", 1)[1].split()[0])
    except (OSError, ValueError):
        pass
    return None


@pytest.fixture(scope="session")
def guest(request) -> Guest:
    release = request.param
    if release in _FAILED_SETUP:
        pytest.fail(_FAILED_SETUP[release])
    if release not in _GUESTS:
        try:
            _GUESTS[release] = _start(release)
        except (RuntimeError, OSError, subprocess.SubprocessError, AssertionError) as exc:
            _FAILED_SETUP[release] = f"{release} guest: {exc}"
            raise
    return _GUESTS[release]


def pytest_terminal_summary(terminalreporter):
    if not _GUESTS:
        return
    keys = {"build_s": "build", "qemu_s": "qemu total", "guest_init_s": "to init", "doctor_s": "doctor",
            "bpf_compile_doctor_s": "bcc compile", "incident_s": "incident", "swap_s": "swap",
            "bpf_loaded_incident_after_s": "BPF loaded", "render_incident_s": "render inc.",
            "render_swap_s": "render swap"}
    terminalreporter.section("VM tier figures (seconds)")
    terminalreporter.write_line("release   " + " ".join(f"{label:>11}" for label in keys.values()))
    for release, g in _GUESTS.items():
        cells = []
        for k in keys:
            v = g.timings.get(k)
            cells.append(f"{'cached' if k == 'build_s' and v is None else ('-' if v is None else v):>11}")
        terminalreporter.write_line(f"{release:<9} " + " ".join(cells))
        terminalreporter.write_line(f"          {'; '.join(g.boot.notes)}; kept in {g.boot.run_dir}")
