"""Tracepoint format files under tracefs (/sys/kernel/tracing/events).

The format file of a tracepoint lists the fields the running kernel
records; the BPF program is built from them, so it adapts to what each
kernel version has. Sample (oom/mark_victim on 6.8+; before 6.8 only
``pid`` is there)::

    name: mark_victim
    ID: 521
    format:
    	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
    	...
    	field:int pid;	offset:8;	size:4;	signed:1;
    	field:__data_loc char[] comm;	offset:12;	size:4;	signed:0;
    	field:unsigned long total_vm;	offset:16;	size:8;	signed:0;

    print fmt: "pid=%d comm=%s total-vm=%lukB ...", REC->pid, ...
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# tracefs has its own mount point since 4.1; older systems reach it
# through debugfs only.
TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MOUNT_REMEDY = "mount tracefs: mount -t tracefs nodev /sys/kernel/tracing"

_FIELD = re.compile(r"^\s*field:(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
                    r"\s*signed:(?P<signed>\d+);", re.M)


@dataclass(frozen=True)
class Field:
    name: str
    type: str          # C type as the format file spells it, e.g. "unsigned long"
    offset: int
    size: int
    signed: bool


def parse_fields(text: str) -> dict[str, Field]:
    """Fields of one format file, without the ``common_*`` header fields."""
    out: dict[str, Field] = {}
    for m in _FIELD.finditer(text):
        decl = m.group("decl").strip()
        # "__data_loc char[] comm", "char comm[16]", "unsigned long total_vm"
        name_part = decl.rsplit(None, 1)[-1]
        name = name_part.split("[", 1)[0]
        ctype = decl[: len(decl) - len(name_part)].strip()
        if name.startswith("common_"):
            continue
        out[name] = Field(name, ctype, int(m.group("offset")), int(m.group("size")),
                          m.group("signed") == "1")
    return out


def find_tracefs() -> str | None:
    """The directory holding ``events/``, or None when tracefs is not reachable."""
    for d in TRACEFS_DIRS:
        if os.path.isdir(os.path.join(d, "events")):
            return d
    return None


def tracefs_mounts(mounts_text: str) -> list[str]:
    """Mount points of tracefs (or of debugfs, which holds tracing/) in /proc/self/mounts text."""
    out = []
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "tracefs":
            out.append(parts[1])
        elif len(parts) >= 3 and parts[2] == "debugfs":
            out.append(parts[1] + "/tracing")
    return out


def mounted_tracefs() -> list[str]:
    try:
        with open("/proc/self/mounts") as fh:
            return tracefs_mounts(fh.read())
    except OSError:
        return []


def read_format(tracefs: str, tracepoint: str) -> tuple[str | None, str | None]:
    """(format text, None) or (None, reason) for ``"category:event"``."""
    cat, _, ev = tracepoint.partition(":")
    path = os.path.join(tracefs, "events", cat, ev, "format")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(), None
    except FileNotFoundError:
        return None, f"tracepoint {tracepoint} does not exist on kernel {os.uname().release}"
    except PermissionError:
        return None, f"cannot read {path}: permission denied"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror}"
