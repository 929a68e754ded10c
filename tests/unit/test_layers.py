"""Imports go one way: report -> analysis -> parsers -> records; collect -> bundle; no cycles.

bundle/names.py, the artifact names, is the bundle's vocabulary and a
layer of its own below all the others but base: parsers cite the
artifact they parse, analysis and report the artifacts a finding or a
table comes from, without depending on how a bundle is read or written.

Every module of the package is parsed (``ast``), and every import it
makes is read, at the top or inside a function (a lazy import is a
dependency too). A module may import its own layer and the layers below
it, as ``ALLOWED`` says; and the graph of imports between modules has no
cycle. docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
import os

import snapcollect

ROOT = os.path.dirname(snapcollect.__file__)

# layer -> layers it may import (its own included)
ALLOWED = {
    "records": {"records", "base"},
    "parsers": {"parsers", "records", "names", "base"},
    "analysis": {"analysis", "parsers", "records", "names", "base"},
    "report": {"report", "analysis", "records", "bundle", "names", "base"},
    "bundle": {"bundle", "names", "base"},
    "collect": {"collect", "bundle", "names", "base"},
    "cli": {"cli", "collect", "bundle", "report", "analysis", "names", "base"},
    "names": {"names", "base"},
    "base": {"base"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "snapcollect.bundle.names":
        return "names"
    if module in ("snapcollect.parsers.records", "snapcollect.parsers.base") or module == "snapcollect.parsers":
        return "records"
    top = parts[1] if len(parts) > 1 else ""
    if top in ("parsers", "analysis", "report", "bundle", "collect"):
        return top
    if top in ("cli", "__main__"):
        return "cli"
    return "base"             # errors, version: shared by every layer


def modules() -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
            out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


MODULES = modules()


def imports_of(module: str, path: str) -> set[str]:
    """Every snapcollect module ``module`` imports, wherever the import statement is."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import mod" depends on pkg.mod when that is a module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out.update(n for n in names if n.split(".")[0] == "snapcollect")
    out.discard(module)
    return {n for n in out if n in MODULES}


GRAPH = {m: imports_of(m, p) for m, p in MODULES.items()}


def test_the_scan_sees_lazy_imports():
    src = "def f():\n    from snapcollect.analysis import model\n"
    tree = ast.parse(src)
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))
    assert "snapcollect.analysis.model" in GRAPH["snapcollect.analysis.incident"]
    assert "snapcollect.analysis.model" in GRAPH["snapcollect.report.build"]


def test_every_import_follows_the_layer_order():
    bad = sorted(f"{m} ({layer(m)}) imports {d} ({layer(d)})"
                 for m, deps in GRAPH.items() for d in deps if layer(d) not in ALLOWED[layer(m)])
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_importing_the_names_loads_nothing_else_of_the_bundle():
    # "from snapcollect.bundle import names" runs bundle/__init__.py first:
    # that must not pull the reader or the writer into a parser's imports.
    assert GRAPH["snapcollect.bundle"] <= {"snapcollect.bundle.names"}
    assert GRAPH["snapcollect.bundle.names"] == set()


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
