"""Hostile bundles built in memory: tar members packed by hand, zstd bombs of RLE blocks.

A zstd RLE block is 4 bytes of input for 128 KiB of output (RFC 8878,
3.1.1.2), so ``rle_frame`` builds a stream that decompresses to GiBs in
kilobytes, without ever holding or compressing those GiBs here.
"""

from __future__ import annotations

import io
import json
import tarfile

import zstandard

from snapcollect.bundle import names

BLOCK = 512
RLE_MAX = 128 * 1024


def tar_header(name: str, size: int, typeflag: bytes = tarfile.REGTYPE) -> bytes:
    """A tar header (pax when needed) declaring ``size`` bytes, which need not follow."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = typeflag
    info.mode = 0o600
    return info.tobuf(format=tarfile.PAX_FORMAT)


def tar_member(name: str, data: bytes) -> bytes:
    return tar_header(name, len(data)) + data + b"\0" * ((-len(data)) % BLOCK)


def tar_end() -> bytes:
    return b"\0" * (2 * BLOCK)


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


def rle_frame(prefix: bytes, zeros: int, suffix: bytes | None = None) -> bytes:
    """One zstd frame: ``prefix`` as raw blocks, ``zeros`` zero bytes as RLE blocks, then ``suffix``.

    ``suffix`` defaults to the tar end-of-archive marker.
    """
    out = bytearray(b"\x28\xb5\x2f\xfd" + bytes([0x00, 0x50]))  # no checksum, 1 MiB window

    def raw(data: bytes, last: bool = False) -> None:
        for i in range(0, len(data), RLE_MAX):
            piece = data[i:i + RLE_MAX]
            end = last and i + RLE_MAX >= len(data)
            out.extend(((len(piece) << 3) | int(end)).to_bytes(3, "little"))
            out.extend(piece)

    raw(prefix)
    while zeros:
        n = min(zeros, RLE_MAX)
        zeros -= n
        out.extend(((n << 3) | (1 << 1)).to_bytes(3, "little"))
        out.append(0)
    suffix = tar_end() if suffix is None else suffix
    raw(suffix, last=True)
    if not suffix:
        out.extend((1).to_bytes(3, "little"))  # an empty last raw block
    return bytes(out)


def manifest(artifacts: list[dict] | None = None, **fields) -> dict:
    m = {"format": names.FORMAT, "format_version": names.FORMAT_VERSION, "host": "h", "kernel": "6.18",
         "started_at": "2026-01-01T00:00:00.000Z", "ended_at": "2026-01-01T00:00:05.000Z",
         "complete": True, "interval_s": 1.0, "duration_requested_s": 4.0, "artifacts": artifacts or []}
    m.update(fields)
    return m


def members_of(path: str) -> list[tuple[str, bytes]]:
    """The (name, data) of every member of a well-formed bundle, in archive order."""
    raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True).read()
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar:
            out.append((m.name, tar.extractfile(m).read()))
    return out


def pack(members: list[tuple[str, bytes]]) -> bytes:
    """Members back into a bundle (one zstd frame)."""
    return compress(b"".join(tar_member(n, d) for n, d in members) + tar_end())


def with_manifest(members: list[tuple[str, bytes]], edit) -> list[tuple[str, bytes]]:
    """``members`` with ``edit(manifest)`` applied to the final manifest."""
    out = list(members)
    i = max(i for i, (n, _) in enumerate(out) if n == names.MANIFEST)
    m = json.loads(out[i][1])
    edit(m)
    out[i] = (names.MANIFEST, json.dumps(m).encode())
    return out
