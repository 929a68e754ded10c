"""User and kernel stack symbolization without bcc, in bounded memory.

The interface of symbols.Symbolizer (bcc's symbol caches), for the reader
process, which does not import bcc:

- ``warm(tgid)`` snapshots /proc/PID/maps when a process is first seen
  (and again after an exec: /proc/PID/exe changed), keeping only its
  executable file mappings. A user address can only be placed while its
  process lives; the snapshot is what lets it be placed later.
- ``user_stack`` places each address in a mapping (file offset = address
  - start + offset) and asks the mapped file for the function holding it
  (elfsyms.py: one streaming pass over .symtab/.dynsym per file for the
  addresses needed, the PT_LOAD bias applied), and, for a stripped file,
  its separate debug file by build id (/usr/lib/debug/.build-id), as bcc
  does. The file is opened through
  /proc/PID/map_files/START-END while the process lives (the very file
  mapped, even if deleted or replaced), else through its path. Names are
  cached per (file, address).
- An address in a mapping without a symbol gives ``[module]`` (perf's
  convention, as bcc gives it); outside any mapping ``[unknown]``. C++
  names stay mangled (bcc demangles them).
- ``kernel_stack`` through kallsyms.py.
- ``leaf_caller`` checks (and caches) the word found at the user SP of a fault
  (leaf_frame.py) against the snapshot and the mapped file's bytes just
  before it (a read of 8 bytes, cached per (file, offset)), and names it
  when it is the return address into a frameless leaf's caller.

Stack tables are read through ``table.addresses(stack_id)`` (fdmaps.py).
"""

from __future__ import annotations

import bisect
import os

from snapcollect.collect.bpf import leaf_frame
from snapcollect.collect.bpf.elfsyms import Elf, ElfError
from snapcollect.collect.bpf.folded import UNKNOWN
from snapcollect.collect.bpf.kallsyms import KernelSymbols

MAX_PROCESSES = 4096
MAX_MAPPINGS = 4096            # per process
MAX_REFRESHES = 3              # per process: bounds the cost of a process mapping code all the time
MAX_NAMES = 50_000             # (file, address) -> name entries kept: ~8 MB at most
MAX_CODE = 20_000              # (file, offset) -> the bytes before it, for leaf_caller
MAX_LEAF = 50_000              # (stack map, tgid, stack id, SP word) -> leaf_caller's answer
MAX_MAPS_BYTES = 4 << 20       # of one /proc/PID/maps
DEBUG_DIRS = ("/usr/lib/debug",)


def debug_file(build_id: str | None) -> str | None:
    """The separate debug file of a build id, when installed."""
    if not build_id or len(build_id) < 3:
        return None
    for root in DEBUG_DIRS:
        path = os.path.join(root, ".build-id", build_id[:2], build_id[2:] + ".debug")
        if os.path.isfile(path):
            return path
    return None


