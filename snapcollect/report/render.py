"""``snapcollect report BUNDLE [-o FILE] [--format F]``: pick a format, write it.

The format comes from ``--format`` or else the output's extension
(``.md``, ``.html``, ``.pdf``, ``.json``); without ``-o`` (or with
``-o -``) the report goes to stdout, as Markdown unless ``--format``
says otherwise, except on a terminal: there, without ``--format`` or ``-o -``, the
one-screen summary (report.summary) is printed instead. Markdown written to a file gets its charts as SVG files
in ``<stem>-charts/`` beside it. Files are written to a fresh name in
the same directory and then put in place (report.output_files), so a
failed render never leaves half a report behind; they get mode 0600 like
the bundle unless ``--mode`` says otherwise, no symlink is followed, and
an existing report is replaced only with ``--force``.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

from snapcollect.errors import SnapcollectError
from snapcollect.report.output_files import (DEFAULT_MODE, ReportOutputError, exists_error, make_dir,
                                             open_dir, write_new)

EXTENSIONS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".pdf": "pdf",
              ".json": "json"}
VALID = ".md, .html, .pdf, .json"


class ReportUsageError(SnapcollectError):
    """The command line asks for something the renderer cannot do."""

    exit_code = 2


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


def _check_writable(path: str, force: bool = False) -> None:
    """Fail before the (slow) rendering when the output cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ReportOutputError(f"{path}: is a directory; give a file name ending in {VALID}")
    if not os.path.isdir(parent):
        raise ReportOutputError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportOutputError(f"{path}: cannot write in {parent}: permission denied")
    if not force and os.path.lexists(path):
        raise exists_error(path)


def _write_file(path: str, data: bytes, mode: int, force: bool) -> None:
    fd = open_dir(os.path.dirname(os.path.abspath(path)))
    try:
        write_new(fd, os.path.basename(path), data, mode=mode, force=force, shown=path)
    finally:
        os.close(fd)


def chart_dir_for(output: str) -> str:
    """``<stem>-charts``, the folder beside a .md file that holds its SVGs."""
    stem = os.path.splitext(os.path.basename(output))[0]
    return f"{stem}-charts"


def write_markdown(report, output: str | None, mode: int = DEFAULT_MODE, force: bool = False) -> None:
    """Markdown to a file with its charts beside it, or to stdout without them."""
    from snapcollect.report.markdown import render_markdown

    if output is None:
        text, _ = render_markdown(report, None)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    rel = chart_dir_for(output)
    text, assets = render_markdown(report, quote(rel), charts_missing=charts_unavailable())
    parent = os.path.dirname(os.path.abspath(output))
    top = open_dir(parent)
    try:
        if assets:
            folder = os.path.join(os.path.dirname(output), rel)
            charts = make_dir(top, rel, mode=mode, force=force, shown=folder)
            try:
                for asset in assets:
                    name = os.path.basename(asset.path)
                    write_new(charts, name, picture_svg(asset.block).encode("utf-8"), mode=mode, force=force,
                              shown=os.path.join(folder, name))
            finally:
                os.close(charts)
        write_new(top, os.path.basename(output), text.encode("utf-8"), mode=mode, force=force, shown=output)
    finally:
        os.close(top)


def charts_unavailable() -> str | None:
    """Why charts cannot be drawn on this Python, or None when they can.

    Markdown and JSON are in the core install; matplotlib is in the
    ``report`` extra, so a host with the core only gets a report without
    charts rather than no report.
    """
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed (pip install 'snapcollect[report]')"
    return None


def picture_svg(block) -> str:
    """A chart or flame graph as a standalone SVG file."""
    from snapcollect.report.model import FlameGraph

    if isinstance(block, FlameGraph):
        from snapcollect.report.flamegraph import render_flamegraph, standalone

        return standalone(render_flamegraph(block.folded, title=block.title, count_name=block.count_name,
                                            id_prefix=f"flame-{block.id}"))
    from snapcollect.report.charts import chart_svg, standalone

    return standalone(chart_svg(block))


def render_to(report, fmt: str, output: str | None, *, mode: int = DEFAULT_MODE, force: bool = False) -> None:
    """Render an already built Report in one format to a file or stdout.

    A file gets ``mode`` (default 0600, the bundle's); an existing one is
    replaced only with ``force``.
    """
    if output == "-":
        output = None
    if output is not None:
        _check_writable(output, force)
    if fmt == "md":
        write_markdown(report, output, mode, force)
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
        _write_file(output, data, mode, force)


def render_command(args) -> int:
    """Entry point of ``snapcollect report`` (args.bundle, args.output, args.format, args.mode, args.force)."""
    from snapcollect.bundle import open_bundle

    output = getattr(args, "output", None)
    fmt = choose_format(output, getattr(args, "format", None))
    mode = getattr(args, "mode", None)
    mode = DEFAULT_MODE if mode is None else mode
    force = bool(getattr(args, "force", False))
    if output not in (None, "-"):
        _check_writable(output, force)
    if fmt == "pdf":
        # Before the (slow) build: say at once when the PDF libraries are missing.
        from snapcollect.report.pdf import load_weasyprint

        load_weasyprint()
    bundle = open_bundle(args.bundle, getattr(args, "limits", None))
    from snapcollect.report.build import build_report

    report = build_report(bundle)
    if output is None and getattr(args, "format", None) is None and _is_tty(sys.stdout):
        # A person at a terminal: the answer on one screen, not 80 KB of Markdown.
        from snapcollect.invocation import command
        from snapcollect.report.summary import summary_text

        sys.stdout.write(summary_text(report, args.bundle, command()))
        sys.stdout.flush()
        return 0
    render_to(report, fmt, output, mode=mode, force=force)
    if output not in (None, "-"):
        where = output
        if fmt == "md" and any(True for _ in _pictures(report)):
            where += f" (charts in {os.path.join(os.path.dirname(output), chart_dir_for(output))}/)"
        print(f"snapcollect: wrote {where}", file=sys.stderr)
    return 0


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _pictures(report):
    from snapcollect.report.model import Chart, FlameGraph

    def walk(sections):
        for s in sections:
            for b in s.blocks:
                if isinstance(b, (Chart, FlameGraph)):
                    yield b
            yield from walk(s.subsections)

    return walk(report.sections)
