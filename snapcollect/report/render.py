"""``snapcollect report BUNDLE [-o FILE] [--format F]``: pick a format, write it.

The format comes from ``--format`` or else the output's extension
(``.md``, ``.html``, ``.pdf``, ``.json``); without ``-o`` (or with
``-o -``) the report goes to stdout, as Markdown unless ``--format``
says otherwise. Markdown written to a file gets its charts as SVG files
in ``<stem>-charts/`` beside it. Files are written to a temporary name in
the same directory and renamed, so a failed render never leaves half a
report behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
from urllib.parse import quote

from snapcollect.errors import SnapcollectError

EXTENSIONS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".pdf": "pdf",
              ".json": "json"}
VALID = ".md, .html, .pdf, .json"


class ReportUsageError(SnapcollectError):
    """The command line asks for something the renderer cannot do."""

    exit_code = 2


class ReportOutputError(SnapcollectError):
    """The report could not be written where asked."""

    exit_code = 1


def choose_format(output: str | None, fmt: str | None) -> str:
    """The output format: --format wins, else the extension, else Markdown."""
    if fmt:
        if fmt not in EXTENSIONS.values():
            raise ReportUsageError(f"unknown format {fmt!r}: use one of md, html, pdf, json")
        return fmt
    if output is None or output == "-":
        return "md"
    ext = os.path.splitext(output)[1].lower()
    if ext not in EXTENSIONS:
        shown = ext or "no extension"
        raise ReportUsageError(f"cannot tell the report format from {output!r} ({shown}): "
                               f"use a file name ending in {VALID}, or --format")
    return EXTENSIONS[ext]


def _check_writable(path: str) -> None:
    """Fail before the (slow) rendering when the output cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ReportOutputError(f"{path}: is a directory; give a file name ending in {VALID}")
    if not os.path.isdir(parent):
        raise ReportOutputError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportOutputError(f"{path}: cannot write in {parent}: permission denied")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ReportOutputError(f"{path}: permission denied")


def _write_atomic(path: str, data: bytes) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".snapcollect-", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise ReportOutputError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ReportOutputError(f"{path}: cannot write: {exc.strerror}") from None


def chart_dir_for(output: str) -> str:
    """``<stem>-charts``, the folder beside a .md file that holds its SVGs."""
    stem = os.path.splitext(os.path.basename(output))[0]
    return f"{stem}-charts"


def write_markdown(report, output: str | None) -> None:
    """Markdown to a file with its charts beside it, or to stdout without them."""
    from snapcollect.report.markdown import render_markdown

    if output is None:
        text, _ = render_markdown(report, None)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    rel = chart_dir_for(output)
    text, assets = render_markdown(report, quote(rel))
    if assets:
        folder = os.path.join(os.path.dirname(os.path.abspath(output)), rel)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ReportOutputError(f"{folder}: cannot create the charts folder: {exc.strerror}") from None
        for asset in assets:
            name = os.path.basename(asset.path)
            _write_atomic(os.path.join(folder, name), picture_svg(asset.block).encode("utf-8"))
    _write_atomic(output, text.encode("utf-8"))


def picture_svg(block) -> str:
    """A chart or flame graph as a standalone SVG file."""
    from snapcollect.report.model import FlameGraph

    if isinstance(block, FlameGraph):
        from snapcollect.report.flamegraph import render_flamegraph, standalone

        return standalone(render_flamegraph(block.folded, title=block.title, count_name=block.count_name,
                                            id_prefix=f"flame-{block.id}"))
    from snapcollect.report.charts import chart_svg, standalone

    return standalone(chart_svg(block))


def render_to(report, fmt: str, output: str | None) -> None:
    """Render an already built Report in one format to a file or stdout."""
    if output == "-":
        output = None
    if output is not None:
        _check_writable(output)
    if fmt == "md":
        write_markdown(report, output)
        return
    if fmt == "pdf" and output is None and sys.stdout.isatty():
        raise ReportUsageError("a PDF is not for the terminal: give -o FILE.pdf (or redirect stdout)")
    if fmt == "html":
        from snapcollect.report.html import render_html

        data = render_html(report).encode("utf-8")
    elif fmt == "json":
        from snapcollect.report.json_out import render_json

        data = render_json(report).encode("utf-8")
    elif fmt == "pdf":
        from snapcollect.report.pdf import render_pdf

        data = render_pdf(report)
    else:
        raise ReportUsageError(f"unknown format {fmt!r}: use one of md, html, pdf, json")
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        _write_atomic(output, data)


def render_command(args) -> int:
    """Entry point of ``snapcollect report`` (args.bundle, args.output, args.format)."""
    from snapcollect.bundle import open_bundle

    output = getattr(args, "output", None)
    fmt = choose_format(output, getattr(args, "format", None))
    if output not in (None, "-"):
        _check_writable(output)
    bundle = open_bundle(args.bundle, getattr(args, "limits", None))
    from snapcollect.report.build import build_report

    report = build_report(bundle)
    render_to(report, fmt, output)
    if output not in (None, "-"):
        where = output
        if fmt == "md" and any(True for _ in _pictures(report)):
            where += f" (charts in {os.path.join(os.path.dirname(output), chart_dir_for(output))}/)"
        print(f"snapcollect: wrote {where}", file=sys.stderr)
    return 0


def _pictures(report):
    from snapcollect.report.model import Chart, FlameGraph

    def walk(sections):
        for s in sections:
            for b in s.blocks:
                if isinstance(b, (Chart, FlameGraph)):
                    yield b
            yield from walk(s.subsections)

    return walk(report.sections)