def _exe_id(tgid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{tgid}/exe")
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Mapping:
    __slots__ = ("start", "end", "offset", "path", "file_key")

    def __init__(self, start, end, offset, path, file_key):
        self.start, self.end, self.offset, self.path, self.file_key = start, end, offset, path, file_key


def read_maps(tgid: int) -> list[Mapping]:
    """The executable file mappings of a process, by start address."""
    out = []
    with open(f"/proc/{tgid}/maps", "rb") as fh:
        text = fh.read(MAX_MAPS_BYTES)
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or b"x" not in parts[1]:
            continue
        path = parts[5].strip()
        if not path.startswith(b"/"):
            continue          # anonymous, [vdso], JIT code: no file to read
        try:
            lo, hi = (int(x, 16) for x in parts[0].split(b"-"))
            dev_major, dev_minor = (int(x, 16) for x in parts[3].split(b":"))
            inode = int(parts[4])
            offset = int(parts[2], 16)
        except ValueError:
            continue
        out.append(Mapping(lo, hi, offset, path.decode("utf-8", "surrogateescape"),
                           (dev_major, dev_minor, inode)))
        if len(out) >= MAX_MAPPINGS:
            break
    out.sort(key=lambda m: m.start)
    return out


class ProcSymbolizer:
    def __init__(self, max_processes: int = MAX_PROCESSES):
        self._procs: dict[int, tuple[list[Mapping], list[int], tuple[int, int] | None]] = {}
        self._max = max_processes
        self.warmed = 0
        self.not_warmed = 0
        self.freed = 0
        self._resolved: dict[tuple[str, int, int], list[str]] = {}
        self._refreshes: dict[int, int] = {}
        self._gone: set[int] = set()
        self._names: dict[tuple, str | None] = {}    # (file_key, file offset) -> name or None
        self._elf_bad: set[tuple] = set()
        self._code: dict[tuple, bytes | None] = {}   # (file_key, file offset) -> bytes before it
        self._leaf: dict[tuple, tuple[str | None, str]] = {}   # (tgid, stack id, word) -> answer
        self._kernel = KernelSymbols()

    # -- processes ---------------------------------------------------------

    def warm(self, tgid: int) -> None:
        exe = _exe_id(tgid)
        if exe is None:
            return
        old = self._procs.get(tgid)
        if old is not None and old[2] == exe:
            return
        if old is None and len(self._procs) >= self._max:
            self.not_warmed += 1
            return
        maps = read_maps(tgid)
        self._procs[tgid] = (maps, [m.start for m in maps], exe)
        self.warmed += 1

    def _refresh(self, tgid: int) -> bool:
        if self._refreshes.get(tgid, 0) >= MAX_REFRESHES or _exe_id(tgid) is None:
            return False
        self._refreshes[tgid] = self._refreshes.get(tgid, 0) + 1
        self._procs.pop(tgid, None)
        try:
            self.warm(tgid)
        except OSError:
            return False
        return tgid in self._procs

    def _mapping(self, tgid: int, addr: int) -> Mapping | None:
        entry = self._procs.get(tgid)
        if entry is None:
            return None
        maps, starts, _exe = entry
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < maps[i].end:
            return maps[i]
        return None

    # -- files ---------------------------------------------------------------

    def _open(self, tgid: int, m: Mapping):
        try:
            return open(f"/proc/{tgid}/map_files/{m.start:x}-{m.end:x}", "rb")
        except OSError:
            return open(m.path, "rb")

    def _file_names(self, tgid: int, m: Mapping, offsets: set[int]) -> None:
        """Fill the name cache for ``offsets`` (file offsets) of one mapped file."""
        if m.file_key in self._elf_bad:
            for off in offsets:
                self._names[(m.file_key, off)] = None
            return
        try:
            with self._open(tgid, m) as fh:
                elf = Elf(fh)
                vaddr = {off: elf.file_vaddr(off) for off in offsets}
                wanted = [v for v in vaddr.values() if v is not None]
                found = elf.lookup(wanted)
                debug = None if elf.has_symtab() else debug_file(elf.build_id())
            if debug is not None and wanted:
                # a stripped file: its debug file's .symtab, where there is one, names more
                with open(debug, "rb") as dfh:
                    found.update(Elf(dfh).lookup(wanted))
        except (OSError, ElfError, ValueError, OverflowError):
            self._elf_bad.add(m.file_key)
            found, vaddr = {}, {}
        if len(self._names) > MAX_NAMES:
            self._names.clear()
        for off in offsets:
            name = found.get(vaddr.get(off))
            self._names[(m.file_key, off)] = name.decode("utf-8", "surrogateescape") if name else None

    def _frames(self, tgid: int, addrs: list[int]) -> list[tuple[str, bool]]:
        placed = [(a, self._mapping(tgid, a)) for a in addrs]
        todo: dict[tuple, tuple[Mapping, set[int]]] = {}
        for a, m in placed:
            if m is not None:
                off = a - m.start + m.offset
                if (m.file_key, off) not in self._names:
                    todo.setdefault(m.file_key, (m, set()))[1].add(off)
        for m, offsets in todo.values():
            self._file_names(tgid, m, offsets)
        out = []
        for a, m in placed:
            if m is None:
                out.append((UNKNOWN, False))
                continue
            name = self._names.get((m.file_key, a - m.start + m.offset))
            out.append((name, True) if name else ("[%s]" % os.path.basename(m.path), True))
        return out

    # -- the Symbolizer interface ------------------------------------------------

    def user_frame(self, tgid: int, addr: int) -> str:
        if tgid not in self._procs:
            try:
                self.warm(tgid)
            except OSError:
                return UNKNOWN
        return self._frames(tgid, [addr])[0][0]

    def user_stack(self, table, table_name: str, tgid: int, stack_id: int) -> list[str]:
        """Frames innermost first; cached per (table, tgid, stack id)."""
        key = (table_name, tgid, stack_id)
        got = self._resolved.get(key)
        if got is None:
            addrs = table.addresses(stack_id)
            if tgid not in self._procs:
                try:
                    self.warm(tgid)
                except OSError:
                    pass
            found = self._frames(tgid, addrs)
            if not all(ok for _, ok in found) and self._refresh(tgid):
                found = self._frames(tgid, addrs)
            got = [name for name, _ in found]
            self._resolved[key] = got
        return got

    def code_before(self, tgid: int, m: Mapping, addr: int, n: int) -> bytes | None:
        """The ``n`` bytes of the mapped file before ``addr`` (fewer at the
        file's start), None when the file cannot be read."""
        off = addr - m.start + m.offset
        key = (m.file_key, off)
        if key in self._code:
            return self._code[key]
        start = max(off - n, 0)
        try:
            with self._open(tgid, m) as fh:
                fh.seek(start)
                got = fh.read(off - start)
            got = got if len(got) == off - start else None
        except (OSError, ValueError, OverflowError):
            got = None
        if len(self._code) > MAX_CODE:
            self._code.clear()
        self._code[key] = got
        return got

    def _same_function(self, tgid: int, target: int, ip: int) -> bool:
        """False when ``target`` and ``ip`` are both in named functions
        (an ELF symbol, not a module placeholder) and the names differ."""
        (a, a_ok), (b, b_ok) = self._frames(tgid, [target, ip])
        named = a_ok and b_ok and not a.startswith("[") and not b.startswith("[")
        return not named or a == b

    def leaf_checked(self, table_name: str, tgid: int, stack_id: int, candidate: int) -> bool:
        return (table_name, tgid, stack_id, candidate) in self._leaf

    def leaf_caller(self, table, table_name: str, tgid: int, stack_id: int,
                    candidate: int) -> tuple[str | None, str]:
        """(frame name or None, leaf_frame outcome) for the SP word
        ``candidate`` of a stack of ``table`` (named ``table_name``: stack
        ids of two stack maps are not the same stacks); cached (up to
        MAX_LEAF answers), so that a word checked while its process lived
        still counts after it exited."""
        key = (table_name, tgid, stack_id, candidate)
        got = self._leaf.get(key)
        if got is None:
            got = self._leaf_caller(table, tgid, stack_id, candidate)
            if len(self._leaf) < MAX_LEAF and got[1] != leaf_frame.PROCESS_GONE:
                self._leaf[key] = got
        return got

    def _leaf_caller(self, table, tgid: int, stack_id: int, candidate: int) -> tuple[str | None, str]:
        if not candidate:
            return None, leaf_frame.NO_WORD
        try:
            walked = table.addresses(stack_id)
        except (KeyError, OSError):
            return None, leaf_frame.NO_STACK
        if tgid not in self._procs:
            try:
                self.warm(tgid)
            except OSError:
                pass
        if tgid not in self._procs:
            return None, leaf_frame.PROCESS_GONE
        outcome = self._decide(tgid, candidate, walked)
        # A snapshot older than the mapping (a library mapped later, or an
        # exec of the same executable, which keeps the exe's identity) is
        # read again, within the process's refresh budget.
        if outcome == leaf_frame.NOT_EXECUTABLE and self._refresh(tgid):
            outcome = self._decide(tgid, candidate, walked)
        if outcome != leaf_frame.RECOVERED:
            return None, outcome
        return self._frames(tgid, [candidate])[0][0], outcome

    def _decide(self, tgid: int, candidate: int, walked: list[int]) -> str:
        return leaf_frame.decide(candidate, walked, lambda a: self._mapping(tgid, a),
                                 lambda m, a, n: self.code_before(tgid, m, a, n),
                                 lambda target, ip: self._same_function(tgid, target, ip))

    def is_resolved(self, table_name: str, tgid: int, stack_id: int) -> bool:
        return (table_name, tgid, stack_id) in self._resolved

    def kernel_stack(self, table, stack_id: int) -> list[str]:
        key = ("kernel", 0, stack_id)
        got = self._resolved.get(key)
        if got is None:
            got = self._kernel.resolve(table.addresses(stack_id))
            self._resolved[key] = got
        return got

    def forget_dead(self, keep: set[int] = frozenset()) -> int:
        """As symbols.Symbolizer.forget_dead: the snapshots of processes gone
        at two passes in a row, except ``keep``."""
        gone = {tgid for tgid in self._procs if _exe_id(tgid) is None}
        ripe = (gone & self._gone) - keep
        for tgid in ripe:
            self._procs.pop(tgid, None)
            self._refreshes.pop(tgid, None)
        self._gone = gone - ripe
        self.freed += len(ripe)
        return len(ripe)

    def close(self) -> None:
        self._procs.clear()
        self._names.clear()
        self._code.clear()
        self._leaf.clear()
