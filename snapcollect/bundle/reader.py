"""Reader for snapcollect bundles, complete, incomplete or cut short.

Opens ``.tar.zst`` archives and their ``.partial`` leftovers. A stream
that ends in the middle (collector killed, disk full) is read up to the
last whole member; the bundle then says it is incomplete and why. The
reader understands every format version listed in
``names.READABLE_VERSIONS``; ``_upgrade`` turns older manifests into the
current shape.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field

import zstandard

from snapcollect.bundle import names
from snapcollect.errors import BundleError


@dataclass(frozen=True)
class Sample:
    """One series sample: tick index, wall time (epoch s), monotonic time, raw text."""

    k: int
    t: float
    mono: float
    text: str


@dataclass
class Bundle:
    path: str
    manifest: dict
    files: dict[str, bytes] = field(repr=False)
    ticks: list[dict] = field(repr=False)
    streams: dict[str, list[bytes]] = field(repr=False)
    # Set when the archive ended before its final manifest / trailer.
    read_problem: str | None = None

    # -- metadata --------------------------------------------------------

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete")) and self.read_problem is None

    @property
    def stopped_by(self) -> str | None:
        return self.manifest.get("stopped_by")

    @property
    def incomplete_reason(self) -> str | None:
        if self.complete:
            return None
        parts = []
        if self.manifest.get("stop_reason"):
            parts.append(self.manifest["stop_reason"])
        elif self.stopped_by:
            parts.append(f"stopped by {self.stopped_by}")
        if self.read_problem:
            parts.append(self.read_problem)
        return "; ".join(parts) or "collection did not finish"

    def artifacts(self) -> list[dict]:
        return list(self.manifest.get("artifacts", []))

    def entry(self, name: str) -> dict | None:
        for a in self.manifest.get("artifacts", []):
            if a["name"] == name:
                return a
        return None

    def status(self, name: str) -> tuple[str, str | None]:
        """(status, reason) of an artifact; ``missing`` when never recorded."""
        e = self.entry(name)
        if e is None:
            return "missing", "not in this bundle"
        return e.get("status", "ok"), e.get("reason")

    def names(self, prefix: str = "") -> list[str]:
        out = [a["name"] for a in self.manifest.get("artifacts", []) if a["name"].startswith(prefix)]
        return sorted(set(out))

    # -- data ----------------------------------------------------------

    def data(self, name: str) -> bytes | None:
        return self.files.get(name)

    def text(self, name: str) -> str | None:
        raw = self.files.get(name)
        return None if raw is None else raw.decode("utf-8", "surrogateescape")

    def series(self, source: str) -> list[Sample]:
        """Samples of a series source (``proc/vmstat``), in tick order."""
        out = []
        for tick in self.ticks:
            text = tick["texts"].get(source)
            if text is not None:
                out.append(Sample(tick["k"], tick["t"], tick.get("mono", 0.0), text))
        return out

    def series_sources(self) -> list[str]:
        seen: dict[str, None] = {}
        for tick in self.ticks:
            for src in tick["texts"]:
                seen.setdefault(src, None)
        return list(seen)

    def records(self, name: str) -> list[dict]:
        """All records of a stream artifact, in the order they were written."""
        out = []
        for chunk in self.streams.get(name, []):
            for line in chunk.splitlines():
                if line.strip():
                    out.append(json.loads(line))
        return out


class _ZstdFrames(io.RawIOBase):
    """The decompressed bytes of a file of concatenated zstd frames.

    zstandard's ``stream_reader`` drops the output of the last blocks when
    the input ends inside a frame (a collector killed mid-run leaves
    exactly that), so the frames are fed through ``decompressobj`` here:
    everything up to the last whole block comes out. ``cut`` tells
    whether the input ended inside a frame.
    """

    def __init__(self, fh):
        self._fh = fh
        self._dctx = zstandard.ZstdDecompressor()
        self._d = self._dctx.decompressobj()
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._in_frame = False

    def readable(self) -> bool:
        return True

    @property
    def cut(self) -> bool:
        return self._eof and self._in_frame

    def _fill(self) -> None:
        while self._pos >= len(self._buf) and not self._eof:
            chunk = self._fh.read(256 * 1024)
            if not chunk:
                self._eof = True
                return
            self._in_frame = True
            out = [self._d.decompress(chunk)]
            while self._d.eof:
                rest = self._d.unused_data
                self._d = self._dctx.decompressobj()
                self._in_frame = bool(rest)
                if not rest:
                    break
                out.append(self._d.decompress(rest))
            self._buf = b"".join(out)
            self._pos = 0

    def readinto(self, b) -> int:
        self._fill()
        n = min(len(b), len(self._buf) - self._pos)
        if n <= 0:
            return 0
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n


def _upgrade(manifest: dict) -> dict:
    """Bring a manifest of any readable version to the current shape."""
    version = manifest.get("format_version")
    if version not in names.READABLE_VERSIONS:
        raise BundleError(f"bundle format version {version!r} is not supported by this snapcollect "
                          f"(reads {', '.join(map(str, names.READABLE_VERSIONS))}); upgrade snapcollect")
    manifest.setdefault("artifacts", [])
    return manifest


def _rebuild_artifacts(files: dict, ticks: list, streams: dict) -> list[dict]:
    """Artifact list for a bundle whose final manifest never arrived."""
    out = [{"name": n, "kind": "file", "path": names.file_path(n), "status": "ok", "bytes": len(b)}
           for n, b in files.items()]
    seen: dict[str, int] = {}
    for t in ticks:
        for src, text in t["texts"].items():
            seen[src] = seen.get(src, 0) + 1
    out += [{"name": names.series(s), "kind": "series", "path": "ticks/*.json", "status": "truncated",
             "reason": "collection cut short", "samples": c, "bytes": 0} for s, c in seen.items()]
    out += [{"name": n, "kind": "stream", "path": f"streams/{n}/*.jsonl", "status": "truncated",
             "reason": "collection cut short", "bytes": sum(map(len, ch))} for n, ch in streams.items()]
    return out


def open_bundle(path: str) -> Bundle:
    """Read a bundle into memory. Raises BundleError with a one-line reason."""
    if not os.path.exists(path):
        raise BundleError(f"{path}: no such file")
    if os.path.isdir(path):
        raise BundleError(f"{path}: is a directory, not a bundle")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise BundleError(f"{path}: cannot open: {exc.strerror}") from None
    with fh:
        magic = fh.read(4)
        if magic != b"\x28\xb5\x2f\xfd":
            raise BundleError(f"{path}: not a snapcollect bundle (not zstd-compressed)")
        fh.seek(0)
        frames = _ZstdFrames(fh)
        reader = io.BufferedReader(frames, buffer_size=256 * 1024)
        manifests: list[dict] = []
        files: dict[str, bytes] = {}
        ticks: list[dict] = []
        streams: dict[str, list[bytes]] = {}
        problem = None
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    f = tar.extractfile(member)
                    raw = f.read() if f else b""
                    if len(raw) != member.size:
                        raise EOFError("member cut short")
                    kind, name, idx = names.classify(member.name)
                    if kind == "manifest":
                        manifests.append(json.loads(raw))
                    elif kind == "file":
                        files[name] = raw
                    elif kind == "tick":
                        ticks.append(json.loads(raw))
                    elif kind == "stream":
                        streams.setdefault(name, []).append(raw)
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError, json.JSONDecodeError) as exc:
            if not manifests:
                raise BundleError(f"{path}: not a readable snapcollect bundle ({exc})") from None
            problem = f"archive ends early ({exc.__class__.__name__}); read up to the last whole member"
        if problem is None and frames.cut:
            problem = "archive ends early (inside a compressed frame); read up to the last whole member"
    if not manifests:
        raise BundleError(f"{path}: archive holds no manifest.json; not a snapcollect bundle")
    manifest = manifests[-1]
    if manifest.get("format") != names.FORMAT:
        raise BundleError(f"{path}: not a snapcollect bundle (format {manifest.get('format')!r})")
    manifest = _upgrade(manifest)
    if len(manifests) == 1 and not manifest.get("ended_at"):
        # Only the provisional manifest: the collector never finished.
        manifest["complete"] = False
        manifest.setdefault("stopped_by", None)
        manifest["stopped_by"] = manifest["stopped_by"] or "killed"
        manifest["stop_reason"] = ("the collector stopped before writing its final manifest "
                                   "(killed, crashed or out of disk)")
        manifest["artifacts"] = _rebuild_artifacts(files, ticks, streams)
        if ticks:
            manifest["ended_at_estimate"] = ticks[-1]["t"]
    ticks.sort(key=lambda t: t["k"])
    return Bundle(path, manifest, files, ticks, streams, problem)


def bundle_from_bytes(data: bytes, path: str = "<memory>") -> Bundle:  # for tests
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=names.SUFFIX) as tmp:
        tmp.write(data)
        tmp.flush()
        return open_bundle(tmp.name)


__all__ = ["Bundle", "Sample", "open_bundle", "bundle_from_bytes"]
