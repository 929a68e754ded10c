"""Reader for snapcollect bundles, complete, incomplete, cut short or hostile.

Opens ``.tar.zst`` archives and their ``.partial`` leftovers. A stream
that ends in the middle (collector killed, disk full) is read up to the
last whole member; the bundle then says it is incomplete and why. The
reader understands every format version listed in
``names.READABLE_VERSIONS``; ``_upgrade`` turns older manifests into the
current shape.

A bundle comes from elsewhere, so this is a boundary: only a regular
file is opened (a FIFO would block forever); decompression goes one zstd
block at a time (bundle.zstdblocks) and tar members are bounded before
their data is read (bundle.tarstream), under the caps of bundle.limits;
every JSON document is decoded strictly and checked against
bundle.schema here, at open time, so analysis never meets a record of
the wrong shape. Each artifact's declared ``bytes`` and ``sha256`` are
verified: a mismatch makes it ``corrupt`` and its data is not used; an
artifact the manifest lists as collected but the archive lacks becomes
``missing``. Those, and members whose names do not fit the format, are
``Bundle.warnings``; a bundle with warnings is not complete, and its
``incomplete_reason`` says why.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field

from snapcollect.bundle import names, schema
from snapcollect.bundle.limits import MANIFEST_SHARE, LimitExceeded, Limits
from snapcollect.bundle.names import is_series, series_source
from snapcollect.bundle.tarstream import TarFormatError, TarStream, TarTruncated
from snapcollect.bundle.zstdblocks import MAGIC, ZstdBlocks, ZstdFormatError
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
    # stream name -> its records, each checked against bundle.schema
    streams: dict[str, list[dict]] = field(repr=False)
    # Set when the archive ended before its final manifest / trailer.
    read_problem: str | None = None
    # What the reader set aside: corrupt or absent artifacts, members
    # and records that do not fit the format. One line each.
    warnings: list[str] = field(default_factory=list)

    # -- metadata --------------------------------------------------------

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete")) and self.read_problem is None and not self.warnings

    @property
    def stopped_by(self) -> str | None:
        return self.manifest.get("stopped_by")

    @property
    def incomplete_reason(self) -> str | None:
        if self.complete:
            return None
        parts = []
        if not self.manifest.get("complete"):
            if self.manifest.get("stop_reason"):
                parts.append(self.manifest["stop_reason"])
            elif self.stopped_by:
                parts.append(f"stopped by {self.stopped_by}")
        if self.read_problem:
            parts.append(self.read_problem)
        if self.warnings:
            shown = "; ".join(self.warnings[:3])
            more = f" and {len(self.warnings) - 3} more" if len(self.warnings) > 3 else ""
            parts.append(f"the bundle failed {len(self.warnings)} check(s) on reading: {shown}{more}")
        if parts:
            return "; ".join(parts)
        return "collection did not finish"

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
        return list(self.streams.get(name, []))


def _upgrade(manifest: dict) -> dict:
    """Bring a manifest of any readable version to the current shape."""
    version = manifest.get("format_version")
    if version not in names.READABLE_VERSIONS:
        raise BundleError(f"bundle format version {str(version)[:20]} is not supported by this snapcollect "
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
             "reason": "collection cut short", "records": len(recs)} for n, recs in streams.items()]
    return out


# File types a bundle path must not be; opening some of them blocks or
# has side effects (a FIFO waits for a writer, a tape rewinds).
_NOT_REGULAR = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}
# Warnings kept one by one; past this many only their number is told.
_WARNINGS_SHOWN = 20


def _open_regular(path: str):
    """The bundle file opened for reading; BundleError unless it is a regular file."""
    def refuse(mode: int) -> BundleError:
        what = _NOT_REGULAR.get(stat.S_IFMT(mode), "not a regular file")
        return BundleError(f"{path}: is {what}, not a bundle file")

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot open: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise refuse(st.st_mode)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat,
        # the open still returns and the fstat below refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise BundleError(f"{path}: cannot open: {exc.strerror or errno.errorcode.get(exc.errno)}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise refuse(st.st_mode)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class _Members:
    """Sorts archive members into manifest, files, ticks and streams, checking each."""

    def __init__(self, limits: Limits):
        self.limits = limits
        # the last valid manifest, and how many were read (the collector
        # writes a provisional one first and the final one last)
        self.manifest: dict | None = None
        self.manifests = 0
        self.json_values = 0
        self.bad_manifest: str | None = None
        self.files: dict[str, bytes] = {}
        self.ticks: dict[int, dict] = {}
        # stream name -> [(seq, raw chunk, records)]
        self.chunks: dict[str, list[tuple[int, bytes, list[dict]]]] = {}
        self.records = 0
        self.warnings: list[str] = []
        self.unshown = 0

    def warn(self, text: str) -> None:
        if len(self.warnings) < _WARNINGS_SHOWN:
            self.warnings.append(text)
        else:
            self.unshown += 1

    def _count(self, data: bytes, what: str) -> None:
        """Account the values ``data`` decodes to, before decoding it."""
        self.json_values += schema.json_values(data)
        if self.json_values > self.limits.max_json_values:
            raise LimitExceeded(self.limits.exceeded(
                "max_json_values", f"up to {self.json_values:,} JSON values by {what[:80]}"))

    def _json(self, data: bytes, what: str, fast: bool = False):
        self._count(data, what)
        return schema.loads(data, what, fast=fast)

    def add(self, member: str, data: bytes) -> None:
        kind, name, idx = names.classify(member)
        if kind == "file":
            self.files[name] = data
        elif kind == "manifest":
            try:
                found: list[str] = []
                values = schema.json_values(data)
                share = self.limits.max_json_values // MANIFEST_SHARE
                if values > share:
                    raise LimitExceeded(self.limits.exceeded(
                        "max_json_values", f"manifest.json holds up to {values:,} JSON values, more than "
                                           f"the manifest's 1/{MANIFEST_SHARE} share ({share:,})"))
                m = schema.MANIFEST.check(self._json(data, member), found)
                arts = []
                for i, a in enumerate(m.get("artifacts", [])):
                    try:
                        arts.append(schema.ARTIFACT.check(a, found, f"manifest.json: artifact {i}"))
                    except schema.Invalid as exc:
                        found.append(f"{exc}; artifact ignored")
                m["artifacts"] = arts
                self.manifest = m
                self.manifests += 1
                for w in found:
                    self.warn(w)
            except schema.Invalid as exc:
                self.bad_manifest = str(exc)
                self.warn(f"{exc}; that copy of the manifest ignored")
        elif kind == "tick":
            try:
                tick = schema.TICK.check(self._json(data, member, fast=True), None, member)
            except schema.Invalid as exc:
                self.warn(f"{exc}; tick ignored")
                return
            if tick["k"] in self.ticks:
                self.warn(f"{member[:80]}: a second tick {tick['k']}; the first one kept")
                return
            self.ticks[tick["k"]] = tick
        elif kind == "stream":
            self._stream(member, name, idx, data)
        else:
            self.warn(f"archive member {member[:80]!r} ignored: its name does not fit the bundle format")

    def _stream(self, member: str, name: str, seq: int, data: bytes) -> None:
        self._count(data, member)
        shape = schema.record_shape(name)
        fast = not shape.keep_other
        lines = [line for line in data.split(b"\n") if line.strip()]
        records: list[dict] = []
        bad, first = 0, None
        # One decode for the whole chunk when every line is good (the
        # usual case, five times faster); line by line to find the bad ones.
        try:
            decoded = schema.loads(b"[" + b",".join(lines) + b"]", member, fast=fast)
            if len(decoded) != len(lines):
                raise schema.Invalid("lines do not match records")
        except schema.Invalid:
            decoded = []
            for n, line in enumerate(lines, 1):
                try:
                    decoded.append(schema.loads(line, f"{member[:80]} record {n}", fast=fast))
                except schema.Invalid as exc:
                    bad += 1
                    first = first or str(exc)
        for rec in decoded:
            try:
                records.append(shape.check(rec, None, f"{member[:80]}: record"))
            except schema.Invalid as exc:
                bad += 1
                first = first or str(exc)
        if bad:
            self.warn(f"{bad} record(s) of stream {name[:80]!r} ignored, e.g. {first}")
        self.records += len(records)
        if self.records > self.limits.max_records:
            raise LimitExceeded(self.limits.exceeded(
                "max_records", f"the archive has more than {self.limits.max_records:,} stream records"))
        self.chunks.setdefault(name, []).append((seq, data, records))


def _declared(a: dict, size: int, digest: str) -> str | None:
    """Why ``a``'s declared size or checksum does not match what the archive holds, or None."""
    if "bytes" in a and a["bytes"] != size:
        return f"declared {a['bytes']:,} bytes, the archive holds {size:,}"
    if "sha256" in a and a["sha256"].lower() != digest:
        return f"declared sha256 {a['sha256'][:16]}..., the archive's data has {digest[:16]}..."
    return None


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate the writer cannot have written
        return text.encode("utf-8", "surrogatepass")


