"""Which package brings a Python module that is missing, in one line.

The collector, ``show``, ``doctor`` and Markdown/JSON reports need only
the standard library and zstandard, which the distributions package as
python3-zstandard. Charts, HTML and PDF need the ``report`` extra
(matplotlib, jinja2, markdown-it-py, weasyprint). A missing module is
reported by the command line as one line naming what to install, not as
a traceback.

Reading a bundle (``show``, ``report``) needs zstandard 0.18 or newer:
the reader walks the archive's zstd frames with ``decompressobj().eof``
and ``unused_data``, which older versions lack. Writing one needs only
0.15, so a host with an older python3-zstandard can still collect.
"""

from __future__ import annotations

ZSTANDARD_LINE = ("the Python module zstandard is missing; install it: Debian/Ubuntu: apt-get install "
                  "python3-zstandard; RHEL (EPEL)/Fedora: dnf install python3-zstandard; "
                  "elsewhere: pip3 install zstandard")

REPORT_EXTRA_LINE = ("{module} is missing: charts, HTML and PDF reports need the report extra: "
                     "pip install 'snapcollect[report]' (Markdown and JSON reports do not)")

READ_MIN_ZSTANDARD = (0, 18)

OLD_ZSTANDARD_LINE = ("zstandard {version} can collect but not read bundles, which needs {need} or newer: "
                      "read it on another machine, or pip3 install 'zstandard>={need}'")

# Top-level modules of the report extra and of what it pulls in.
REPORT_EXTRA_MODULES = frozenset({"matplotlib", "numpy", "jinja2", "markupsafe", "markdown_it",
                                  "weasyprint", "pydyf", "tinycss2", "cssselect2"})


def missing_module_line(name: str | None) -> str | None:
    """The line to print for a missing module ``name``, or None if not ours to explain."""
    top = (name or "").split(".")[0]
    if top == "zstandard":
        return ZSTANDARD_LINE
    if top in REPORT_EXTRA_MODULES:
        return REPORT_EXTRA_LINE.format(module=top)
    return None


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for p in str(text).split("."):
        digits = "".join(c for c in p if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def reading_problem(version: str | None = None) -> str | None:
    """The line to print when this zstandard cannot read bundles, else None.

    ``version`` defaults to the installed zstandard's (ModuleNotFoundError
    when there is none: the caller's one-line handler names the package).
    """
    if version is None:
        import zstandard

        version = zstandard.__version__
    got = _version_tuple(version)
    if got and got < READ_MIN_ZSTANDARD:
        return OLD_ZSTANDARD_LINE.format(version=version, need=".".join(map(str, READ_MIN_ZSTANDARD)))
    return None
