"""Function names of addresses in one ELF file, read from .symtab/.dynsym.

``lookup(fh, vaddrs)`` makes one streaming pass over the file's symbol
tables for the addresses asked (virtual addresses as the ELF file gives
them, see ``file_vaddr``) and keeps only the best symbol of each: memory
grows with the addresses asked, not with the file's symbol count. A
symbol counts when it is a function (STT_FUNC, STT_GNU_IFUNC) whose
[value, value + size) holds the address; of several, the one starting
last (the innermost), and of aliases at one start a global or weak one
before a local one, else the first in the table (bcc's choice among
aliases is not defined: any of them names the same code). Names are
bytes, as in the file.

``file_vaddr`` turns a file offset (address - mapping start + mapping
offset, from /proc/PID/maps) into the ELF's virtual address through the
PT_LOAD segment that holds it: the bias of PIE executables and shared
objects. ``build_id`` names the separate debug file
(/usr/lib/debug/.build-id/XX/YYYY.debug, as libc6-dbg installs it), whose
.symtab has the static functions a stripped library lacks, at the same
addresses. Anything malformed raises ElfError.
"""

from __future__ import annotations

import bisect
import struct

ELF_MAGIC = b"\x7fELF"
SHT_SYMTAB, SHT_NOTE, SHT_DYNSYM = 2, 7, 11
NT_GNU_BUILD_ID = 3
MAX_NOTES = 1 << 16            # bytes of one note section read
PT_LOAD = 1
STT_FUNC, STT_GNU_IFUNC = 2, 10
STB_LOCAL = 0
SYM_CHUNK = 4096               # symbols read at a time
MAX_SECTIONS = 65536
MAX_NAME = 4096


class ElfError(ValueError):
    pass


class Elf:
    def __init__(self, fh):
        self.fh = fh
        ident = self._read(0, 64)
        if ident[:4] != ELF_MAGIC:
            raise ElfError("not an ELF file")
        self.is64 = ident[4] == 2
        self.end = "<" if ident[5] == 1 else ">"
        e = self.end
        if self.is64:
            (self.type, _m, _v, _entry, phoff, shoff, _f, _eh, phentsize, phnum, shentsize, shnum,
             _shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", ident, 16)
        else:
            (self.type, _m, _v, _entry, phoff, shoff, _f, _eh, phentsize, phnum, shentsize, shnum,
             _shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", ident, 16)
        if shnum > MAX_SECTIONS or phnum > MAX_SECTIONS:
            raise ElfError("too many sections")
        self.loads = []            # (p_offset, p_vaddr, p_filesz)
        raw = self._read(phoff, phentsize * phnum) if phnum else b""
        for i in range(phnum):
            if self.is64:
                ptype, _fl, off, vaddr, _pa, filesz = struct.unpack_from(e + "IIQQQQ", raw, i * phentsize)
            else:
                ptype, off, vaddr, _pa, filesz = struct.unpack_from(e + "IIIII", raw, i * phentsize)
            if ptype == PT_LOAD:
                self.loads.append((off, vaddr, filesz))
        self.sections = []         # (type, offset, size, link, entsize)
        raw = self._read(shoff, shentsize * shnum) if shnum else b""
        for i in range(shnum):
            if self.is64:
                _n, stype, _fl, _a, off, size, link, _info, _al, entsize = struct.unpack_from(
                    e + "IIQQQQIIQQ", raw, i * shentsize)
            else:
                _n, stype, _fl, _a, off, size, link, _info, _al, entsize = struct.unpack_from(
                    e + "IIIIIIIIII", raw, i * shentsize)
            self.sections.append((stype, off, size, link, entsize))

    def _read(self, off: int, n: int) -> bytes:
        self.fh.seek(off)
        data = self.fh.read(n)
        if len(data) < n:
            raise ElfError("truncated ELF file")
        return data

    def has_symtab(self) -> bool:
        return any(s[0] == SHT_SYMTAB for s in self.sections)

    def build_id(self) -> str | None:
        """The GNU build id (hex), which names the file's separate debug file."""
        e = self.end
        for stype, off, size, _link, _entsize in self.sections:
            if stype != SHT_NOTE:
                continue
            raw = self._read(off, min(size, MAX_NOTES))
            pos = 0
            while pos + 12 <= len(raw):
                namesz, descsz, ntype = struct.unpack_from(e + "III", raw, pos)
                name_end = pos + 12 + ((namesz + 3) & ~3)
                desc_end = name_end + ((descsz + 3) & ~3)
                if desc_end > len(raw):
                    break
                if ntype == NT_GNU_BUILD_ID and raw[pos + 12:pos + 12 + namesz].rstrip(b"\0") == b"GNU":
                    return raw[name_end:name_end + descsz].hex()
                pos = desc_end
        return None

    def file_vaddr(self, file_offset: int) -> int | None:
        for off, vaddr, filesz in self.loads:
            if off <= file_offset < off + filesz:
                return file_offset - off + vaddr
        return None

    def lookup(self, vaddrs) -> dict[int, bytes]:
        """address -> function name, for those of ``vaddrs`` a symbol holds."""
        wanted = sorted(set(vaddrs))
        best: dict[int, tuple[int, int, int, bool]] = {}    # addr -> (start, strtab, name offset, local)
        fmt = self.end + ("IBBHQQ" if self.is64 else "IIIBBH")
        step = struct.calcsize(fmt)
        for si, (stype, off, size, link, entsize) in enumerate(self.sections):
            if stype not in (SHT_SYMTAB, SHT_DYNSYM) or entsize != step or link >= len(self.sections):
                continue
            count = size // step
            for first in range(0, count, SYM_CHUNK):
                n = min(SYM_CHUNK, count - first)
                chunk = self._read(off + first * step, n * step)
                for sym in struct.iter_unpack(fmt, chunk):
                    if self.is64:
                        name, info, _other, shndx, value, ssize = sym
                    else:
                        name, value, ssize, info, _other, shndx = sym
                    if (info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC) or not shndx or not ssize:
                        continue
                    local = (info >> 4) == STB_LOCAL
                    i = bisect.bisect_left(wanted, value)
                    while i < len(wanted) and wanted[i] < value + ssize:
                        addr = wanted[i]
                        got = best.get(addr)
                        # innermost first; at one start, the exported name
                        # (__cxa_atexit rather than its alias __GI___cxa_atexit)
                        if got is None or value > got[0] or (value == got[0] and got[3] and not local):
                            best[addr] = (value, link, name, local)
                        i += 1
        return {addr: self._name(link, name) for addr, (_v, link, name, _local) in best.items()}

    def _name(self, strtab: int, offset: int) -> bytes:
        _t, off, size, _l, _e = self.sections[strtab]
        if offset >= size:
            return b""
        self.fh.seek(off + offset)
        raw = self.fh.read(min(MAX_NAME, size - offset))
        return raw.split(b"\0", 1)[0]
