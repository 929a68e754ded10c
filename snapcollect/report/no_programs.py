"""Loading the rendering libraries without starting programs or writing temporary files.

Two libraries the report uses look for things by running programs:

- weasyprint loads pango, harfbuzz and fontconfig through cffi's
  ``ffi.dlopen(name)``; for each name that is not a path, cffi asks
  ``ctypes.util.find_library``, which on Linux runs ``/sbin/ldconfig -p``,
  then ``gcc`` (which runs ``collect2`` and ``ld``) on a temporary file in
  /tmp, then ``ld``, the last two found through $PATH. weasyprint tries
  several spellings of each library before the soname
  (``libpango-1.0.so.0``), so a PDF used to start some fifty programs;
  whichever ``gcc`` comes first in $PATH ran with the user's rights.
- matplotlib, building its font list the first time, runs ``fc-list``.

Neither needs them on Linux: the sonames weasyprint lists load with
plain ``dlopen(3)``, and matplotlib scans the font directories itself
when ``fc-list`` cannot be run. So these imports happen under
``no_programs()``: ``find_library`` finds nothing (then cffi's own
``dlopen`` of the next spelling, the soname, succeeds) and starting a
program fails as if it were not installed. The patch lasts only for the
import, inside snapcollect's own process.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import errno
import subprocess
from typing import Iterator


def _find_nothing(name: str) -> None:
    return None


class _NoProgram:
    """Stands in for subprocess.Popen: every program is "not installed"."""

    def __init__(self, args, *rest, **kwargs):
        first = args if isinstance(args, (str, bytes)) else (list(args) or ["?"])[0]
        raise FileNotFoundError(errno.ENOENT, "not started while loading the report's libraries", first)


@contextlib.contextmanager
def no_programs() -> Iterator[None]:
    """Within the block, ``find_library`` finds nothing and no program can start."""
    saved = ctypes.util.find_library, subprocess.Popen
    ctypes.util.find_library, subprocess.Popen = _find_nothing, _NoProgram
    try:
        yield
    finally:
        ctypes.util.find_library, subprocess.Popen = saved
