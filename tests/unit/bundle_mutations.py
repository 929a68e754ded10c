"""Mutations of real bundles for the fuzz tests, and the pipeline each mutant goes through.

A mutant starts as the members of a real bundle (samples/, tests/fixtures/
bundles/) and gets one to three of: bytes flipped in the zstd stream or in
the tar stream, a JSON value of the manifest, a tick or a stream record
replaced by a hostile one (NaN, 5,000-digit integers, 100,000 levels of
nesting, wrong types) or removed, bytes of a file or of a sample's text
changed, a member renamed, dropped or duplicated, a tar header's size
made a lie, the archive cut short. Some mutants are "resealed": the
manifest's sizes and checksums are recomputed so the hostile content
passes the integrity check and reaches the parsers, the analysis and
the renderers.

``exercise`` runs a mutant through what a user can do with a bundle:
``open_bundle``, ``show``, building the report and rendering it to
Markdown and JSON (HTML when asked). The project's own errors are a
correct outcome; anything else propagates.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass

import hostile_bundles as hb

from snapcollect.bundle import names

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = [os.path.join(ROOT, "tests", "fixtures", "bundles", "memcg-swap-6.18.tar.zst"),
         os.path.join(ROOT, "samples", "sample-idle.tar.zst"),
         os.path.join(ROOT, "samples", "sample-memcg-oom.tar.zst"),
         # with the shared-memory inventory (fs/memfs, procs/memory, procs/open-deleted, proc/sysvipc/shm)
         os.path.join(ROOT, "tests", "fixtures", "bundles", "shmem-leak-6.18.tar.zst")]

PLACEHOLDER = "\x00hostile\x00"
HOSTILE_JSON = [
    "NaN", "-Infinity", "1" + "0" * 5000, "-" + "9" * 4301, "1e999", "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000, "null", "true", "false", "-1", "0", "1.5", "18446744073709551616",
    '""', '"x"', '"\\udcff\\u0000<script>"', '"' + "A" * 20_000 + '"', "[]", "{}", '[1, "a", null]',
    '{"k": 1}', '"ticks/000001.json"', "4294967296", "-0.0", "1e-320",
]
ODD_NAMES = ["ticks/abc.json", "ticks/-1.json", "ticks/.json", "ticks/1e3.json", "ticks/٣.json",
             "streams/kmsg/x.jsonl", "streams//000000.jsonl", "streams/000000.jsonl", "data/", "data",
             "manifest.json", "MANIFEST.json", "../../etc/passwd", "data/../../x", "ticks/000001.json",
             "streams/bpf/oom_kill/000000.jsonl", "data/proc/meminfo@start", "x" * 300, "données/\udcff"]


def seed_members(path: str) -> list[tuple[str, bytes]]:
    return hb.members_of(path)


def _series_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def reseal(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Recompute the final manifest's ``bytes``/``sha256`` from the members as they now are."""
    idx = [i for i, (n, _) in enumerate(members) if n == names.MANIFEST]
    if not idx:
        return members
    try:
        m = json.loads(members[idx[-1]][1])
        arts = m["artifacts"]
        assert isinstance(arts, list)
    except Exception:
        return members
    files = {n[5:]: d for n, d in members if n.startswith("data/")}
    ticks = {}
    streams: dict[str, list[tuple[int, bytes]]] = {}
    for n, d in members:
        kind, name, k = names.classify(n)
        if kind == "tick":
            try:
                t = json.loads(d)
                ticks[t["k"]] = t
            except Exception:
                pass
        elif kind == "stream":
            streams.setdefault(name, []).append((k, d))
    for a in arts:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            continue
        name = a["name"]
        if a.get("kind") == "series":
            src = name[len("series/"):]
            chunks = []
            for k in sorted(k for k in ticks if isinstance(k, int)):
                texts = ticks[k].get("texts") if isinstance(ticks[k], dict) else None
                if isinstance(texts, dict) and isinstance(texts.get(src), str):
                    chunks.append(_series_bytes(texts[src]))
        elif a.get("kind") == "stream":
            chunks = [d for _, d in sorted(streams.get(name, []))]
        else:
            chunks = [files[name]] if name in files else []
        data = b"".join(chunks)
        a["bytes"], a["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    out = list(members)
    out[idx[-1]] = (names.MANIFEST, json.dumps(m).encode())
    return out


def _json_paths(value, path=()):
    """Every (path) to a value inside a decoded JSON document, the root excluded."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + (k,)
            yield from _json_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield path + (i,)
            yield from _json_paths(v, path + (i,))


def mutate_json(doc: bytes, pick, hostile: str | None) -> bytes:
    """Replace (``hostile``) or remove (None) the value at the picked path of ``doc``."""
    try:
        value = json.loads(doc)
    except Exception:
        return doc
    paths = list(_json_paths(value))
    if not paths:
        return doc
    path = paths[pick(len(paths))]
    parent = value
    for p in path[:-1]:
        parent = parent[p]
    if hostile is None:
        del parent[path[-1]]
        return json.dumps(value).encode()
    parent[path[-1]] = PLACEHOLDER
    text = json.dumps(value, ensure_ascii=False)
    return text.replace(json.dumps(PLACEHOLDER, ensure_ascii=False), hostile, 1).encode("utf-8", "surrogatepass")


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    parts = []
    for n, d in members:
        info = tarfile.TarInfo(n)
        info.size = len(d)
        info.mode = 0o600
        parts.append(info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"))
        parts.append(d + b"\0" * ((-len(d)) % 512))
    return b"".join(parts) + b"\0" * 1024


def size_lie(tar: bytes, offset: int, size: int, fix_checksum: bool) -> bytes:
    """The tar header at the 512-byte block ``offset`` made to declare ``size``."""
    block = bytearray(tar[offset:offset + 512])
    if len(block) < 512:
        return tar
    block[124:136] = b"%011o\0" % (size % 8 ** 11)
    if fix_checksum:
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
    return tar[:offset] + bytes(block) + tar[offset + 512:]


def flip(data: bytes, positions: list[int], xors: list[int]) -> bytes:
    out = bytearray(data)
    for p, x in zip(positions, xors):
        if out:
            out[p % len(out)] ^= x or 1
    return bytes(out)


@dataclass
class Outcome:
    kind: str        # "refused" (one-line error), "opened" (rendered)
    detail: str = ""


def exercise(path: str, html: bool = False) -> Outcome:
    """Open, show, build and render a bundle; the project's errors are outcomes."""
    from snapcollect.bundle import open_bundle
    from snapcollect.bundle.show import format_show
    from snapcollect.errors import SnapcollectError
    from snapcollect.report.build import build_report
    from snapcollect.report.json_out import render_json
    from snapcollect.report.markdown import render_markdown

    try:
        bundle = open_bundle(path)
    except SnapcollectError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, f"error is not one line: {msg!r}"
        return Outcome("refused", msg)
    format_show(bundle)
    json.dumps(bundle.manifest)
    report = build_report(bundle)
    render_markdown(report, None)
    json.loads(render_json(report))
    if html:
        from snapcollect.report.html import render_html
        render_html(report)
    if not bundle.complete:
        assert bundle.incomplete_reason
    return Outcome("opened", "complete" if bundle.complete else "incomplete")
