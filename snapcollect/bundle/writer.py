"""Streaming writer for snapcollect bundles (tar inside one zstd stream).

Every member is flushed to the file as soon as it is added (a zstd block
flush), so a collector killed with SIGKILL at any moment leaves an archive
that the reader can open up to the last whole member. The archive is
written as ``<name>.partial`` and renamed only when the final manifest is
in; it is created 0600 (it holds process names and command lines) and an
existing file is never overwritten.

The tar headers are built here rather than by ``tarfile`` in stream mode:
``tarfile``'s stream buffers 10 KiB records in Python, which would hold
back the last samples from the file on a kill.

Full disks: the writer keeps ``reserve_bytes`` of disk space allocated
beyond the end of the archive (``fallocate(FALLOC_FL_KEEP_SIZE)``), so when
another process fills the file system the final manifest still has room;
the next member then raises ``DiskFull`` and ``close`` finishes the bundle
in the reserve. File systems without fallocate fall back to a statvfs
check. Every public method takes one lock: the collector's main loop and
the BPF session may write from different threads.

Every text stored passes through one filter, ``scrub`` (called with the
text and the artifact's name; its ``applies(name)`` says whether a blob
needs decoding at all), when the collector gives one: artifact names, blobs, tick texts, stream
record values, reasons and the manifest. That is where secrets are masked
and ``--redact`` replaces names, so that no source can forget to. Bytes
that are not UTF-8 cross it losslessly (surrogateescape). Sizes and
checksums are those of what was written.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import os
import tarfile
import threading
import time
from typing import Protocol

import zstandard

from snapcollect.bundle import names

_BLOCK = 512
# Space kept back for the final manifest and the tar trailer once the disk
# runs low, so that a full disk still yields a bundle that says so.
RESERVE_BYTES = 256 * 1024


# Space allocated ahead of need in one step, to keep fallocate calls rare.
_ALLOC_STEP = 256 * 1024
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


class TextFilter(Protocol):
    """What the collector hands the writer to mask or redact every text."""

    def applies(self, artifact: str) -> bool: ...

    def __call__(self, text: str, artifact: str) -> str: ...


class DiskFull(OSError):
    """The output file system ran out of space while writing."""


class WriterClosed(RuntimeError):
    """An artifact arrived after the bundle was closed (e.g. a late thread)."""


def _load_fallocate():
    try:
        # dlopen(NULL): the symbols already loaded, libc's among them. Not
        # ctypes.util.find_library, which runs ldconfig (or gcc) to find
        # libc, at every import of the bundle package (``report`` too).
        libc = ctypes.CDLL(None, use_errno=True)
        fn = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


_fallocate = _load_fallocate()


def _allocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with a mode (os.posix_fallocate cannot keep the size)."""
    if _fallocate is None:
        raise OSError(errno.EOPNOTSUPP, "fallocate not available")
    if _fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class _Aggregate:
    """Running size and checksum of a series or stream artifact."""

    def __init__(self, name: str, kind: str, path: str):
        self.entry: dict = {"name": name, "kind": kind, "path": path, "status": "ok", "bytes": 0}
        self.sha = hashlib.sha256()
        self.count = 0
        self.failed = 0
        self.reasons: dict[str, int] = {}

    def add(self, data: bytes, count: int = 1) -> None:
        """Account ``data`` holding ``count`` samples or records."""
        self.sha.update(data)
        self.entry["bytes"] += len(data)
        self.count += count

    def fail(self, status: str, reason: str) -> None:
        self.failed += 1
        key = f"{status}: {reason}"
        self.reasons[key] = self.reasons.get(key, 0) + 1

    def finish(self) -> dict:
        e = self.entry
        e["sha256"] = self.sha.hexdigest()
        e["samples" if e["kind"] == "series" else "records"] = self.count
        if self.failed:
            e["failed"] = self.failed
            # The most frequent failure names the status of the artifact.
            worst = max(self.reasons, key=self.reasons.get)
            e["status"] = worst.split(":", 1)[0] if self.count == 0 else "ok"
            e["reason"] = "; ".join(f"{k} (x{v})" for k, v in sorted(self.reasons.items()))
        return e


