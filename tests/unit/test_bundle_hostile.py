"""The bundle reader as a boundary: each way a hostile or broken bundle failed before.

Every archive here is built in memory and is small: the 1 GiB member is
8,192 zstd RLE blocks (32 KB), the million members are a lowered cap.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from snapcollect.bundle import names, open_bundle
from snapcollect.bundle.limits import CAPS, Limits, parse_size
from snapcollect.bundle.show import format_show
from snapcollect.errors import BundleError
import hostile_bundles as hb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "bundles", "memcg-swap-6.18.tar.zst")
GIB = 1024 ** 3


@pytest.fixture(scope="module")
def real():
    return hb.members_of(FIXTURE)


def _write(tmp_path, data: bytes, name: str = "b") -> str:
    p = tmp_path / f"{name}{names.SUFFIX}"
    p.write_bytes(data)
    return str(p)


def _markdown(bundle) -> str:
    from snapcollect.report.build import build_report
    from snapcollect.report.markdown import render_markdown

    return render_markdown(build_report(bundle), None)[0]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- file types ------------------------------------------------------------------


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "b.tar.zst"
    os.mkfifo(fifo)
    # In a child: if the reader blocked in open() the test would hang.
    code = ("import sys\nfrom snapcollect.bundle import open_bundle\nfrom snapcollect.errors import BundleError\n"
            f"try:\n    open_bundle({str(fifo)!r})\nexcept BundleError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "is a FIFO, not a bundle file" in out.stdout, out.stderr


@pytest.mark.parametrize("path,what", [("/dev/null", "character device"), ("/", "directory")])
def test_devices_and_directories_are_refused(path, what):
    with pytest.raises(BundleError, match=f"is a {what}, not a bundle file"):
        open_bundle(path)


# -- caps --------------------------------------------------------------------------


def test_one_gib_member_in_a_tiny_bundle_hits_the_member_cap(tmp_path):
    data = hb.rle_frame(hb.tar_header("data/proc/meminfo@start", GIB), GIB)
    assert len(data) < 96 * 1024
    p = _write(tmp_path, data)
    with pytest.raises(BundleError) as exc:
        open_bundle(p)
    msg = str(exc.value)
    assert "declares 1,073,741,824 bytes" in msg and "--max-member-size" in msg
    assert "SNAPCOLLECT_MAX_MEMBER_SIZE" in msg and "\n" not in msg


def test_total_cap_counts_decompressed_bytes_across_members(tmp_path):
    # 40 members of 8 MiB of zeros each: every one under the member cap
    chunk = 8 * 1024 * 1024
    frames = [hb.rle_frame(hb.tar_header(f"data/x{i}", chunk), chunk, suffix=b"") for i in range(40)]
    p = _write(tmp_path, b"".join(frames))
    with pytest.raises(BundleError, match="--max-total-size"):
        open_bundle(p, Limits(max_total_bytes=64 * 1024 * 1024))


def test_ten_gib_manifest_is_refused_before_its_data(tmp_path):
    # The header alone: nothing of the 10 GiB follows, nothing is read.
    data = hb.compress(hb.tar_header(names.MANIFEST, 10 * GIB))
    with pytest.raises(BundleError, match="manifest.json' declares 10,737,418,240 bytes"):
        open_bundle(_write(tmp_path, data))


def test_pax_header_claiming_gigabytes_is_refused(tmp_path):
    data = hb.compress(hb.tar_header("././@PaxHeader", 3 * GIB, typeflag=b"x"))
    with pytest.raises(BundleError, match="extended header.*--max-member-size"):
        open_bundle(_write(tmp_path, data))


def test_member_count_cap(tmp_path):
    tiny = b"".join(hb.tar_member(f"data/m{i}", b"") for i in range(1001)) + hb.tar_end()
    p = _write(tmp_path, hb.compress(tiny))
    with pytest.raises(BundleError, match=r"more than 1,000 members.*--max-members.*SNAPCOLLECT_MAX_MEMBERS"):
        open_bundle(p, Limits(max_members=1000))


def test_record_cap(tmp_path, real):
    lines = b"".join(json.dumps({"seq": i, "ts_us": i}).encode() + b"\n" for i in range(51))
    members = [m for m in real if m[0] != names.MANIFEST] + [("streams/kmsg/000099.jsonl", lines)]
    members.append(real[-1])
    with pytest.raises(BundleError, match="--max-records"):
        open_bundle(_write(tmp_path, hb.pack(members)), Limits(max_records=100))


def test_json_value_cap_comes_before_decoding(tmp_path, real):
    dense = b"[" + b"{}," * 100_000 + b"{}]"
    members = [(n, d) for n, d in real if not n.startswith("ticks/")] + [("ticks/000000.json", dense)]
    with pytest.raises(BundleError, match=r"JSON values by ticks/000000.json.*--max-json-values"):
        open_bundle(_write(tmp_path, hb.pack(members)), Limits(max_json_values=200_000))


def test_manifest_gets_a_share_of_the_json_value_cap(tmp_path, real):
    def bloat(m):
        m["x"] = [0] * 250_000

    with pytest.raises(BundleError, match=r"manifest.json holds up to 250,\d+ JSON values.*1/20 share.*--max-json"):
        open_bundle(_write(tmp_path, hb.pack(hb.with_manifest(real, bloat))))
    assert "x" in open_bundle(_write(tmp_path, hb.pack(hb.with_manifest(real, bloat))),
                              Limits(max_json_values=6_000_000)).manifest


def test_zstd_window_over_the_cap_is_refused(tmp_path):
    # Window descriptor 0xf8: 2^(10+31) bytes; zstandard would try to allocate it.
    frame = b"\x28\xb5\x2f\xfd\x00\xf8" + (0 << 3 | 1).to_bytes(3, "little")
    with pytest.raises(BundleError, match="not a readable snapcollect bundle"):
        open_bundle(_write(tmp_path, frame))


def test_caps_from_environment_and_options(monkeypatch):
    env = {"SNAPCOLLECT_MAX_MEMBER_SIZE": "2G", "SNAPCOLLECT_MAX_MEMBERS": "1_000"}
    lim = Limits.from_env(env, max_members=5)
    assert lim.max_member_bytes == 2 * GIB and lim.max_members == 5
    assert lim.max_total_bytes == CAPS[1].default
    with pytest.raises(ValueError, match="SNAPCOLLECT_MAX_RECORDS"):
        Limits.from_env({"SNAPCOLLECT_MAX_RECORDS": "lots"})
    assert parse_size("512M") == 512 * 1024 ** 2 and parse_size("1048576") == 1048576
    with pytest.raises(ValueError):
        parse_size("-1")


def test_cli_option_raises_a_cap_and_a_bad_one_is_one_line(tmp_path, capsys):
    from snapcollect.cli import main

    data = hb.pack(hb.members_of(FIXTURE))
    p = _write(tmp_path, data)
    assert main(["show", p, "--max-member-size", "1k"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over the cap of 1 KiB" in err
    assert main(["show", p, "--max-member-size", "10M"]) == 0
    capsys.readouterr()
    os.environ["SNAPCOLLECT_MAX_MEMBERS"] = "3"
    try:
        assert main(["report", p, "-f", "json"]) == 2
        assert "--max-members" in capsys.readouterr().err
    finally:
        del os.environ["SNAPCOLLECT_MAX_MEMBERS"]


# -- names, JSON, records ----------------------------------------------------------------


def test_member_names_that_are_not_numbers_are_ignored_with_a_warning(tmp_path, real):
    members = list(real)
    members.insert(3, ("ticks/abc.json", b"{}"))
    members.insert(3, ("streams/kmsg/x1.jsonl", b'{"seq": 1, "ts_us": 1}\n'))
    members.insert(3, ("ticks/ 12.json", b"{}"))
    members.insert(3, ("weird/member", b""))
    b = open_bundle(_write(tmp_path, hb.pack(members)))
    assert len(b.ticks) == 11
    assert len(b.warnings) == 4 and all("does not fit the bundle format" in w for w in b.warnings)
    assert any("'ticks/abc.json' ignored" in w for w in b.warnings)
    assert not b.complete and "'weird/member' ignored" in b.incomplete_reason
    assert not b.incomplete_reason.startswith("stopped by"), "a normal stop is no reason"
    md = _markdown(b)
    assert "**Complete:** NO" in md and "weird/member" in md
    shown = format_show(b)
    assert "set aside on reading:" in shown and "'ticks/abc.json' ignored" in shown


@pytest.mark.parametrize("bad,expect", [
    (b'{"format": "snapcollect-bundle", "format_version": 1' + b", \"x\": 1" + b"1" * 5000 + b"}",
     "digits"),
    (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    (b'{"format": "snapcollect-bundle", "format_version": NaN}', "NaN"),
    (b'{"format": "snapcollect-bundle", "format_version": "1"}', "'format_version' is not an integer"),
    (b'{"format": "snapcollect-bundle", "format_version": 1.0}', "'format_version' is not an integer"),
    (b'\xff{"format": "snapcollect-bundle"}', "not UTF-8"),
    (b'[1, 2]', "not a JSON object"),
    (b'{"format": "snapcollect-bundle", "format_version": 1, "x": 1e999}', "out of range"),
])
def test_bad_manifest_json_is_one_line_at_open_time(tmp_path, bad, expect):
    p = _write(tmp_path, hb.pack([(names.MANIFEST, bad)]))
    with pytest.raises(BundleError) as exc:
        open_bundle(p)
    assert expect in str(exc.value) and "\n" not in str(exc.value)


def test_wrong_types_in_manifest_fields_are_dropped_not_fatal(tmp_path, real):
    def edit(m):
        m["interval_s"] = "fast"
        m["window"] = {"start": "yesterday", "end": 5}
        m["artifacts"][0]["bytes"] = -3
        m["artifacts"].append({"no": "name"})
        m["artifacts"].append("text")

    b = open_bundle(_write(tmp_path, hb.pack(hb.with_manifest(real, edit))))
    assert "interval_s" not in b.manifest and "start" not in b.manifest["window"]
    assert all(isinstance(a, dict) and "name" in a for a in b.artifacts())
    assert any("'interval_s' is not a number" in w for w in b.warnings)
    assert any("artifact ignored" in w for w in b.warnings)
    format_show(b)
    _markdown(b)


def test_bad_ticks_and_records_are_set_aside_at_open_time(tmp_path, real):
    members = []
    for n, d in real:
        if n == "ticks/000002.json":
            d = d.replace(b'"k":2', b'"k":"2"')
        if n == "ticks/000003.json":
            d = b'{"k": 3, "t": 1, "texts": {"proc/meminfo": 12}}'
        if n.startswith("streams/kmsg/"):
            d = d + b'{"seq": "x", "ts_us": 1}\n[1]\n{"seq": 1' + b"0" * 5000 + b', "ts_us": 1}\nnot json\n'
        members.append((n, d))
    b = open_bundle(_write(tmp_path, hb.pack(members)))
    assert sorted(t["k"] for t in b.ticks) == [0, 1, 4, 5, 6, 7, 8, 9, 10]
    assert any("4 record(s) of stream 'kmsg' ignored" in w for w in b.warnings)
    # checksums no longer match what is left: the series and kmsg are corrupt
    assert b.status("kmsg")[0] == "corrupt" and b.records("kmsg") == []
    assert b.status("series/proc/meminfo")[0] == "corrupt"
    md = _markdown(b)
    assert "| kmsg " in md and "corrupt" in md and "**Complete:** NO" in md


def test_records_analysis_sees_are_typed(tmp_path, real):
    def unsum(m):
        for a in m["artifacts"]:
            if a["name"] == "kmsg":
                a.pop("sha256"), a.pop("bytes")

    members = [(n, d + b'{"seq": "x", "ts_us": 1}\n{"seq": 7, "ts_us": 2, "text": 5, "prio": "x"}\n'
                if n.startswith("streams/kmsg/") else d) for n, d in hb.with_manifest(real, unsum)]
    b = open_bundle(_write(tmp_path, hb.pack(members)))
    kmsg = b.records("kmsg")
    assert kmsg[-1] == {"seq": 7, "ts_us": 2}, "fields of the wrong type are dropped"
    assert all(type(r["seq"]) is int and type(r.get("text", "")) is str for r in kmsg)
    _markdown(b)


# -- integrity -------------------------------------------------------------------


def test_checksum_mismatch_marks_the_artifact_corrupt_and_the_report_says_so(tmp_path, real):
    name = "proc/meminfo@start"
    members = [(n, d.replace(b"MemTotal", b"MemTotaL") if n == f"data/{name}" else d) for n, d in real]
    b = open_bundle(_write(tmp_path, hb.pack(members)))
    status, reason = b.status(name)
    assert status == "corrupt" and "declared sha256" in reason
    assert b.data(name) is None, "corrupt data is not handed to analysis"
    assert not b.complete and f"{name}: corrupt" in b.incomplete_reason
    assert f"{name}: corrupt" in format_show(b)
    md = _markdown(b)
    assert "**Complete:** NO" in md and f"{name}: corrupt" in md
    assert "| proc/meminfo@start | corrupt" in md


def test_size_mismatch_marks_the_artifact_corrupt(tmp_path, real):
    name = "proc/meminfo@start"
    members = [(n, d + b"x" if n == f"data/{name}" else d) for n, d in real]
    b = open_bundle(_write(tmp_path, hb.pack(members)))
    assert b.status(name)[0] == "corrupt" and "declared" in b.status(name)[1] and "bytes" in b.status(name)[1]


def test_an_untouched_bundle_verifies_clean(tmp_path, real):
    b = open_bundle(_write(tmp_path, hb.pack(real)))
    assert b.complete and b.warnings == [] and b.incomplete_reason is None
    assert all(a.get("status") != "corrupt" for a in b.artifacts())


def test_manifest_listing_artifacts_the_archive_lacks_is_not_complete(tmp_path, real):
    # The manifest alone: every artifact it lists as collected is absent.
    manifest = [m for m in real if m[0] == names.MANIFEST][-1]
    b = open_bundle(_write(tmp_path, hb.pack([manifest])))
    assert not b.complete
    assert b.status("proc/meminfo@start")[0] == "missing"
    assert "absent from the archive" in b.incomplete_reason
    md = _markdown(b)
    assert "**Complete:** NO" in md and "absent from the archive" in md
    assert "complete:  NO" in format_show(b)


def test_empty_archive_with_hand_written_manifest_claiming_everything(tmp_path):
    m = hb.manifest([{"name": "proc/meminfo@start", "kind": "file", "status": "ok", "bytes": 10,
                      "sha256": _sha(b"0123456789")},
                     {"name": "series/proc/vmstat", "kind": "series", "status": "ok", "samples": 5}])
    b = open_bundle(_write(tmp_path, hb.pack([(names.MANIFEST, json.dumps(m).encode())])))
    assert not b.complete
    assert {a["name"]: a["status"] for a in b.artifacts()} == {"proc/meminfo@start": "missing",
                                                               "series/proc/vmstat": "missing"}


def test_size_lie_in_a_tar_header_reads_up_to_the_last_whole_member(tmp_path, real):
    raw = b"".join(hb.tar_member(n, d) for n, d in real)
    # The last member (the final manifest) says it is longer than the archive.
    i = raw.rfind(hb.tar_header(names.MANIFEST, len(real[-1][1])))
    lying = raw[:i] + hb.tar_header(names.MANIFEST, 10 ** 6) + raw[i + 512 * 3:]
    b = open_bundle(_write(tmp_path, hb.compress(lying)))
    assert not b.complete and "ends early" in (b.read_problem or "")


def test_warnings_are_bounded(tmp_path, real):
    extra = [(f"junk/{i}", b"") for i in range(500)]
    b = open_bundle(_write(tmp_path, hb.pack(extra + real)))
    assert len(b.warnings) == 21 and b.warnings[-1] == "480 more problem(s) of the same kinds"


# -- zstd, block by block -------------------------------------------------------------


def _drain(z) -> bytes:
    out = []
    while True:
        piece = z.read(7000)
        if not piece:
            return b"".join(out)
        assert len(piece) <= 128 * 1024
        out.append(piece)


def test_zstd_blocks_match_zstandard_and_skip_skippable_frames():
    import io

    import zstandard

    from snapcollect.bundle.zstdblocks import ZstdBlocks

    text = b"".join(b"line %d of a meminfo-like text\n" % i for i in range(20_000))
    frames = (zstandard.ZstdCompressor(level=3, write_checksum=True).compress(text[:300_000])
              + b"\x50\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello"
              + zstandard.ZstdCompressor(level=1, write_content_size=False).compress(text[300_000:]))
    z = ZstdBlocks(io.BytesIO(frames))
    assert _drain(z) == text and not z.cut
    # cut anywhere: a prefix of the text, and the cut is noticed
    for cut in range(0, len(frames), max(1, len(frames) // 50)):
        z = ZstdBlocks(io.BytesIO(frames[:cut]))
        got = _drain(z)
        assert text.startswith(got) and z.cut == (cut > 0)


def test_zstd_bomb_comes_out_in_bounded_pieces():
    import io

    from snapcollect.bundle.zstdblocks import ZstdBlocks

    z = ZstdBlocks(io.BytesIO(hb.rle_frame(b"", 16 * 1024 * 1024, suffix=b"")))
    total = 0
    while True:
        piece = z.read(1 << 30)  # asking for everything still gives one block at most
        if not piece:
            break
        assert len(piece) <= 128 * 1024
        total += len(piece)
    assert total == 16 * 1024 * 1024