def _verify(manifest: dict, files: dict, ticks: list[dict], raw: dict[str, list[bytes]],
            streams: dict[str, list[dict]], warn) -> None:
    """Check every artifact's declared size and checksum against the archive.

    A mismatch makes the artifact ``corrupt`` and its data is dropped; one
    listed as collected (status ok) with no data in the archive becomes
    ``missing``.
    """
    seen: set[str] = set()
    for a in manifest["artifacts"]:
        name = a["name"]
        if name in seen:
            continue
        seen.add(name)
        kind = a.get("kind") or ("series" if is_series(name) else
                                 "stream" if name in raw else "file")
        # Hashed piece by piece: a series can be 200 MiB of text.
        h, size = hashlib.sha256(), 0
        if kind == "file":
            data = files.get(name)
            present = data is not None
            if present:
                h.update(data)
                size = len(data)
        elif kind == "series":
            src = series_source(name)
            present = False
            for t in ticks:
                if src in t["texts"]:
                    piece = _utf8(t["texts"][src])
                    h.update(piece)
                    size += len(piece)
                    present = True
        else:
            present = bool(raw.get(name))
            for piece in raw.get(name, []):
                h.update(piece)
                size += len(piece)
        declared_empty = a.get("bytes", 0) == 0 and a.get("samples", 0) == 0 and a.get("records", 0) == 0
        if not present:
            if a.get("status", "ok") == "ok" and not (kind != "file" and declared_empty):
                a["status"], a["reason"] = "missing", "listed in the manifest as collected, absent from the archive"
                warn(f"{name[:80]}: listed in the manifest but absent from the archive")
            continue
        why = _declared(a, size, h.hexdigest())
        if why is None:
            continue
        a["status"], a["reason"] = "corrupt", f"{why}; not used"
        warn(f"{name[:80]}: corrupt ({why})")
        if kind == "file":
            del files[name]
        elif kind == "series":
            for t in ticks:
                t["texts"].pop(src, None)
        else:
            streams[name] = []


