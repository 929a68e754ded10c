"""Command line: collect, show, report, doctor, rules."""

from __future__ import annotations

import argparse
import json
import sys

from snapcollect import __version__
from snapcollect.collect.signals import StopFlag
from snapcollect.errors import SnapcollectError

SUBCOMMANDS = ("collect", "show", "report", "doctor", "rules")

EPILOG = """\
examples:
  snapcollect --duration 60            collect for 60 s into ./snapcollect-<host>-<time>.tar.zst
  snapcollect collect -d 30 -o /var/tmp --top 5
  snapcollect show BUNDLE              what is inside, what is missing and why
  snapcollect report BUNDLE -o r.pdf   render offline (.md, .html, .pdf or .json)
  snapcollect report BUNDLE -o r.html --mode 644 --force   readable by all, replacing r.html
  snapcollect doctor                   which collectors work on this host, and how to fix the rest
  snapcollect rules                    the catalogue of findings
"""


def _positive(kind):
    def conv(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
        return value
    return conv


def add_bpf_start_option(p: argparse.ArgumentParser) -> None:
    from snapcollect.collect.bpf_start import DEFAULT_TIMEOUT_S

    p.add_argument("--bpf-start-timeout", type=_positive(float), default=None, metavar="S",
                   help="wait at most S seconds for the BPF compile and attach before the "
                        f"window opens (default {DEFAULT_TIMEOUT_S:g}); the window opens when "
                        "BPF is ready and the run ends that much later")


def _file_mode(text: str) -> int:
    from snapcollect.report.output_files import parse_mode

    try:
        return parse_mode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cap_value(cap):
    from snapcollect.bundle.limits import parse_count, parse_size

    def conv(text: str) -> int:
        try:
            return parse_size(text) if cap.is_size else parse_count(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return conv


def add_limit_options(p: argparse.ArgumentParser) -> None:
    """The reader's caps (bundle.limits), each also set by an environment variable."""
    from snapcollect.bundle.limits import CAPS, human

    g = p.add_argument_group("limits on what is read from the bundle")
    for cap in CAPS:
        g.add_argument(cap.option, dest=cap.attr, type=_cap_value(cap), default=None,
                       metavar="SIZE" if cap.is_size else "N",
                       help=f"cap on the {cap.what} (default {human(cap, cap.default)}; "
                            f"env {cap.env})".replace("%", "%%"))


def limits_from_args(args):
    """The caps for opening a bundle: options, else environment, else defaults."""
    from snapcollect.bundle.limits import CAPS, Limits
    from snapcollect.errors import BundleError

    try:
        return Limits.from_env(**{c.attr: getattr(args, c.attr, None) for c in CAPS})
    except ValueError as exc:
        raise BundleError(str(exc)) from None


def add_collect_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--duration", type=_positive(float), default=60.0, metavar="S",
                   help="length of the sampling window in seconds (default 60)")
    p.add_argument("-i", "--interval", type=_positive(float), default=1.0, metavar="S",
                   help="seconds between samples (default 1)")
    p.add_argument("-o", "--output", default=".", metavar="PATH",
                   help="directory, or file name ending in .tar.zst (default: current directory)")
    p.add_argument("--top", type=_positive(int), default=10, metavar="N",
                   help="processes that get the expensive detail (smaps, pmap) (default 10)")
    p.add_argument("--no-bpf", action="store_true", help="do not load BPF programs")
    p.add_argument("--fault-sample", type=_positive(int), default=None, metavar="N",
                   help="record the user stack of 1 page fault in N per CPU (default "
                        "128, under 2%% overhead; 1: every fault, costs much more)")
    p.add_argument("--kernel-stacks", action="store_true",
                   help="also record kernel stacks of page faults (uses the "
                        "page_fault_user tracepoint: costs more)")
    p.add_argument("--heap-trace", action="store_true",
                   help="also trace brk/mmap with user stacks (heap growth by call site); "
                        "syscall tracepoints slow every syscall on the host (+19%% on a "
                        "syscall-bound program), so this is off by default")
    add_bpf_start_option(p)
    p.add_argument("--print-bpf", action="store_true", help="print the BPF programs and exit")
    p.add_argument("--keep-secrets", action="store_true",
                   help="keep password-like arguments in command lines (default: masked as ***)")
    p.add_argument("--redact", action="store_true",
                   help="also replace host names, user names, IP addresses and home paths by "
                        "tokens (the same value, the same token) in the bundle")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr, no library or bcc warnings; only a one-line "
                        "message on a stop or an error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapcollect",
        description="Collect a bounded memory-incident bundle on a Linux host; render it offline.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"snapcollect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("collect", help="collect a bundle (the default command)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_collect_options(p)

    p = sub.add_parser("show", help="list what a bundle holds")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_limit_options(p)

    p = sub.add_parser("report", help="render a bundle to Markdown, HTML, PDF or JSON")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file; its extension picks the format (default: Markdown on stdout)")
    p.add_argument("-f", "--format", choices=("md", "html", "pdf", "json"),
                   help="output format (overrides the extension)")
    p.add_argument("--mode", type=_file_mode, default=None, metavar="OCTAL",
                   help="permissions of the report and its charts (default 600, like the bundle: "
                        "it holds the same command lines and names)")
    p.add_argument("--force", action="store_true", help="replace an existing report (and its charts)")
    add_limit_options(p)

    p = sub.add_parser("doctor", help="check which collectors work on this host")
    p.add_argument("--json", action="store_true")
    add_bpf_start_option(p)
    p.add_argument("--heap-trace", action="store_true", help="check the brk/mmap tracing too")

    p = sub.add_parser("rules", help="print the catalogue of findings rules")
    p.add_argument("--markdown", action="store_true", help="print docs/findings.md")
    return parser


def _normalise_argv(argv: list[str]) -> list[str]:
    # `snapcollect --duration 60` means `snapcollect collect --duration 60`.
    if not argv:
        return ["collect"]
    if argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help", "--version"):
        return argv
    return ["collect", *argv]


def cmd_show(args) -> int:
    from snapcollect.bundle import open_bundle
    from snapcollect.bundle.show import format_show

    from snapcollect.report.printable import printable

    bundle = open_bundle(args.bundle, limits_from_args(args))
    if args.json:
        print(json.dumps(bundle.manifest, indent=2))
    else:
        # Names in the manifest may hold bytes that are not UTF-8: shown as \xNN.
        print(printable(format_show(bundle)))
    return 0


def main(argv: list[str] | None = None, stop: StopFlag | None = None) -> int:
    # First: SIGINT/SIGTERM/SIGHUP are recorded, not raised, so that one
    # during start-up ends in one line, never a traceback (collect/signals.py).
    # ``stop``: already installed by ``python -m snapcollect``.
    try:
        stop = (stop or StopFlag()).install()
    except KeyboardInterrupt:
        print("snapcollect: stopped by SIGINT while starting; nothing done", file=sys.stderr)
        return 130
    try:
        return _main(argv, stop)
    finally:
        stop.restore()


def _main(argv: list[str] | None, stop: StopFlag) -> int:
    argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if args.command != "collect":
        # Rendering and the rest keep Ctrl-C as KeyboardInterrupt (below).
        stop.restore()
    if stop.stopped:
        print(f"snapcollect: stopped by {stop.name} while starting; nothing done", file=sys.stderr)
        return stop.exit_code
    try:
        if args.command in ("show", "report"):
            from snapcollect.dependencies import reading_problem

            problem = reading_problem()
            if problem:
                print(f"snapcollect: {problem}", file=sys.stderr)
                return 1
        if args.command == "collect":
            from snapcollect.collect.options import CollectOptions
            from snapcollect.collect.runner import run_collection
            return run_collection(CollectOptions.from_namespace(args), stop)
        if args.command == "show":
            return cmd_show(args)
        if args.command == "report":
            from snapcollect.report.render import render_command
            args.limits = limits_from_args(args)
            return render_command(args)
        if args.command == "doctor":
            from snapcollect.collect.doctor import run_doctor
            from snapcollect.collect.options import CollectOptions
            return run_doctor(CollectOptions.from_namespace(args))
        if args.command == "rules":
            from snapcollect.analysis.findings.catalogue import run_rules
            return run_rules(args)
    except SnapcollectError as exc:
        print(f"snapcollect: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        from snapcollect.dependencies import missing_module_line

        line = missing_module_line(exc.name)
        if line is None:
            raise
        print(f"snapcollect: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("snapcollect: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if args.command not in ("show", "report"):
            raise
        # The caps keep a bundle well under this; a machine smaller still
        # needs them lowered.
        print("snapcollect: out of memory while reading the bundle; lower the caps "
              "(--max-total-size, --max-json-values)", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 141
    return 2
