"""Which file gives a process its malloc: read from /proc/PID/maps.

A process calls the malloc of the first object in the dynamic linker's
search order that defines it: the executable (a static binary, or one
with its own allocator), then preloaded and linked libraries. Probing
glibc's malloc in a process that uses jemalloc sees nothing, so the deep
dive probes the file that really provides it::

    55d0c8a00000-55d0c8a01000 r--p 00000000 fe:01 1048 /usr/bin/app
    7f5e1c000000-7f5e1c028000 r--p 00000000 fe:01 2050 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
    7f5e1c200000-7f5e1c228000 r--p 00000000 fe:01 2101 /usr/lib/x86_64-linux-gnu/libc.so.6

``choose`` is pure: it gets the maps text, the executable's path and a
function that says whether a file defines a symbol (the deep-dive
process answers it from the file's symbol table through libbcc).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

# Allocators that replace glibc's malloc when linked or preloaded; the
# family's symbols have the same names (jemalloc and tcmalloc export
# malloc/free themselves, their je_/tc_ names are aliases).
REPLACEMENTS = (("jemalloc", re.compile(r"/libjemalloc[^/]*\.so")),
                ("tcmalloc", re.compile(r"/libtcmalloc[^/]*\.so")),
                ("mimalloc", re.compile(r"/libmimalloc[^/]*\.so")))
GLIBC = re.compile(r"/libc(-[0-9.]+)?\.so(\.6)?$")
# The malloc family probed, in calls[] slot order (deepdive.bpf.c FN_*).
FUNCTIONS = ("malloc", "calloc", "realloc", "free", "mmap", "munmap", "brk")
MAX_MAPS_LINES = 200_000      # a process with more mappings is read up to here


@dataclass(frozen=True)
class Choice:
    allocator: str | None          # "glibc", "jemalloc", ..., "own" (the executable's), None
    path: str | None               # the file whose symbols are probed
    why: str                       # one line: how it was chosen, or why nothing can be probed
    libraries: tuple[str, ...] = field(default_factory=tuple)   # every mapped file, in map order


def mapped_files(maps_text: str) -> list[str]:
    """The files mapped by a process, first mapping first, each once.

    Pseudo-mappings ([heap], [vdso]), anonymous ones and deleted files are
    left out: there is no file to read symbols from.
    """
    seen: dict[str, None] = {}
    for i, line in enumerate(maps_text.splitlines()):
        if i >= MAX_MAPS_LINES:
            break
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        if path.startswith("/") and not path.endswith(" (deleted)"):
            seen.setdefault(path, None)
    return list(seen)


def choose(maps_text: str, exe: str | None, defines: Callable[[str, str], bool]) -> Choice:
    """The file providing malloc to the process whose maps are ``maps_text``.

    ``defines(path, "malloc")`` is True when ``path`` defines (not merely
    imports) the symbol.
    """
    files = tuple(mapped_files(maps_text))
    if not files:
        return Choice(None, None, "the process maps no file (it has exited, or is a kernel thread)", files)
    if exe and exe in files and defines(exe, "malloc"):
        static = not any(GLIBC.search(f) for f in files)
        how = "statically linked: " if static else ""
        return Choice("own", exe, f"{how}the executable {os.path.basename(exe)} defines malloc itself", files)
    for name, pattern in REPLACEMENTS:
        for f in files:
            if pattern.search(f) and defines(f, "malloc"):
                return Choice(name, f, f"{name} is mapped ({os.path.basename(f)}) and defines malloc, "
                                       "ahead of glibc", files)
    for f in files:
        if GLIBC.search(f):
            if defines(f, "malloc"):
                return Choice("glibc", f, f"glibc's malloc ({os.path.basename(f)})", files)
            return Choice(None, None, f"{os.path.basename(f)} is mapped but its malloc symbol was not found",
                          files)
    if exe and exe in files:
        return Choice(None, None, f"the executable {os.path.basename(exe)} is linked without glibc and "
                                  "defines no malloc symbol (stripped, or another allocator): nothing "
                                  "to probe", files)
    return Choice(None, None, "no mapped file defines malloc", files)
