"""Which package brings a Python module that is missing, in one line.

The collector, ``show``, ``doctor`` and Markdown/JSON reports need only
the standard library and zstandard, which the distributions package as
python3-zstandard. Charts, HTML and PDF need the ``report`` extra
(matplotlib, jinja2, markdown-it-py, weasyprint). A missing module is
reported by the command line as one line naming what to install, not as
a traceback.
"""

from __future__ import annotations

ZSTANDARD_LINE = ("the Python module zstandard is missing; install it: Debian/Ubuntu: apt-get install "
                  "python3-zstandard; RHEL (EPEL)/Fedora: dnf install python3-zstandard; "
                  "elsewhere: pip3 install zstandard")

REPORT_EXTRA_LINE = ("{module} is missing: charts, HTML and PDF reports need the report extra: "
                     "pip install 'snapcollect[report]' (Markdown and JSON reports do not)")

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
