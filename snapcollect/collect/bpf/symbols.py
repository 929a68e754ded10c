"""User and kernel stack symbolization through bcc's symbol caches.

A user address can only be symbolized while its process lives: bcc reads
/proc/PID/maps when a process's cache is created. The session creates a
cache as soon as the BPF program reports a new process (or an exec: the
comm changed), and resolves the stacks it has so far every second or so,
so short-lived processes keep their names. Reads /proc/PID/exe (to notice
an exec) and, through libbcc, /proc/PID/maps and the mapped ELF files.

libbcc prints "WARNING: Couldn't find .text section in /memfd:..." on
fd 2 for mappings without one (JIT code, memfds): fd 2 goes into a
temporary file around the libbcc calls only, and whatever else was
written there meanwhile is passed on to stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading

from snapcollect.collect.bpf.folded import UNKNOWN

MAX_PROCESSES = 4096
MAX_REFRESHES = 3     # per process: bounds the cost of a process mapping code all the time


NOISE = (b"Couldn't find .text section",)
_capture: dict = {}        # the one capture in force: {"saved": fd, "file": tmp}
_capture_lock = threading.RLock()


def _release_capture() -> None:
    """Put fd 2 back and write what others wrote meanwhile, less libbcc's noise."""
    cap = _capture.pop("active", None)
    if cap is None:
        return
    os.dup2(cap["saved"], 2)
    os.close(cap["saved"])
    f = cap["file"]
    try:
        f.seek(0)
        kept = [ln for ln in f.read().splitlines(keepends=True) if not any(n in ln for n in NOISE)]
        if kept:
            os.write(2, b"".join(kept))
    except OSError:
        pass
    finally:
        f.close()


@contextlib.contextmanager
def quiet_stderr():
    """fd 2 into a temporary file for the duration (libbcc writes there
    from C); lines that are not libbcc's noise, e.g. a message another
    thread printed meanwhile, are written to the real stderr afterwards,
    or at exit if the process ends first."""
    with _capture_lock:
        if "active" in _capture:        # nested: the outer one filters
            yield
            return
        try:
            saved = os.dup(2)
            f = tempfile.TemporaryFile()
            os.dup2(f.fileno(), 2)
        except OSError:
            yield
            return
        _capture["active"] = {"saved": saved, "file": f}
        try:
            yield
        finally:
            _release_capture()


atexit.register(_release_capture)


def walk(table, stack_id: int) -> list[int]:
    """Addresses of one stack, innermost first (any stack depth; bcc's own
    walker assumes 127 frames)."""
    out = []
    for addr in table[table.Key(stack_id)].ip:
        if not addr:
            break
        out.append(int(addr))
    return out


def _exe_id(tgid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{tgid}/exe")
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Symbolizer:
    def __init__(self, bcc, max_processes: int = MAX_PROCESSES):
        self._bcc = bcc
        self._caches: dict[int, tuple[object, tuple[int, int] | None]] = {}
        self._max = max_processes
        self.warmed = 0
        self.not_warmed = 0       # over the cap: these may show [unknown]
        self._resolved: dict[tuple[str, int, int], list[str]] = {}
        self._refreshes: dict[int, int] = {}
        self._gone: set[int] = set()
        self.freed = 0            # caches of exited processes freed during the run

    def warm(self, tgid: int) -> None:
        """Make sure a cache for ``tgid`` exists and matches its current image."""
        exe = _exe_id(tgid)
        if exe is None:
            return      # gone already, or a kernel thread: nothing to read
        old = self._caches.get(tgid)
        if old is not None and old[1] == exe:
            return
        if old is None and len(self._caches) >= self._max:
            self.not_warmed += 1
            return
        if old is not None:       # exec'd: the old maps are wrong now
            self._free(tgid, old[0])
        with quiet_stderr():
            cache = self._bcc.SymbolCache(tgid)
            # Creating the cache reads /proc/PID/maps; one lookup makes
            # libbcc load the module list now rather than at first use.
            cache.resolve(0, True)
        self._caches[tgid] = (cache, exe)
        self.warmed += 1

    def _free(self, tgid: int, cache) -> None:
        try:
            self._bcc.libbcc.lib.bcc_free_symcache(cache.cache, tgid)
        except Exception:  # noqa: BLE001 - freeing is best effort
            pass

    def _lookup(self, tgid: int, addr: int) -> tuple[str, bool]:
        """(frame name, whether the address fell in a known mapping)."""
        entry = self._caches.get(tgid)
        if entry is None:
            self.warm(tgid)
            entry = self._caches.get(tgid)
            if entry is None:
                return UNKNOWN, False
        name, _offset, module = entry[0].resolve(addr, True)
        if name:
            # Symbol and file names are bytes; keep those that are not UTF-8.
            return name.decode("utf-8", "surrogateescape"), True
        if module:
            # perf's convention: the module when the symbol is unknown
            return "[%s]" % os.path.basename(module.decode("utf-8", "surrogateescape")), True
        return UNKNOWN, False

    def user_frame(self, tgid: int, addr: int) -> str:
        return self._lookup(tgid, addr)[0]

    def _refresh(self, tgid: int) -> bool:
        """Re-read the maps of a live process (a library mapped after the
        cache was made, typically libc after the loader's first brk)."""
        if self._refreshes.get(tgid, 0) >= MAX_REFRESHES or _exe_id(tgid) is None:
            return False
        self._refreshes[tgid] = self._refreshes.get(tgid, 0) + 1
        old = self._caches.pop(tgid, None)
        if old is not None:
            self._free(tgid, old[0])
        self.warm(tgid)
        return tgid in self._caches

    def user_stack(self, table, table_name: str, tgid: int, stack_id: int) -> list[str]:
        """Frames innermost first; cached per (table, tgid, stack id)."""
        key = (table_name, tgid, stack_id)
        got = self._resolved.get(key)
        if got is None:
            addrs = walk(table, stack_id)
            with quiet_stderr():
                found = [self._lookup(tgid, a) for a in addrs]
                if not all(ok for _, ok in found) and self._refresh(tgid):
                    found = [self._lookup(tgid, a) for a in addrs]
            got = [name for name, _ in found]
            self._resolved[key] = got
        return got

    def is_resolved(self, table_name: str, tgid: int, stack_id: int) -> bool:
        return (table_name, tgid, stack_id) in self._resolved

    def kernel_stack(self, table, stack_id: int) -> list[str]:
        key = ("kernel", 0, stack_id)
        got = self._resolved.get(key)
        if got is None:
            got = [self._bcc.BPF.ksym(addr).decode("utf-8", "surrogateescape") for addr in walk(table, stack_id)]
            self._resolved[key] = got
        return got

    def forget_dead(self, keep: set[int] = frozenset()) -> int:
        """Free the caches of processes that were gone at the previous call
        and still are, except ``keep`` (processes with stacks still to
        resolve): every stack they recorded before they exited was in the
        maps when the caller resolved them. Without this, a host that runs
        many short-lived programs fills the BPF process with their symbol
        tables. Returns how many were freed."""
        gone = {tgid for tgid in self._caches if _exe_id(tgid) is None}
        ripe = (gone & self._gone) - keep
        for tgid in ripe:
            cache, _exe = self._caches.pop(tgid)
            self._free(tgid, cache)
            self._refreshes.pop(tgid, None)
        self._gone = gone - ripe
        self.freed += len(ripe)
        return len(ripe)

    def close(self) -> None:
        for tgid, (cache, _exe) in self._caches.items():
            self._free(tgid, cache)
        self._caches.clear()
