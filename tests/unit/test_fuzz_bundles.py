"""Property-based fuzzing of the reader, parsers, analysis and renderers with mutated real bundles.

Each example takes a real bundle, applies one to three mutations
(bundle_mutations) and runs the result through open, show, report
building and rendering (Markdown and JSON; HTML for one example in ten).
The property: the project's own one-line error, or a report; never any
other exception, never a hang (SIGALRM after 60 s fails the example).

The run is derandomized (the same inputs every time). It tries
SNAPCOLLECT_FUZZ_EXAMPLES inputs per test (default 150 for the mutation
test, a minute or so on a small machine); for a campaign:

    SNAPCOLLECT_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest -q tests/unit/test_fuzz_bundles.py

Outcome counts go to SNAPCOLLECT_FUZZ_STATS (a file, rewritten every
100 inputs) when it is set.
SNAPCOLLECT_FUZZ_SEED=N draws other inputs (seeded by N instead of
derandomized), to split a campaign over several processes.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import signal

import bundle_mutations as bm
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("SNAPCOLLECT_FUZZ_EXAMPLES", "150"))
HANG_S = 60
STATS: collections.Counter = collections.Counter()

SEED = os.environ.get("SNAPCOLLECT_FUZZ_SEED")
FUZZ = settings(max_examples=EXAMPLES, derandomize=SEED is None, deadline=None, database=None,
                phases=(Phase.explicit, Phase.generate, Phase.shrink), print_blob=True,
                suppress_health_check=list(HealthCheck))


class Hang(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _seeds():
    # Not a fixture: hypothesis prints a failing example's arguments, and
    # the seed bundles are megabytes.
    return [bm.seed_members(p) for p in bm.SEEDS]


@pytest.fixture(scope="module")
def seed_files():
    # As the collector wrote them: one zstd block per member, so a cut
    # keeps every member before it.
    return [open(p, "rb").read() for p in bm.SEEDS]


def _write_stats() -> None:
    out = os.environ.get("SNAPCOLLECT_FUZZ_STATS")
    if out:
        with open(out, "w") as fh:
            fh.write(json.dumps(dict(STATS), sort_keys=True) + "\n")


@pytest.fixture(scope="module", autouse=True)
def _stats():
    yield
    _write_stats()


def _alarm(signum, frame):
    raise Hang(f"no result after {HANG_S} s")


def _run(tmp_path_factory, data: bytes, html: bool, label: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "m.tar.zst"
    path.write_bytes(data)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        outcome = bm.exercise(str(path), html=html)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        path.unlink()
    STATS["inputs"] += 1
    STATS[f"{label}:{outcome.kind}"] += 1
    STATS[outcome.kind if outcome.kind == "refused" else f"opened-{outcome.detail}"] += 1
    if STATS["inputs"] % 100 == 0:  # a long campaign stopped early still has its counts
        _write_stats()


MUTATIONS = ("zstd_flip", "tar_flip", "json", "text", "name", "size", "truncate", "drop", "dup")


@st.composite
def mutant(draw, seeds):
    members = list(seeds[draw(st.sampled_from([0, 0, 1, 1, 2]))])
    kinds = draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3))
    reseal = draw(st.booleans())
    stream_ops = []
    for kind in kinds:
        n = len(members)
        if kind == "json":
            docs = [i for i, (name, _) in enumerate(members)
                    if name == "manifest.json" or name.startswith(("ticks/", "streams/"))]
            i = draw(st.sampled_from(docs))
            name, doc = members[i]
            hostile = draw(st.one_of(st.none(), st.sampled_from(bm.HOSTILE_JSON)))
            pick = lambda k: draw(st.integers(0, k - 1))  # noqa: E731
            if name.startswith("streams/"):
                lines = doc.split(b"\n")
                j = draw(st.integers(0, max(0, len(lines) - 2)))
                lines[j] = bm.mutate_json(lines[j], pick, hostile)
                doc = b"\n".join(lines)
            else:
                doc = bm.mutate_json(doc, pick, hostile)
            members[i] = (name, doc)
        elif kind == "text":
            i = draw(st.integers(0, n - 1))
            name, doc = members[i]
            positions = draw(st.lists(st.integers(0, 1 << 20), min_size=1, max_size=8))
            xors = draw(st.lists(st.integers(0, 255), min_size=len(positions), max_size=len(positions)))
            doc = bm.flip(doc, positions, xors)
            if draw(st.booleans()):
                cut = draw(st.integers(0, len(doc)))
                doc = doc[:cut] + draw(st.binary(max_size=64)) + doc[cut:]
            members[i] = (name, doc)
        elif kind == "name":
            i = draw(st.integers(0, n - 1))
            new = draw(st.one_of(st.sampled_from(bm.ODD_NAMES), st.text(max_size=40)))
            members[i] = (new, members[i][1])
        elif kind == "drop" and n > 1:
            del members[draw(st.integers(0, n - 1))]
        elif kind == "dup":
            i = draw(st.integers(0, n - 1))
            members.insert(draw(st.integers(0, n)), members[i])
        else:
            stream_ops.append(kind)
    if reseal:
        members = bm.reseal(members)
    tar = bm.tar_bytes(members)
    for kind in stream_ops:
        if kind == "tar_flip":
            positions = draw(st.lists(st.integers(0, len(tar) - 1), min_size=1, max_size=8))
            xors = draw(st.lists(st.integers(0, 255), min_size=len(positions), max_size=len(positions)))
            tar = bm.flip(tar, positions, xors)
        elif kind == "size":
            headers = list(range(0, len(tar), 512))
            off = draw(st.sampled_from(headers))
            size = draw(st.sampled_from([0, 1, 511, 513, 1 << 20, (1 << 33) - 1, 10 << 30]))
            tar = bm.size_lie(tar, off, size, fix_checksum=draw(st.booleans()))
    data = bm.hb.compress(tar)
    if "zstd_flip" in stream_ops:
        positions = draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8))
        xors = draw(st.lists(st.integers(0, 255), min_size=len(positions), max_size=len(positions)))
        data = bm.flip(data, positions, xors)
    if "truncate" in stream_ops:
        data = data[:draw(st.integers(0, len(data)))]
    html = draw(st.integers(0, 9)) == 0
    return data, html, "+".join(sorted(set(kinds)))


def _seeded(test):
    return seed(int(SEED))(test) if SEED is not None else test


@_seeded
@FUZZ
@given(data=st.data())
def test_mutated_bundles_give_a_report_or_one_line_error(data, tmp_path_factory):
    blob, html, label = data.draw(mutant(_seeds()))
    _run(tmp_path_factory, blob, html, label)


@_seeded
@settings(FUZZ, max_examples=max(20, EXAMPLES // 5))
@given(data=st.data())
def test_real_bundles_cut_anywhere(data, seed_files, tmp_path_factory):
    """Truncation was handled well before the reader became a boundary: keep it so."""
    whole = seed_files[data.draw(st.sampled_from([0, 1, 2]))]
    cut = data.draw(st.integers(0, len(whole)))
    _run(tmp_path_factory, whole[:cut], False, "cut")