def open_bundle(path: str, limits: Limits | None = None) -> Bundle:
    """Read a bundle into memory. Raises BundleError with a one-line reason."""
    limits = limits or Limits.from_env()
    with _open_regular(path) as fh:
        if fh.read(4) != MAGIC:
            raise BundleError(f"{path}: not a snapcollect bundle (not zstd-compressed)")
        fh.seek(0)
        blocks = ZstdBlocks(fh)
        tar = TarStream(blocks.read, limits)
        got = _Members(limits)
        problem = None
        try:
            for member, data in tar:
                got.add(member, data)
        except LimitExceeded as exc:
            raise BundleError(f"{path}: {exc}") from None
        except (TarFormatError, TarTruncated, ZstdFormatError, OSError) as exc:
            if got.manifest is None:
                why = got.bad_manifest or exc
                raise BundleError(f"{path}: not a readable snapcollect bundle ({why})") from None
            cut = isinstance(exc, TarTruncated) or blocks.cut
            problem = (f"archive ends early ({exc}); read up to the last whole member" if cut else
                       f"archive damaged ({exc}); read up to the last whole member")
        if problem is None and blocks.cut:
            problem = "archive ends early (inside a compressed frame); read up to the last whole member"
    if got.manifest is None:
        if got.bad_manifest:
            raise BundleError(f"{path}: not a readable snapcollect bundle ({got.bad_manifest})")
        raise BundleError(f"{path}: archive holds no manifest.json; not a snapcollect bundle")
    manifest = got.manifest
    if manifest.get("format") != names.FORMAT:
        raise BundleError(f"{path}: not a snapcollect bundle (format {str(manifest.get('format'))[:40]!r})")
    manifest = _upgrade(manifest)
    ticks = [got.ticks[k] for k in sorted(got.ticks)]
    raw: dict[str, list[bytes]] = {}
    streams: dict[str, list[dict]] = {}
    for name, chunks in got.chunks.items():
        chunks.sort(key=lambda c: c[0])
        raw[name] = [c[1] for c in chunks]
        streams[name] = [r for c in chunks for r in c[2]]
    del got.chunks
    if got.manifests == 1 and not manifest.get("ended_at"):
        # Only the provisional manifest: the collector never finished.
        manifest["complete"] = False
        manifest["stopped_by"] = manifest.get("stopped_by") or "killed"
        manifest["stop_reason"] = ("the collector stopped before writing its final manifest "
                                   "(killed, crashed or out of disk)")
        manifest["artifacts"] = _rebuild_artifacts(got.files, ticks, streams)
        if ticks:
            manifest["ended_at_estimate"] = ticks[-1]["t"]
    else:
        _verify(manifest, got.files, ticks, raw, streams, got.warn)
    del raw
    warnings = list(got.warnings)
    if got.unshown:
        warnings.append(f"{got.unshown} more problem(s) of the same kinds")
    return Bundle(path, manifest, got.files, ticks, streams, problem, warnings)


def bundle_from_bytes(data: bytes, path: str = "<memory>") -> Bundle:  # for tests
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=names.SUFFIX) as tmp:
        tmp.write(data)
        tmp.flush()
        return open_bundle(tmp.name)


__all__ = ["Bundle", "Sample", "open_bundle", "bundle_from_bytes"]
