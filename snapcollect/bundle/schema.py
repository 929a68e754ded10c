"""Shapes of the JSON records in a bundle: manifest, artifact entries, ticks, stream records.

Everything read from a bundle is hostile input, so each record is decoded
strictly and checked here before analysis sees it:

- JSON: UTF-8 only; NaN and Infinity refused; integers of more than
  4,300 digits (Python's int/str limit) and nesting too deep for the
  decoder become a ``Invalid`` error, never a traceback later.
- A record that is not an object, or lacks a required field, or has one
  of the wrong type, is refused as a whole (``Invalid``).
- An optional field of the wrong type is dropped and named in the
  returned warnings; the rest of the record is kept.
- Fields not listed are kept as they are in the manifest (the collector
  adds fields over time; the report shows them), and dropped from ticks
  and stream records: only the listed fields are read, and there are
  hundreds of thousands of those records.
- Decoding costs memory per value, not per byte (``{},`` is a 64-byte
  dict), so ``json_values`` bounds the number of values of a document
  before it is decoded.

The shapes follow what bundle.writer writes (see docs/bundle-format.md):
a tick is ``{"k", "t", "mono", "texts": {source: text}, "failures":
{source: [status, reason]}}``; kmsg records and the BPF records of
collect/bpf/events.py carry the fields below.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from snapcollect.bundle.names import BPF_COMPACTION, BPF_KSWAPD_WAKE, BPF_OOM_KILL, BPF_RECLAIM, KMSG


class Invalid(ValueError):
    """A record that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Type:
    """A type test with the words that name it in messages."""

    name: str
    test: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        return self.test(value)


def _finite(v: Any) -> bool:
    return type(v) is int or (type(v) is float and math.isfinite(v))


INT = Type("an integer", lambda v: type(v) is int)
COUNT = Type("a whole number >= 0", lambda v: type(v) is int and v >= 0)
NUM = Type("a number", _finite)
STR = Type("a string", lambda v: type(v) is str)
BOOL = Type("true or false", lambda v: type(v) is bool)
OBJ = Type("an object", lambda v: type(v) is dict)
LIST = Type("a list", lambda v: type(v) is list)


def nullable(t: Type) -> Type:
    return Type(f"{t.name} or null", lambda v: v is None or t(v))


def list_of(t: Type) -> Type:
    return Type(f"a list of {t.name}s", lambda v: type(v) is list and all(t(x) for x in v))


def map_of(t: Type) -> Type:
    return Type(f"an object of {t.name}s", lambda v: type(v) is dict and all(t(x) for x in v.values()))


def one_of(*values: str) -> Type:
    return Type(f"one of {', '.join(values)}", lambda v: v in values)


@dataclass(frozen=True)
class Shape:
    """A JSON object: required and optional fields, each with a type or a nested shape."""

    what: str
    required: dict
    optional: dict
    keep_other: bool = True

    def check(self, rec: Any, warnings: list[str] | None = None, where: str = "") -> dict:
        """The record with bad optional fields removed; ``Invalid`` if it cannot be used."""
        # Messages are built only on failure: this runs for every record.
        if type(rec) is not dict:
            raise Invalid(f"{where or self.what}: not a JSON object")
        out = dict(rec) if self.keep_other else {}
        for key, t in self.required.items():
            if key not in rec:
                raise Invalid(f"{where or self.what}: no {key!r} field")
            value = rec[key]
            if type(t) is Shape:
                value = t.check(value, warnings, f"{where or self.what}: {key!r}")
            elif not t.test(value):
                raise Invalid(f"{where or self.what}: {key!r} is not {t.name}")
            out[key] = value
        for key, t in self.optional.items():
            if key not in rec:
                continue
            value = rec[key]
            if type(t) is Shape:
                try:
                    out[key] = t.check(value, warnings, f"{where or self.what}: {key!r}")
                    continue
                except Invalid as exc:
                    why = str(exc)
            elif t.test(value):
                out[key] = value
                continue
            else:
                why = f"{where or self.what}: {key!r} is not {t.name}"
            out.pop(key, None)
            if warnings is not None:
                warnings.append(f"{why}; ignored")
        return out


# -- JSON decoding -------------------------------------------------------------


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_float)
# Without the per-float hook, for ticks and stream records: a number that
# overflows to inf decodes, but only listed fields are kept and NUM
# refuses what is not finite.
_FAST = json.JSONDecoder(parse_constant=_no_constants)


def json_values(data: bytes) -> int:
    """An upper bound on the number of values ``data`` decodes to, weighted by their cost.

    Every value but the first follows a comma or opens a container; an
    empty object costs about four times what a number does, an empty
    list twice (measured on CPython 3.11).
    """
    return 4 * data.count(b"{") + 2 * data.count(b"[") + data.count(b",") + 1


