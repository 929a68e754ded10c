"""Text files shipped inside the package (the BPF C source), read through
the import system so that they are found in a wheel, a source tree or the
single-file zipapp alike: ``__file__`` points into the zip there, and
``open()`` cannot read it.
"""

from __future__ import annotations

import pkgutil


def package_text(package: str, name: str) -> str:
    """The text of ``name`` in ``package`` (e.g. "snapcollect.collect.bpf", "memevents.bpf.c")."""
    data = pkgutil.get_data(package, name)
    if data is None:        # a loader that cannot give data (not the case for files or zips)
        raise FileNotFoundError(f"{name} not found in package {package}")
    return data.decode("utf-8")
