"""Text listing of a bundle for ``snapcollect show``."""

from __future__ import annotations

from snapcollect.bundle.reader import Bundle


def _size(n: int | None) -> str:
    if not n:
        return "0 B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def format_show(b: Bundle) -> str:
    m = b.manifest
    lines = [
        f"bundle:    {b.path}",
        f"format:    {m.get('format')} v{m.get('format_version')} (snapcollect {m.get('tool_version', '?')})",
        f"host:      {m.get('host', '?')}",
        f"kernel:    {m.get('kernel', '?')}",
        f"window:    {m.get('started_at', '?')} .. {m.get('ended_at') or 'unknown (not finished)'}"
        f"  (requested {m.get('duration_requested_s', '?')} s, interval {m.get('interval_s', '?')} s)",
        f"complete:  {'yes' if b.complete else 'NO: ' + (b.incomplete_reason or '')}",
    ]
    if "cpu_s" in m or "peak_rss_kb" in m:
        lines.append(f"cost:      {m.get('cpu_s', '?')} s CPU, peak RSS {m.get('peak_rss_kb', '?')} kB")
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
            lines.append(f"  {a['name']}: {a.get('status')}: {a.get('reason') or 'no reason recorded'}")
    return "\n".join(lines)