def loads(data: bytes | str, what: str, *, fast: bool = False) -> Any:
    """Decode one JSON document strictly; ``Invalid`` with a one-line reason.

    ``fast``: let overflowing floats through as inf, for documents whose
    kept fields are all checked by a Shape.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        return (_FAST if fast else _DECODER).decode(text)
    except UnicodeDecodeError as exc:
        raise Invalid(f"{what}: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise Invalid(f"{what}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise Invalid(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # digits over sys.get_int_max_str_digits(), NaN, 1e999
        raise Invalid(f"{what}: {str(exc).splitlines()[0][:120]}") from None


# -- the shapes ------------------------------------------------------------------

STATUS = STR  # the set grows with the collector; the report shows any string

ARTIFACT = Shape("artifact entry", {"name": STR}, {
    "kind": one_of("file", "series", "stream"), "status": STATUS, "reason": nullable(STR),
    "path": nullable(STR), "bytes": COUNT, "sha256": STR, "samples": COUNT, "records": COUNT,
    "failed": COUNT, "source": nullable(STR), "remedy": nullable(STR), "dropped": COUNT,
    "lost": COUNT,
})

_CLOCK = Shape("manifest clock", {"wall": NUM, "monotonic": NUM}, {})
_WINDOW = Shape("manifest window", {}, {
    "start": NUM, "end": NUM, "start_mono": NUM, "end_mono": NUM, "shortened": nullable(STR),
})
_BPF = Shape("manifest bpf", {}, {
    "enabled": BOOL, "reason": nullable(STR), "error": nullable(STR), "kernel": nullable(STR),
    "headers": nullable(STR), "headers_release": nullable(STR), "fault_sample_period": COUNT,
    "kernel_stacks": BOOL, "stack_map_entries": COUNT, "compile_s": NUM,
    "compile_rss_before_kb": COUNT, "compile_peak_rss_kb": COUNT, "events_lost": COUNT,
    "reader_peak_rss_kb": COUNT,
    "dropped": map_of(COUNT), "records": map_of(COUNT),
    "tracepoint_fields": map_of(list_of(STR)), "header_layouts": map_of(OBJ),
})

MANIFEST = Shape("manifest.json", {"format": STR, "format_version": INT}, {
    "artifacts": LIST, "complete": BOOL, "stopped_by": nullable(STR),
    "stop_reason": nullable(STR), "host": nullable(STR), "kernel": nullable(STR),
    "tool_version": nullable(STR), "started_at": nullable(STR), "ended_at": nullable(STR),
    "duration_requested_s": NUM, "interval_s": NUM, "top_n": COUNT, "deadline_s": NUM,
    "uid": INT, "clock": _CLOCK, "ticks": COUNT, "skipped_ticks": COUNT, "window": _WINDOW,
    "cpu_s": NUM, "cpu_self_s": NUM, "wall_s": NUM, "peak_rss_kb": COUNT,
    "children_peak_rss_kb": COUNT, "bpf": _BPF, "ended_at_estimate": NUM,
    "phases": map_of(NUM),
})

TICK = Shape("tick", {"k": COUNT, "t": NUM, "texts": map_of(STR)}, {
    "mono": NUM, "failures": map_of(list_of(nullable(STR))), "dur_s": NUM, "cut": map_of(STR),
    "skipped_pids": list_of(INT),
}, keep_other=False)

_BPF_HEAD = {"t": NUM, "ts_ns": COUNT, "cpu": COUNT, "tid": COUNT, "comm": STR}

KMSG_RECORD = Shape(f"{KMSG} record", {"seq": COUNT, "ts_us": COUNT}, {
    "prio": INT, "facility": INT, "text": STR, "before_window": BOOL,
}, keep_other=False)

RECORDS: dict[str, Shape] = {
    KMSG: KMSG_RECORD,
    BPF_OOM_KILL: Shape(f"{BPF_OOM_KILL} record", {"pid": COUNT}, {
        **_BPF_HEAD, "trigger_pid": COUNT, "trigger_tid": COUNT, "trigger_comm": nullable(STR),
        "total_vm": COUNT, "anon_rss": COUNT, "file_rss": COUNT, "shmem_rss": COUNT, "uid": COUNT,
        "pgtables": COUNT, "oom_score_adj": INT, "kstack": list_of(STR),
    }, keep_other=False),
    BPF_RECLAIM: Shape(f"{BPF_RECLAIM} record", {"pid": COUNT, "latency_ns": COUNT}, {
        **_BPF_HEAD, "kind": STR, "order": nullable(INT), "gfp_flags": COUNT, "nr_reclaimed": COUNT,
    }, keep_other=False),
    BPF_KSWAPD_WAKE: Shape(f"{BPF_KSWAPD_WAKE} record", {"pid": COUNT}, {
        **_BPF_HEAD, "nid": INT, "zid": nullable(INT), "order": INT, "gfp_flags": COUNT,
    }, keep_other=False),
    BPF_COMPACTION: Shape(f"{BPF_COMPACTION} record", {"pid": COUNT, "latency_ns": COUNT}, {
        **_BPF_HEAD, "status": nullable(INT), "sync": BOOL,
    }, keep_other=False),
}

# Streams not listed (a newer collector's) still need to be objects.
ANY_RECORD = Shape("stream record", {}, {})


def record_shape(stream: str) -> Shape:
    return RECORDS.get(stream, ANY_RECORD)


__all__ = ["ARTIFACT", "Invalid", "MANIFEST", "RECORDS", "Shape", "TICK", "json_values", "loads", "record_shape"]
