"""The findings engine: runs every registered rule over the model of an incident.

Rules are declared in ``rule`` and live in ``rules/``. Each declared input is a group of artifact names of which any one will
do (``("bpf/oom_kill", "series/proc/vmstat", "kmsg")``). Before a rule
runs, the engine checks its groups against the Dataset; a rule whose input
is absent becomes a ``SkippedRule`` with the reason, e.g. "needs
series/proc/vmstat (denied: permission denied)". A rule that raises is
also listed as skipped, with the error: one broken rule never hides the
others nor crashes the report.
"""

from __future__ import annotations

import traceback
from typing import Any

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.findings import rules as _rules  # noqa: F401  (registers every rule)
from snapcollect.analysis.findings.rule import REGISTRY, Hit, Rule, SkipRule
from snapcollect.analysis.model import Model, build_model
from snapcollect.analysis.results import SEVERITY_ORDER, Evidence, Finding, SkippedRule
from snapcollect.bundle.names import (BPF_PREFIX, CGROUPS_MEMORY, DELAY_TASKSTATS, KMSG, NODES_MEMINFO,
                                      NODES_NUMASTAT,
                                      NODE_DIR_PREFIX, NODE_PREFIX, PROCS_PREFIX, PROC_BUDDYINFO,
                                      PROC_MEMINFO, PROC_PRESSURE_MEMORY, PROC_SLABINFO, PROC_SWAPS,
                                      PROC_SYS_VM, PROC_VMSTAT, PROC_ZONEINFO, SERIES_CGROUPS_MEMORY,
                                      SERIES_NODES_NUMASTAT, SERIES_PROCS, SERIES_PROC_MEMINFO,
                                      SERIES_PROC_PRESSURE_MEMORY, SERIES_PROC_VMSTAT, SYS_THP,
                                      series_source)


def all_rules() -> list[Rule]:
    return list(REGISTRY)


def get_rule(key: str) -> Rule:
    for r in all_rules():
        if r.key == key:
            return r
    raise KeyError(key)


# -- inputs -----------------------------------------------------------------

def _series_len(ds: Dataset, name: str) -> int | None:
    return {
        SERIES_PROC_VMSTAT: len(ds.vmstat),
        SERIES_PROC_MEMINFO: len(ds.meminfo),
        SERIES_PROC_PRESSURE_MEMORY: len(ds.psi),
        SERIES_PROCS: len(ds.procs),
        SERIES_NODES_NUMASTAT: len(ds.numa),
        SERIES_CGROUPS_MEMORY: len(ds.memcgs),
    }.get(name)


# Series that need two samples to give a delta; meminfo is a level.
_NEED_TWO = {SERIES_PROC_VMSTAT, SERIES_PROC_PRESSURE_MEMORY, SERIES_PROCS,
             SERIES_NODES_NUMASTAT}

_SNAPSHOT_FIELDS = {
    PROC_MEMINFO: "meminfo", PROC_VMSTAT: "vmstat", PROC_SWAPS: "swaps",
    PROC_SLABINFO: "slabinfo", PROC_BUDDYINFO: "buddyinfo", PROC_ZONEINFO: "zoneinfo",
    PROC_PRESSURE_MEMORY: "psi", PROC_SYS_VM: "sysvm",
    SYS_THP: "thp", CGROUPS_MEMORY: "cgroups",
    NODES_NUMASTAT: "numastat", NODES_MEMINFO: "numa_meminfo",
}


def _missing_reason(ds: Dataset, name: str) -> str | None:
    """Status of an artifact (or of any artifact a family name stands for)."""
    if name in ds.missing:
        status, reason = ds.missing[name]
        return f"{status}: {reason}" if reason else status
    if series_source(name).startswith(NODE_PREFIX):
        # per-node artifacts are named sys/node/node<N>/...: report the first
        base = name.split("@")[0].rsplit("/", 1)[-1]
        for n, (status, reason) in sorted(ds.missing.items()):
            if n.startswith(name.split(NODE_PREFIX)[0] + NODE_DIR_PREFIX) and base in n:
                return f"{status}: {reason}" if reason else status
    if name.startswith(BPF_PREFIX):
        status = _bpf_status(ds, name)
        if status and status[0] != "ok":
            return f"{status[0]}: {status[1]}" if status[1] else status[0]
    return None


def _bpf_status(ds: Dataset, name: str) -> tuple[str, str | None] | None:
    if name in ds.bpf.available:
        return ds.bpf.available[name]
    word = name.split("/", 1)[1]
    for n, st in ds.bpf.available.items():
        if word in n:
            return st
    return None


# Inputs that only an opt-in of `snapcollect collect` gathers -> the
# manifest entry that says it was asked for.
OPT_IN_INPUTS = {"deepdive": "deepdive"}     # --pid, --comm


