"""BPF built against another kernel's headers: which artifacts that could touch.

Input: the manifest's ``bpf`` entry, as the BPF process wrote it::

    "kernel": "6.18.44", "headers": "/usr/src/linux-headers-6.1.0-57-amd64",
    "headers_release": "6.1.0-57-amd64",
    "header_layouts": {"bpf/oom_kill": {"programs": ["tracepoint__oom__mark_victim"],
                       "kernel_structs": [], "header_dependent": false, ...}, ...}

bcc compiles the programs against the headers it finds (the release in
their utsrelease.h); when that is not the running kernel's, a field read
through a kernel struct would be at the headers' offset. Tracepoint
fields are laid out from the running kernel's tracefs formats and are
unaffected; ``header_layouts`` (collect/bpf/header_layouts.py) says per
artifact whether any of its programs reads a kernel struct. Bundles
written before it lack ``header_layouts``: then which artifacts could be
affected is unknown. Every value is checked: the manifest is hostile
input like the rest of the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.bpf import bpf_status
from snapcollect.analysis.dataset import Dataset


@dataclass(frozen=True)
class HeaderMismatch:
    """The headers bcc compiled against were another kernel's."""

    kernel: str                              # the running kernel's release
    headers_release: str                     # the headers'
    headers: str | None                      # where they were
    affected: tuple[str, ...]                # collected artifacts whose programs read kernel structs
    unaffected: tuple[str, ...]              # collected artifacts that read no kernel struct
    unknown: tuple[str, ...]                 # collected artifacts the manifest says nothing usable about
    declared: bool                           # the manifest has header_layouts at all
    kernel_structs: tuple[str, ...]          # the structs the affected artifacts' programs read


def _text(v) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def header_mismatch(ds: Dataset) -> HeaderMismatch | None:
    """The mismatch, or None when the versions match, are not both known, or BPF collected nothing."""
    info = ds.manifest.get("bpf") if isinstance(ds.manifest, dict) else None
    if not isinstance(info, dict):
        return None
    kernel, release = _text(info.get("kernel")), _text(info.get("headers_release"))
    if kernel is None or release is None or kernel == release:
        return None
    collected = [name for name, (status, _) in sorted(bpf_status(ds).items()) if status == "ok"]
    if not collected:
        return None
    layouts = info.get("header_layouts")
    declared = isinstance(layouts, dict)
    affected, unaffected, unknown, structs = [], [], [], set()
    for name in collected:
        entry = layouts.get(name) if declared else None
        dependent = entry.get("header_dependent") if isinstance(entry, dict) else None
        if dependent is True:
            affected.append(name)
            ks = entry.get("kernel_structs")
            if isinstance(ks, list):
                structs.update(s for s in ks if isinstance(s, str))
        elif dependent is False:
            unaffected.append(name)
        else:
            unknown.append(name)
    return HeaderMismatch(kernel=kernel, headers_release=release, headers=_text(info.get("headers")),
                          affected=tuple(affected), unaffected=tuple(unaffected), unknown=tuple(unknown),
                          declared=declared, kernel_structs=tuple(sorted(structs)))


def consequence(h: HeaderMismatch) -> str:
    """What the mismatch means for the data, in one sentence's words (no final stop)."""
    if h.affected:
        return (f"{', '.join(h.affected)} read kernel structs ({', '.join(h.kernel_structs) or 'unnamed'}) "
                "laid out by those headers and may hold wrong values")
    if h.unknown and not h.declared:
        return "the bundle was written before the manifest recorded, per artifact, whether its programs read any"
    if h.unknown:
        return (f"the manifest says nothing usable about {', '.join(h.unknown)}; the other artifacts "
                "read no kernel struct")
    return "no artifact is affected: the programs read only tracepoint fields and BPF helpers"