def _locked(method):
    # functools.wraps keeps the signature visible (inspect follows
    # __wrapped__): tests/unit/test_protocols.py compares it with the
    # protocol the BPF side writes through.
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class BundleWriter:
    """Write one bundle. Use as a context manager or call ``close``."""

    def __init__(self, path: str, manifest: dict, *, level: int = 3, reserve_bytes: int = RESERVE_BYTES,
                 scrub: TextFilter | None = None):
        if not path.endswith(names.SUFFIX):
            raise ValueError(f"bundle name must end in {names.SUFFIX}: {path}")
        self.final_path = path
        self.partial_path = path + names.PARTIAL_SUFFIX
        # lexists: a dangling symlink planted at the final name counts too
        # (the final link(2) would refuse it and leave the bundle .partial).
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "refusing to overwrite", path)
        fd = os.open(self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._fh = os.fdopen(fd, "wb", buffering=0)
        self._zw = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(
            self._fh, closefd=False, write_return_read=True)
        self._reserve = reserve_bytes
        self._scrub = scrub
        self._since_check = 0
        self._fd = fd
        self._alloc_end = 0          # bytes allocated in the file (KEEP_SIZE), 0: none
        self._use_fallocate = _fallocate is not None
        self._lock = threading.RLock()
        self._broken: OSError | None = None
        self._closed = False
        self._files: list[dict] = []
        self._aggs: dict[str, _Aggregate] = {}
        self._stream_seq: dict[str, int] = {}
        self.manifest = dict(manifest)
        self.manifest.update(format=names.FORMAT, format_version=names.FORMAT_VERSION)
        self.manifest.setdefault("complete", False)
        self.manifest.setdefault("stopped_by", None)
        # A provisional manifest first: a killed collector still leaves the
        # host, kernel and window start in the archive.
        self._member(names.MANIFEST, self._manifest_bytes())

    # -- the text filter -----------------------------------------------

    def _text(self, text: str | None, artifact: str = "") -> str | None:
        return self._scrub(text, artifact) if self._scrub is not None and isinstance(text, str) else text

    def _bytes(self, data: bytes, artifact: str) -> bytes:
        # A 32 MB smaps is not decoded (copied) for a filter with nothing to do there.
        if self._scrub is None or not self._scrub.applies(artifact):
            return data
        text = data.decode("utf-8", "surrogateescape")
        out = self._scrub(text, artifact)
        return data if out == text else out.encode("utf-8", "surrogateescape")

    def _value(self, value, artifact: str = ""):
        """Strings inside a JSON-like value; dict keys are field names and stay."""
        if self._scrub is None:
            return value
        if isinstance(value, str):
            return self._scrub(value, artifact)
        if isinstance(value, dict):
            return {k: self._value(v, artifact) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v, artifact) for v in value]
        return value

    # -- low level -----------------------------------------------------

    def _check_space(self, incoming: int) -> None:
        """Raise DiskFull unless ``incoming`` bytes fit and the reserve stays free.

        ``incoming`` is the uncompressed size, an upper bound for what
        reaches the disk (zstd adds at most a few bytes per block).
        """
        pos = self._fh.tell()
        need = pos + incoming + self._reserve
        if self._use_fallocate:
            if need <= self._alloc_end:
                return
            try:
                try:
                    _allocate(self._fd, _FALLOC_FL_KEEP_SIZE, self._alloc_end,
                              need + _ALLOC_STEP - self._alloc_end)
                    self._alloc_end = need + _ALLOC_STEP
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    _allocate(self._fd, _FALLOC_FL_KEEP_SIZE, self._alloc_end, need - self._alloc_end)
                    self._alloc_end = need
                return
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise DiskFull(errno.ENOSPC, "the output file system is full",
                                   self.partial_path) from None
                # EOPNOTSUPP (e.g. some network file systems): statvfs below.
                self._use_fallocate = False
        self._since_check += incoming
        if self._since_check < 64 * 1024 and incoming < 64 * 1024:
            return
        self._since_check = 0
        st = os.statvfs(self.partial_path)
        free = st.f_bavail * st.f_frsize
        if free < self._reserve + incoming:
            raise DiskFull(errno.ENOSPC, f"only {free // 1024} KiB left on the output file system",
                           self.partial_path)

    def _member(self, path: str, data: bytes, *, reserve_ok: bool = False) -> None:
        if self._closed and not reserve_ok:
            raise WriterClosed(f"bundle already closed; {path} not written")
        if self._broken is not None:
            raise self._broken
        if not reserve_ok:
            self._check_space(len(data) + 3 * _BLOCK)
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o600
        pad = (-len(data)) % _BLOCK
        try:
            self._zw.write(info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"))
            self._zw.write(data)
            if pad:
                self._zw.write(b"\0" * pad)
            self._zw.flush(zstandard.FLUSH_BLOCK)
        except OSError as exc:
            self._broken = DiskFull(exc.errno, exc.strerror, self.partial_path) if exc.errno == errno.ENOSPC else exc
            raise self._broken from exc

    def artifacts(self) -> list[dict]:
        """The artifact entries so far, as the manifest will list them."""
        with self._lock:
            return self._files + [a.finish() for a in self._aggs.values()]

    def _manifest_bytes(self) -> bytes:
        # Artifact entries were filtered as they came in.
        m = self._value(dict(self.manifest))
        m["artifacts"] = self.artifacts()
        return json.dumps(m, indent=1, sort_keys=False).encode()

    # -- artifacts -----------------------------------------------------

    @_locked
    def add_file(self, name: str, data: bytes | str, *, status: str = "ok", reason: str | None = None,
                 **extra) -> None:
        """Store one blob artifact (a /proc snapshot, a command's output)."""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        data = self._bytes(data, name)
        name, reason, extra = self._text(name), self._text(reason), self._value(extra)
        path = names.file_path(name)
        self._member(path, data)
        entry = {"name": name, "kind": "file", "path": path, "status": status, "bytes": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()}
        if reason:
            entry["reason"] = reason
        entry.update(extra)
        self._files.append(entry)

    @_locked
    def add_missing(self, name: str, status: str, reason: str, **extra) -> None:
        """Record an artifact that could not be collected, and why."""
        if self._closed:
            raise WriterClosed(f"bundle already closed; {name} not recorded")
        if status not in names.STATUSES or status == "ok":
            raise ValueError(f"bad status for a missing artifact: {status}")
        name, reason, extra = self._text(name), self._text(reason), self._value(extra)
        entry = {"name": name, "kind": extra.pop("kind", "file"), "path": None, "status": status,
                 "reason": reason, "bytes": 0}
        entry.update(extra)
        self._files.append(entry)

    @_locked
    def add_tick(self, k: int, t_wall: float, t_mono: float, texts: dict[str, str],
                 failures: dict[str, tuple[str, str]] | None = None, **extra) -> None:
        """Store one sampling tick: series source name -> raw text.

        ``failures`` maps a source that failed this tick to (status, reason).
        """
        failures = {self._text(n): (st, self._text(why)) for n, (st, why) in (failures or {}).items()}
        texts = {self._text(src): self._text(text, names.series(src)) for src, text in texts.items()}
        extra = self._value(extra)
        rec = {"k": k, "t": t_wall, "mono": t_mono, **extra,
               "texts": texts, "failures": {n: list(v) for n, v in failures.items()}}
        self._member(names.tick_path(k), json.dumps(rec, separators=(",", ":")).encode())
        for src, text in texts.items():
            self._agg(names.series(src), "series", "ticks/*.json").add(text.encode("utf-8", "surrogateescape"))
        for src, (status, reason) in failures.items():
            self._agg(names.series(src), "series", "ticks/*.json").fail(status, reason)

    @_locked
    def add_records(self, name: str, records: list[dict]) -> None:
        """Append a chunk of records (events, log lines) to a stream artifact."""
        records = self._value(records, name) if records else records
        name = self._text(name)
        agg = self._agg(name, "stream", f"streams/{name}/*.jsonl")
        if not records:
            return
        seq = self._stream_seq.get(name, 0)
        self._stream_seq[name] = seq + 1
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        self._member(names.stream_path(name, seq), data)
        agg.add(data, len(records))

    @_locked
    def declare_stream(self, name: str, *, status: str = "ok", reason: str | None = None, **extra) -> None:
        """Make a stream artifact exist (even with no records) and set its status."""
        if self._closed:
            raise WriterClosed(f"bundle already closed; {name} not recorded")
        name, reason, extra = self._text(name), self._text(reason), self._value(extra)
        agg = self._agg(name, "stream", f"streams/{name}/*.jsonl")
        agg.entry["status"] = status
        if reason:
            agg.entry["reason"] = reason
        agg.entry.update(extra)

    def _agg(self, name: str, kind: str, path: str) -> _Aggregate:
        agg = self._aggs.get(name)
        if agg is None:
            agg = self._aggs[name] = _Aggregate(name, kind, path)
        return agg

    # -- closing -------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def merge_manifest(self, key: str, **fields) -> None:
        """Merge fields into a dict-valued manifest field (thread-safe)."""
        with self._lock:
            value = dict(self.manifest.get(key) or {})
            value.update(fields)
            self.manifest[key] = value

    def _release_reserve(self) -> None:
        # Give back what was allocated beyond the end of the archive. ext4
        # ignores a hole punched past EOF but frees preallocated blocks on a
        # truncate to the same size; tmpfs does the opposite. Do both.
        if self._alloc_end:
            size = self._fh.tell()
            if self._alloc_end > size:
                try:
                    _allocate(self._fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, size,
                              self._alloc_end - size)
                except OSError:
                    pass
                try:
                    os.ftruncate(self._fd, size)
                except OSError:
                    pass
                self._alloc_end = 0

    @_locked
    def close(self, **final) -> str:
        """Write the final manifest and the tar trailer, then rename.

        Returns the path of the archive: the final name when the manifest
        could be written, the ``.partial`` name otherwise.
        """
        if self._closed:
            return self.final_path
        self._closed = True
        self.manifest.update(final)
        ok = False
        if self._broken is None:
            try:
                self._member(names.MANIFEST, self._manifest_bytes(), reserve_ok=True)
                self._zw.write(b"\0" * (2 * _BLOCK))
                self._zw.flush(zstandard.FLUSH_FRAME)
                ok = True
            except OSError:
                ok = False
        try:
            self._release_reserve()
        except (OSError, ValueError):
            pass
        try:
            self._zw.close()
        except OSError:
            ok = False
        try:
            self._fh.close()
        except OSError:
            ok = False
        if not ok:
            return self.partial_path
        # link + unlink rather than rename: never replaces a file that
        # appeared at the final name meanwhile.
        try:
            os.link(self.partial_path, self.final_path)
        except FileExistsError:
            return self.partial_path
        except OSError:
            os.rename(self.partial_path, self.final_path)
            return self.final_path
        os.unlink(self.partial_path)
        return self.final_path

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close(complete=exc[0] is None and self.manifest.get("complete", False))