def available(ds: Dataset, name: str) -> tuple[bool, str]:
    """Whether input ``name`` can be used, and if not, why."""
    why = _missing_reason(ds, name)
    n = _series_len(ds, name)
    if n is not None:
        need = 2 if name in _NEED_TWO else 1
        if n >= need:
            return True, ""
        if why:
            return False, why
        return False, ("not in this bundle" if n == 0 else f"{n} sample; {need} needed")
    if name.startswith(BPF_PREFIX):
        st = _bpf_status(ds, name)
        if st and st[0] == "ok":
            return True, ""
        return False, why or "not in this bundle"
    if name in OPT_IN_INPUTS:
        # An opt-in collection: a bundle made without asking for it lacks
        # nothing (the rule looks at no process); asked for and not
        # collected, the rule is skipped with the collector's reason.
        if ds.deepdive:
            return True, ""
        asked = (ds.manifest or {}).get(OPT_IN_INPUTS[name])
        if isinstance(asked, dict):
            return False, why or f"asked for, not collected: {asked.get('reason') or 'no reason recorded'}"
        return True, ""
    if name == DELAY_TASKSTATS:
        # Per-process delay accounting: the reads, else why there are none.
        # Not an opt-in: the collector reads it by default, so a bundle
        # without it (an older collector, or no manifest entry) cannot say
        # who waited, and the rules are skipped, not quietly passed.
        if ds.delays:
            return True, ""
        state = (ds.manifest or {}).get("delayacct")
        if isinstance(state, dict):
            st = state.get("state")
            if isinstance(st, str) and (st.startswith("already on") or st == "enabled for the window"):
                return False, why or f"no process read (delay accounting {st})"
            return False, why or f"not collected: {st or 'no reason recorded'}"
        return False, why or "not in this bundle"
    if name == KMSG:
        if why:
            return False, why
        listed = any(a.get("name") == KMSG for a in ds.manifest.get("artifacts", []))
        if ds.kmsg or listed:
            return True, ""
        return False, "not in this bundle"
    if "@" in name:
        source, phase = name.split("@", 1)
        attr = _SNAPSHOT_FIELDS.get(source)
        snap = {"start": ds.start, "end": ds.end}.get(phase)
        if attr is None or snap is None:
            return False, "unknown input"
        value = getattr(snap, attr)
        if attr == "cgroups":
            value = snap.memcgs or value
        if value is not None and value != {} and value != []:
            return True, ""
        return False, why or "not in this bundle"
    if name.startswith(PROCS_PREFIX):       # expensive per-process detail
        if ds.top:
            return True, ""
        return False, why or "not in this bundle"
    return False, why or "unknown input"


def check_inputs(ds: Dataset, r: Rule) -> str | None:
    """None when every input group is satisfied, else the skip reason."""
    for group in r.needs:
        reasons = []
        for name in group:
            ok, why = available(ds, name)
            if ok:
                break
            reasons.append(f"{name} ({why})")
        else:
            return "needs " + " or ".join(reasons)
    return None


# -- running ----------------------------------------------------------------

def _fill(template: str, facts: dict[str, Any]) -> str:
    """A template over the hit's facts; a missing fact is a bug of the rule, reported as such."""
    return template.format_map(facts)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def to_finding(r: Rule, hit: Hit) -> Finding:
    if hit.severity not in r.severities:
        raise ValueError(f"{r.key} returned severity {hit.severity}, declared {r.severities}")
    # Facts named with a leading underscore only word the text (a time as
    # HH:MM:SS, a size in MiB); the others are the evidence values.
    values = {k: _jsonable(v) for k, v in hit.facts.items() if not k.startswith("_")}
    return Finding(
        key=r.key,
        severity=hit.severity,  # type: ignore[arg-type]
        title=_fill(r.title, hit.facts),
        explanation=_fill(r.explanation, hit.facts),
        threshold=r.threshold,
        threshold_source=r.source,
        evidence=Evidence(artifacts=list(dict.fromkeys(hit.artifacts)), time_range=hit.time_range,
                          values=values, section=hit.section or r.section),
    )


def evaluate(model: Model | Dataset, rules: list[Rule] | None = None) -> tuple[list[Finding], list[SkippedRule]]:
    """Run every rule over the model (built here from a Dataset); findings by severity, then catalogue order."""
    m = model if isinstance(model, Model) else build_model(model)
    ds = m.ds
    rules = all_rules() if rules is None else rules
    findings: list[tuple[int, int, Finding]] = []
    skipped: list[SkippedRule] = []
    for i, r in enumerate(rules):
        reason = check_inputs(ds, r)
        if reason:
            skipped.append(SkippedRule(r.key, reason))
            continue
        try:
            hit = r.func(m)
            if hit is None:
                continue
            f = to_finding(r, hit)
        except SkipRule as exc:
            skipped.append(SkippedRule(r.key, str(exc)))
            continue
        except Exception as exc:  # a broken rule is reported, never fatal
            where = traceback.extract_tb(exc.__traceback__)[-1]
            skipped.append(SkippedRule(
                r.key, f"rule failed: {exc.__class__.__name__}: {exc} "
                       f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})"))
            continue
        findings.append((SEVERITY_ORDER[f.severity], i, f))
    findings.sort(key=lambda x: (x[0], x[1]))
    return [f for _, _, f in findings], skipped
