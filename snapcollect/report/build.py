"""Build the format-neutral ``Report`` of a bundle: header, sections, data tables.

``build_report(bundle)`` parses the bundle (analysis.dataset), has
analysis build the incident once (``analysis.incident``: the model, its
findings, timeline and verdict), then lays out the document from that
model: the BPF sections (OOM kills, reclaim stalls, fault stacks), then
one section per classic view in this order: free, vmstat -s, swapon,
PSI, sar -B/-r/-S/-W/-H, pidstat -r, top processes, pmap -x, slabtop,
numastat, buddyinfo, memory cgroups, kernel log. A finding may point at
any of these sections; both read the same model.

``Report.meta`` keys are those listed in report.model; besides them:
``stopped_at`` (time of the last sample when the run stopped early),
``samples_expected``, ``sysstat`` (which sar definitions the tables
follow), ``collector`` (other manifest fields of the collector's own,
e.g. BPF compile time).
"""

from __future__ import annotations

import os

from snapcollect.analysis.dataset import Dataset, load_dataset
from snapcollect.analysis.incident import build_incident
from snapcollect.analysis.model import Model
from snapcollect.analysis.sar import SYSSTAT_DEFINITIONS
from snapcollect.report.formatting import hms
from snapcollect.report.highlights import event_markers, involved_pids, key_chart_ids, time_charts
from snapcollect.report.model import Report, Section, Table
from snapcollect.report.sections.bpf import bpf_sections
from snapcollect.report.sections.deepdive import deepdive_sections
from snapcollect.report.sections.delays import delay_sections
from snapcollect.report.sections.buddyinfo import buddyinfo_sections
from snapcollect.report.sections.cgroups import cgroup_sections
from snapcollect.report.sections.free import free_sections
from snapcollect.report.sections.kmsg import kmsg_sections
from snapcollect.report.sections.numastat import numastat_sections
from snapcollect.report.sections.pidstat import pidstat_sections
from snapcollect.report.sections.pmap import pmap_sections
from snapcollect.report.sections.processes import process_sections
from snapcollect.report.sections.sar import psi_sections, sar_sections
from snapcollect.report.sections.shmem import shmem_sections
from snapcollect.report.sections.slabtop import slabtop_sections
from snapcollect.report.sections.swapon import swapon_sections
from snapcollect.report.sections.vmstat_s import vmstat_s_sections

# Manifest fields shown elsewhere in meta; the rest of the collector's own
# fields go to meta["collector"].
_KNOWN = {"format", "format_version", "tool_version", "host", "kernel", "started_at", "ended_at",
          "duration_requested_s", "interval_s", "complete", "stopped_by", "stop_reason", "clock", "cpu_s",
          "peak_rss_kb", "artifacts", "ended_at_estimate", "window"}


def _meta(ds: Dataset, bundle=None) -> dict:
    m = ds.manifest
    complete = bundle.complete if bundle is not None else bool(m.get("complete"))
    reason = bundle.incomplete_reason if bundle is not None else (
        None if complete else (m.get("stop_reason") or (f"stopped by {m['stopped_by']}" if m.get("stopped_by")
                                                        else "collection did not finish")))
    interval = ds.interval_s
    requested = m.get("duration_requested_s")
    expected = int(round(requested / interval)) + 1 if requested and interval else None
    meta = {
        "host": m.get("host") or ds.host.get("hostname"),
        "kernel": m.get("kernel") or ds.host.get("kernel_release"),
        "started_at": m.get("started_at"),
        "ended_at": m.get("ended_at"),
        "window": ds.window,
        "interval_s": interval,
        "duration_requested_s": requested,
        "samples": ds.ticks,
        "samples_expected": expected,
        "tool_version": m.get("tool_version"),
        "format_version": m.get("format_version"),
        "cpu_s": m.get("cpu_s"),
        "peak_rss_kb": m.get("peak_rss_kb"),
        "complete": complete,
        "stopped_by": m.get("stopped_by"),
        "incomplete_reason": reason,
        "bundle": os.path.basename(bundle.path) if bundle is not None else None,
        "sysstat": SYSSTAT_DEFINITIONS,
        "collector": {k: v for k, v in m.items() if k not in _KNOWN},
    }
    notes = []
    if not complete:
        where = ""
        if ds.window:
            meta["stopped_at"] = ds.window[1]
            where = f" after the sample of {hms(ds.window[1])} UTC"
        count = f" ({ds.ticks} of {expected} samples)" if expected else ""
        notes.append(f"Incomplete bundle: collection stopped{where}{count}: {reason}. "
                     "Every section shows what was collected up to then.")
    if m.get("skipped_ticks"):
        notes.append(f"{m['skipped_ticks']} sampling slot(s) were skipped because a tick overran its slot; "
                     "rates span the longer intervals.")
    shortened = (m.get("window") or {}).get("shortened") if isinstance(m.get("window"), dict) else None
    if shortened:
        notes.append(f"Window shortened: {shortened}")
    notes.append(SYSSTAT_DEFINITIONS[0].upper() + SYSSTAT_DEFINITIONS[1:])
    notes.append("Times are UTC on the collecting host's clock.")
    meta["notes"] = notes
    return meta


def _missing(ds: Dataset) -> list[dict]:
    return [{"name": name, "status": status, "reason": reason}
            for name, (status, reason) in sorted(ds.missing.items())]


def build_report_from_dataset(ds: Dataset, bundle=None) -> Report:
    """The report of an already loaded dataset (``bundle`` adds its file name and read problems)."""
    incident = build_incident(ds)
    m: Model = incident.model
    report = Report(meta=_meta(ds, bundle), missing=_missing(ds), sections=[],
                    findings=incident.findings, skipped_rules=incident.skipped_rules,
                    timeline=incident.timeline, verdict=incident.verdict,
                    worst_severity=incident.worst_severity)
    data: dict[str, Table] = {}

    def add(result) -> None:
        sections, tables = result if isinstance(result, tuple) else (result, {})
        report.sections.extend(sections)
        data.update(tables)

    involved = involved_pids(m, incident.findings)
    # Who waited on memory (delay accounting) follows pidstat -r: per-process
    # waits next to per-process fault rates, before the ranking by size.
    for sections in (bpf_sections, free_sections, vmstat_s_sections, swapon_sections, psi_sections,
                     sar_sections, pidstat_sections, delay_sections, process_sections,
                     lambda model: pmap_sections(model, involved), deepdive_sections, shmem_sections, slabtop_sections,
                     numastat_sections, buddyinfo_sections, cgroup_sections, kmsg_sections):
        # The cgroups section charts the groups the findings name.
        add(sections(m, incident.findings) if sections is cgroup_sections else sections(m))
    # Every time chart marks the OOM kills and stall bursts of the window.
    markers = event_markers(m)
    for chart in time_charts(report.sections):
        chart.markers = list(markers)
    report.key_charts = key_chart_ids(incident.findings, report.sections)
    # Every table of the document is machine data too; the full-resolution
    # versions (sar, pidstat, slabtop) replace the shortened ones.
    for t in report.all_tables():
        report.data_tables.setdefault(t.id, t)
    report.data_tables.update(data)
    return report


def build_report(bundle) -> Report:
    """Parse an opened bundle (``bundle.reader.Bundle``) and build its report."""
    return build_report_from_dataset(load_dataset(bundle), bundle)
