"""Artifact names are spelt in one place: snapcollect/bundle/names.py.

Every string constant of the package (f-string pieces included) is read
with ``ast``; one that looks like an artifact name (``proc/meminfo``,
``series/procs``, ``bpf/``, ``procs/1234/smaps``, anywhere in the string,
not after a ``/`` so that the kernel path ``/proc/meminfo`` is not one)
outside bundle/names.py fails. Docstrings are prose and may cite names.
"""

from __future__ import annotations

import ast
import os
import re

import snapcollect
from snapcollect.bundle import names

ROOT = os.path.dirname(snapcollect.__file__)
NAMES_PY = os.path.join(ROOT, "bundle", "names.py")

# The first path element of every artifact name the format knows.
HEADS = ("proc", "sys", "cmd", "bpf", "procs", "cgroups", "fs", "host")
_HEADS = "|".join(HEADS)
# A name is a head, "/" and a name character (or a substitution), not after
# a path character: "/proc/meminfo" is the kernel's file, not an artifact.
# A series is "series/" and a source, so an export directory "series/" or
# its "series/sar-B.csv" is not one.
ARTIFACT_SHAPE = re.compile(r"(?<![\w/.~-])(?:(?:%s)/(?=[\w*{])|series/(?:%s)\b)" % (_HEADS, _HEADS))
# A bare prefix as code compares with it: name.startswith("series/").
PREFIX = re.compile(r"(?:series|%s)/" % _HEADS)


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def literals_in(source: str, path: str = "<string>") -> list[tuple[int, str]]:
    """(line, text) of each string constant in ``source`` shaped like an artifact name.

    An f-string is read whole, each substitution as ``{}``, so that
    ``f"procs/{pid}/smaps"`` is seen as ``procs/{}/smaps``."""
    tree = ast.parse(source, path)
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
        else:
            continue
        if ARTIFACT_SHAPE.search(text) or PREFIX.fullmatch(text):
            out.append((node.lineno, text))
    return sorted(out)


def test_no_artifact_name_is_spelt_outside_bundle_names():
    bad = []
    for dirpath, _, files in os.walk(ROOT):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            if not f.endswith(".py") or path == NAMES_PY:
                continue
            for line, text in literals_in(open(path, encoding="utf-8").read(), path):
                bad.append(f"{os.path.relpath(path, ROOT)}:{line}: {text!r}")
    assert not bad, "use the constants of snapcollect/bundle/names.py:\n" + "\n".join(bad)


def test_the_scan_finds_names_in_strings_and_f_strings_but_not_docstrings_or_paths():
    src = ('"""Reads proc/meminfo@start."""\n'
           'def f(pid):\n'
           '    """Writes procs/top."""\n'
           '    a = "proc/meminfo@end"\n'
           '    b = f"procs/{pid}/smaps"\n'
           '    c = "see bpf/fault_stacks.folded | flamegraph.pl"\n'
           '    d = "/proc/meminfo"\n'
           '    e = "series/"\n'
           '    g = "cgroup v2: memory.max"\n'
           '    h = "snapcollect export B -o series/ && cat series/sar-B.csv"\n'
           '    i = f"`{d}` series/procs"\n'
           '    return a, b, c, d, e, g, h, i\n')
    assert [line for line, _ in literals_in(src)] == [4, 5, 6, 8, 11]


def test_names_py_itself_matches_the_shape():
    # The scan would catch a drifted copy of any of these.
    for name in (names.PROC_MEMINFO, names.end_of(names.CMD_FREE), names.SERIES_PROC_VMSTAT,
                 names.BPF_OOM_KILL, names.pid_file(1, names.PID_SMAPS), names.node_file(0, names.NODE_NUMASTAT),
                 names.CGROUPS_MEMORY, names.FS_MEMFS, names.HOST_INFO):
        assert ARTIFACT_SHAPE.search(name), name


def test_helpers_build_the_names_the_format_documents():
    assert names.start_of(names.PROC_MEMINFO) == "proc/meminfo@start"
    assert names.end_of(names.PROC_SYS_VM) == "proc/sys/vm@end"
    assert names.series(names.PROCS) == "series/procs"
    assert names.series_source(names.SERIES_PROC_VMSTAT) == names.PROC_VMSTAT
    assert names.series_source(names.PROC_VMSTAT) == names.PROC_VMSTAT
    assert names.pid_file(1234, names.PID_PMAP_X) == "procs/1234/pmap-x"
    assert names.node_file(1, names.NODE_MEMINFO) == "sys/node/node1/meminfo"
