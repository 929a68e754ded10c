"""Command line: collect, show, report, doctor, rules."""

from __future__ import annotations

import argparse
import json
import os
import sys

from snapcollect import __version__
from snapcollect.bundle.names import BPF_FAULT_STACKS_FOLDED, KMSG
from snapcollect.collect.signals import StopFlag
from snapcollect.errors import SnapcollectError

SUBCOMMANDS = ("collect", "show", "report", "export", "doctor", "rules")

EPILOG = """\
examples:
  snapcollect --duration 60            collect for 60 s into ./snapcollect-<host>-<time>.tar.zst
  snapcollect collect -d 30 -o /var/tmp --top 5
  snapcollect -d 60 --pid 1234         also every allocation of process 1234 (costly)
  snapcollect show BUNDLE              what is inside, what is missing and why
  snapcollect report BUNDLE -o r.pdf   render offline (.md, .html, .pdf or .json)
  snapcollect report BUNDLE -o r.html --mode 644 --force   readable by all, replacing r.html
  snapcollect doctor                   which collectors work on this host, and how to fix the rest
  snapcollect rules                    the catalogue of findings
"""


def _percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1..100, not {value}")
    return value


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
    p.add_argument("--no-delayacct", action="store_true",
                   help="do not switch on kernel.task_delayacct for the window (per-process swap-in, "
                        "reclaim, thrashing and compaction waits are then only read if it is already on)")
    p.add_argument("--fault-sample", type=_positive(int), default=None, metavar="N",
                   help="record the user stack of 1 page fault in N per CPU (default "
                        "128; 1: every fault, costs much more)")
    p.add_argument("--fault-duty", type=_percent, default=None, metavar="PCT",
                   help="keep the page-fault sampler open PCT%% of the time, in 0.5 s "
                        "cycles (default 20: an open sampler slows every page fault by "
                        "about 5%%; 100: open all the time, for short bursts)")
    p.add_argument("--kernel-stacks", action="store_true",
                   help="also record kernel stacks of page faults (uses the "
                        "page_fault_user tracepoint: costs more)")
    p.add_argument("--heap-trace", action="store_true",
                   help="also trace brk/mmap with user stacks (heap growth by call site); "
                        "syscall tracepoints slow every syscall on the host (+19%% on a "
                        "syscall-bound program), so this is off by default")
    p.add_argument("--swap-residency", action="store_true",
                   help="also measure how long pages stay in swap before a fault reads them back, with "
                        "kprobes on the swap slot allocation and the swap cache lookup, where the kernel "
                        "offers kprobes; off by default: it patches kernel text on the swap paths")
    p.add_argument("--thp-fallback", action="store_true",
                   help="also count, per process, anonymous THP faults that fell back to 4 KiB pages "
                        "(no huge page, or the memory cgroup refused the charge), with a kretprobe on "
                        "do_huge_pmd_anonymous_page where the kernel offers kprobes; off by default: it "
                        "patches kernel text on the fault path")
    p.add_argument("--pid", dest="pids", type=_positive(int), action="append", default=None, metavar="PID",
                   help="deep dive into PID's allocations (repeatable): malloc-family call counts, "
                        "sizes, stacks, outstanding blocks, every page fault; uprobes on malloc "
                        "cost each call several microseconds (~190x), measured and reported")
    p.add_argument("--comm", dest="comms", action="append", default=None, metavar="NAME",
                   help="the same deep dive for every process named NAME at the start (repeatable)")
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

    p = sub.add_parser("show", help="list what a bundle holds, or get one artifact out of it",
                       epilog="examples:\n  snapcollect show B.tar.zst\n"
                              f"  snapcollect show B.tar.zst --extract {BPF_FAULT_STACKS_FOLDED}"
                              " | flamegraph.pl > f.svg\n"
                              f"  snapcollect show B.tar.zst --extract {KMSG} -o kmsg.jsonl",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--extract", metavar="NAME",
                   help="write one artifact (a name from the listing) to stdout or -o: files as stored, "
                        "streams as JSON lines, series as their samples")
    p.add_argument("-o", "--output", metavar="FILE", help="with --extract: write to FILE (mode 0600)")
    p.add_argument("--force", action="store_true", help="with -o: replace an existing FILE")
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

    p = sub.add_parser("export", help="write the time series of a bundle as CSV files",
                       epilog="examples:\n  snapcollect export B.tar.zst -o series/\n"
                              "  python3 -c 'import pandas as pd; print(pd.read_csv(\"series/sar-B.csv\", "
                              "parse_dates=[\"timestamp\"]))'",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder for the CSV files (created if it does not exist; its parent must)")
    p.add_argument("--mode", type=_file_mode, default=None, metavar="OCTAL",
                   help="file mode of the CSV files (default 0600, the bundle's)")
    p.add_argument("--force", action="store_true", help="replace CSV files that exist")
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
    if args.extract is not None:
        return _extract(bundle, args)
    if args.output:
        print("snapcollect: show -o needs --extract NAME", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(bundle.manifest, indent=2))
    else:
        # Names in the manifest may hold bytes that are not UTF-8: shown as \xNN.
        print(printable(format_show(bundle)))
    return 0


def _collect_summary(args, path: str | None, code: int) -> None:
    """After a collection, on a terminal: the verdict of the bundle on one screen.

    Only when a person is watching (stderr is a terminal, not --quiet), the
    run ended normally and the zstandard reader and its version allow it;
    the summary goes to stderr, so the bundle's path stays the last line
    on stdout. Reading the bundle costs a second or two of CPU after the
    window; a failure here says one line and never changes the exit code.
    """
    if code != 0 or not path or args.quiet or not sys.stderr.isatty():
        return
    try:
        from snapcollect.dependencies import reading_problem

        if reading_problem():
            return
        from snapcollect.bundle import open_bundle
        from snapcollect.invocation import command
        from snapcollect.report.build import build_report
        from snapcollect.report.summary import summary_text

        text = summary_text(build_report(open_bundle(path)), path, command())
    except KeyboardInterrupt:
        print("snapcollect: summary skipped (interrupted)", file=sys.stderr)
        return
    except Exception as exc:   # the bundle is written: a summary problem must not look like a failure
        print(f"snapcollect: no summary ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
        return
    sys.stderr.write(text)
    sys.stderr.flush()


def _extract(bundle, args) -> int:
    from snapcollect.bundle.show import ExtractError, extract

    try:
        data = extract(bundle, args.extract)
    except ExtractError as exc:
        print(f"snapcollect: {exc}", file=sys.stderr)
        return 2
    if args.output in (None, "-"):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    from snapcollect.report.output_files import open_dir, write_new

    fd = open_dir(os.path.dirname(os.path.abspath(args.output)))
    try:
        write_new(fd, os.path.basename(args.output), data, force=bool(args.force), shown=args.output)
    finally:
        os.close(fd)
    print(f"snapcollect: wrote {args.output} ({len(data):,} bytes)", file=sys.stderr)
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
        if args.command in ("show", "report", "export"):
            from snapcollect.dependencies import reading_problem

            problem = reading_problem()
            if problem:
                print(f"snapcollect: {problem}", file=sys.stderr)
                return 1
        if args.command == "collect":
            from snapcollect.collect.options import CollectOptions
            from snapcollect.collect.runner import run_collection
            opts = CollectOptions.from_namespace(args)
            written: list[str] = []
            code = run_collection(opts, stop, written)
            _collect_summary(opts, written[-1] if written else None, code)
            return code
        if args.command == "show":
            return cmd_show(args)
        if args.command == "report":
            from snapcollect.report.render import render_command
            args.limits = limits_from_args(args)
            return render_command(args)
        if args.command == "export":
            from snapcollect.report.export import export_command
            args.limits = limits_from_args(args)
            return export_command(args)
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
