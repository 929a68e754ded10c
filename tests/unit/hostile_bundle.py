"""The fixture bundle rewritten with hostile text where the host's users write it.

``hostile_bundle(dst, comm=..., path=..., cgroup=..., kmsg=..., **manifest)``
copies tests/fixtures/bundles/memcg-swap-6.18.tar.zst through the real
BundleWriter, replacing

- the process name ``sc (fix) x) 2`` (stat lines of every tick, procs/top,
  status) by ``comm``,
- the interpreter path ``/work/main/.venv/bin/python`` (that process's
  cmdline) by ``path``,
- the cgroup ``/snapfix`` (a cgroup path in the JSON documents; the swap
  file /var/tmp/snapfix.swap keeps its name) by ``cgroup``,
- the text of the last kernel log record by ``kmsg``,

and setting the given manifest fields (``host``, ``kernel``, ``stop_reason``);
``complete=False`` closes it as a run stopped early (the report then shows
the stop reason).
Each value is bytes, stored as the collector stores what the kernel gives:
raw in files, as surrogate escapes inside JSON.
"""

from __future__ import annotations

import json
import os

from snapcollect.bundle import BundleWriter, open_bundle

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "bundles",
                       "memcg-swap-6.18.tar.zst")
COMM = "sc (fix) x) 2"
PATH = "/work/main/.venv/bin/python"
CGROUP = "/snapfix"


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _swap_strings(value, old: str, new: str, *, whole: bool = False):
    """``old`` -> ``new`` in every string of a JSON document (``whole``: only a
    string that is ``old`` or starts with ``old/``, as a cgroup path)."""
    if isinstance(value, str):
        if not whole:
            return value.replace(old, new)
        return new + value[len(old):] if value == old or value.startswith(old + "/") else value
    if isinstance(value, dict):
        return {_swap_strings(k, old, new, whole=whole): _swap_strings(v, old, new, whole=whole)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_strings(v, old, new, whole=whole) for v in value]
    return value


def hostile_bundle(dst: str, *, comm: bytes | None = None, path: bytes | None = None,
                   cgroup: bytes | None = None, kmsg: bytes | None = None, complete: bool | None = None,
                   **manifest: bytes) -> str:
    src = open_bundle(FIXTURE)
    swaps = []
    if comm is not None:
        # One process, one line: the collector does the same to a stat line.
        swaps.append((COMM, _s(comm).replace("\n", " ").replace("\t", " ")))
    if path is not None:
        swaps.append((PATH, _s(path)))

    def fix_text(text: str) -> str:
        for old, new in swaps:
            text = text.replace(old, new)
        return text

    head = {k: v for k, v in src.manifest.items()
            if k not in ("artifacts", "complete", "stopped_by", "ended_at", "format", "format_version")}
    head.update({k: _s(v) for k, v in manifest.items()})
    w = BundleWriter(dst, head)
    for name, data in src.files.items():
        text = _s(data)
        try:
            doc = json.loads(text)
        except ValueError:
            w.add_file(name, fix_text(text))
            continue
        for old, new in swaps:
            doc = _swap_strings(doc, old, new)
        if cgroup is not None:
            doc = _swap_strings(doc, CGROUP, _s(cgroup), whole=True)
        w.add_file(name, json.dumps(doc, indent=1))
    for tick in src.ticks:
        extra = {k: v for k, v in tick.items() if k not in ("k", "t", "mono", "texts", "failures")}
        w.add_tick(tick["k"], tick["t"], tick["mono"], {n: fix_text(t) for n, t in tick["texts"].items()},
                   {n: tuple(v) for n, v in (tick.get("failures") or {}).items()}, **extra)
    for name in src.streams:
        records = src.records(name)
        if name == "kmsg" and kmsg is not None and records:
            records[-1] = dict(records[-1], text=_s(kmsg))
        w.add_records(name, records)
    if complete is False:
        return w.close(complete=False, stopped_by="signal", ended_at=src.manifest.get("ended_at"))
    return w.close(complete=src.manifest.get("complete"), stopped_by=src.manifest.get("stopped_by"),
                   ended_at=src.manifest.get("ended_at"))
