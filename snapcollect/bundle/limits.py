"""Caps on what the reader accepts from one bundle, and where they are set.

A bundle arrives from somewhere else (a ticket, a laptop, a colleague):
a 96 KB file can hold a 1 GiB member, a million empty members or a
manifest that never ends. The reader stops at these caps with one line
that names the cap and how to raise it. The defaults keep rendering any
bundle under 512 MB of RSS and 30 s on a small machine (see
benchmarks/bench_hostile_bundles.py) while being far above what the
collector writes: its largest sources are capped at 32 MiB (smaps, the
process pass) and its BPF streams at 210,000 records in all.

Each cap is set, in order of precedence, by a ``show``/``report`` option,
by an environment variable, or by the default here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True)
class Cap:
    """One cap: its attribute, option, environment variable and default."""

    attr: str
    option: str
    env: str
    default: int
    what: str
    is_size: bool


CAPS = (
    # The collector's largest source is one process's smaps, capped at
    # 32 MiB. Parsing a snapshot costs about twice its size again, so
    # 128 MiB of parsed files is what fits in 512 MB.
    Cap("max_member_bytes", "--max-member-size", "SNAPCOLLECT_MAX_MEMBER_SIZE", 32 * MIB,
        "size of one archive member", True),
    Cap("max_total_bytes", "--max-total-size", "SNAPCOLLECT_MAX_TOTAL_SIZE", 128 * MIB,
        "decompressed size of the archive", True),
    Cap("max_members", "--max-members", "SNAPCOLLECT_MAX_MEMBERS", 300_000,
        "number of archive members", False),
    Cap("max_records", "--max-records", "SNAPCOLLECT_MAX_RECORDS", 300_000,
        "number of stream records (kernel log lines, BPF events)", False),
    # Decoded JSON costs memory per value (up to ~90 bytes), not per byte:
    # "{}," is 3 bytes of text and a 64-byte dict. A bundle at the
    # collector's limits (210,000 BPF records of a dozen fields, a day
    # of ticks) counts about 3.5 million (schema.json_values).
    Cap("max_json_values", "--max-json-values", "SNAPCOLLECT_MAX_JSON_VALUES", 4_000_000,
        "number of values in the bundle's JSON documents", False),
)

# The manifest keeps fields the schema does not list, and the report
# shows them, so it gets this share of max_json_values (200,000 by
# default; a collector's manifest counts a few thousand).
MANIFEST_SHARE = 20

_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1024 * GIB}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"512M"`` -> 536870912; plain numbers are bytes. ValueError when not a size."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 512M, 2G, 1048576)")
    value = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise ValueError(f"must be greater than 0: {text!r}")
    return value


def parse_count(text: str) -> int:
    text = text.strip().replace("_", "")
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"not a positive whole number: {text!r}")
    return int(text)


def human(cap: Cap, value: int) -> str:
    if not cap.is_size:
        return f"{value:,}"
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if value >= size:
            return f"{value / size:.4g} {unit}"
    return f"{value} B"


@dataclass(frozen=True)
class Limits:
    max_member_bytes: int = CAPS[0].default
    max_total_bytes: int = CAPS[1].default
    max_members: int = CAPS[2].default
    max_records: int = CAPS[3].default
    max_json_values: int = CAPS[4].default

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Limits":
        """Defaults, then environment variables, then ``overrides`` (None: not given).

        A malformed environment variable raises ValueError naming it.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for cap in CAPS:
            given = overrides.get(cap.attr)
            if given is not None:
                values[cap.attr] = int(given)
                continue
            text = environ.get(cap.env)
            if text:
                try:
                    values[cap.attr] = parse_size(text) if cap.is_size else parse_count(text)
                except ValueError as exc:
                    raise ValueError(f"{cap.env}: {exc}") from None
        return cls(**values)

    def exceeded(self, attr: str, detail: str) -> str:
        """The one-line message for a cap that was reached."""
        cap = next(c for c in CAPS if c.attr == attr)
        value = getattr(self, attr)
        return (f"{detail}: over the cap of {human(cap, value)} on the {cap.what} "
                f"(raise it with {cap.option} or {cap.env})")


class LimitExceeded(Exception):
    """A cap was reached; the message is the one line to show."""


__all__ = ["CAPS", "MANIFEST_SHARE", "Cap", "LimitExceeded", "Limits", "parse_count", "parse_size"]
