"""Text listing of a bundle for ``snapcollect show``."""

from __future__ import annotations

import json
import textwrap
import time

from snapcollect.bundle.names import is_series, series_source
from snapcollect.bundle.reader import Bundle

WIDTH = 79


def _size(n: int | None) -> str:
    if not n:
        return "0 B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _hms(t: float | None) -> str:
    if t is None:
        return "?"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _window(m: dict) -> str:
    """The sampling window (from ``window``), else the run's start and end."""
    w = m.get("window") or {}
    if "start" in w and "end" in w:
        text = f"{_hms(w['start'])} .. {_hms(w['end'])[11:]}  ({w['end'] - w['start']:.1f} s)"
    elif m.get("ended_at_estimate"):
        text = f"{m.get('started_at', '?')} .. {_hms(m['ended_at_estimate'])[11:]} (last sample; not finished)"
    else:
        text = f"{m.get('started_at', '?')} .. {m.get('ended_at') or 'unknown (not finished)'}"
    return text


def format_show(b: Bundle) -> str:
    m = b.manifest
    lines = [
        f"bundle:    {b.path}",
        f"format:    {m.get('format')} v{m.get('format_version')} (snapcollect {m.get('tool_version', '?')})",
        f"host:      {m.get('host', '?')}",
        f"kernel:    {m.get('kernel', '?')}",
        f"window:    {_window(m)}",
    ]
    sampling = (f"every {m.get('interval_s', '?')} s for {m.get('duration_requested_s', '?')} s requested")
    if "ticks" in m:
        sampling = f"{m['ticks']} samples " + sampling
        if m.get("skipped_ticks"):
            sampling += f", {m['skipped_ticks']} skipped (overran)"
    lines.append(f"sampling:  {sampling}")
    if (m.get("window") or {}).get("shortened"):
        lines += _wrap(f"           {m['window']['shortened']}", " " * 11)
    lines += _wrap(f"complete:  {'yes' if b.complete else 'NO: ' + (b.incomplete_reason or '')}", " " * 11)
    bpf = m.get("bpf")
    if isinstance(bpf, dict):
        state = "on" if bpf.get("enabled") else f"off: {bpf.get('reason') or 'not enabled'}"
        if bpf.get("error"):
            state += f" (error: {bpf['error']})"
        lines += _wrap(f"bpf:       {state}", " " * 11)
    privacy = m.get("privacy")
    if isinstance(privacy, dict):
        # Bundles before the privacy field said nothing: show nothing rather than guess.
        said = f"secrets {privacy.get('secrets', '?')}"
        said += "; host, user names, addresses and home paths redacted" if privacy.get("redacted") is True \
            else "; not redacted"
        lines += _wrap(f"privacy:   {said}", " " * 11)
    if "cpu_s" in m or "peak_rss_kb" in m:
        lines.append(f"cost:      {m.get('cpu_s', '?')} s CPU, peak RSS {m.get('peak_rss_kb', '?')} kB")
    proc = bpf.get("process") if isinstance(bpf, dict) else None
    loader = bpf.get("loader") if isinstance(bpf, dict) else None
    if isinstance(loader, dict):
        # processes of their own: the collector's cost above is neither
        said = f"loader (the compile) {loader.get('cpu_s', '?')} s CPU, peak RSS {loader.get('peak_rss_kb', '?')} kB"
        if isinstance(proc, dict):
            said = (f"reader {proc.get('cpu_s', '?')} s CPU, peak RSS {proc.get('peak_rss_kb', '?')} kB; "
                    + said)
        lines += _wrap(f"bpf cost:  {said}", " " * 11)
    arts = b.artifacts()
    ok = [a for a in arts if a.get("status") == "ok"]
    bad = [a for a in arts if a.get("status") != "ok"]
    lines.append("")
    lines.append(f"artifacts ({len(ok)} ok, {len(bad)} not collected):")
    width = max([len(a["name"]) for a in arts] + [10])
    for a in sorted(arts, key=lambda a: a["name"]):
        count = ""
        if a.get("kind") == "series":
            count = f"  {a.get('samples', 0)} samples"
        elif a.get("kind") == "stream":
            count = f"  {a.get('records', 0)} records"
        lines.append(f"  {a['name']:<{width}}  {a.get('status', 'ok'):<11} {_size(a.get('bytes')):>10}{count}")
    if bad:
        lines.append("")
        lines.append("missing and why:")
        for a in sorted(bad, key=lambda a: a["name"]):
            lines += _wrap(f"  {a['name']}: {a.get('status')}: {a.get('reason') or 'no reason recorded'}",
                           "      ")
    if b.warnings:
        lines.append("")
        lines.append("set aside on reading:")
        for w in b.warnings:
            lines += _wrap(f"  {w}", "      ")
    return "\n".join(lines)


def _wrap(text: str, indent: str) -> list[str]:
    """Long reasons wrapped to the terminal's 80 columns."""
    return textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False) or [text]


class ExtractError(Exception):
    """The artifact asked for is not in the bundle, or was not collected."""


def extract(b: Bundle, name: str) -> bytes:
    """One artifact's bytes, as the collector stored them (``show --extract NAME``).

    - a file artifact (``proc/meminfo@end``, ``bpf/fault_stacks.folded``):
      its bytes as stored;
    - a stream (``kmsg``, ``bpf/oom_kill``): one JSON object per line, in
      the order written;
    - a series (``series/proc/vmstat``): every sample's text, each after a
      line ``# k=<tick> t=<epoch seconds>``.
    """
    data = b.data(name)
    if data is not None:
        return data
    if name in b.streams:
        return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n"
                        for r in b.records(name))
    if is_series(name):
        samples = b.series(series_source(name))
        if samples:
            return b"".join(f"# k={s.k} t={s.t:.3f}\n".encode() + s.text.encode("utf-8", "surrogateescape")
                            + (b"" if s.text.endswith("\n") else b"\n") for s in samples)
    status, reason = b.status(name)
    if status == "ok" and b.entry(name) is not None:
        return b""          # collected, and empty (a stream with no record)
    if status != "missing" or b.entry(name) is not None:
        raise ExtractError(f"{name}: not collected ({status}: {reason or 'no reason recorded'})")
    near = [n for n in b.names() if n.startswith(name.split("@")[0].rsplit("/", 1)[0])][:8]
    hint = f"; artifacts near it: {', '.join(near)}" if near else "; `snapcollect show BUNDLE` lists them"
    raise ExtractError(f"{name}: no such artifact in this bundle{hint}")
