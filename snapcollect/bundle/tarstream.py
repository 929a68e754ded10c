"""Tar members read from a byte stream, each bounded before its data is read.

The writer (bundle.writer) emits POSIX ustar headers, with a pax extended
header (typeflag ``x``) before a member whose name is long or not ASCII.
This parser reads exactly that, plus GNU long names (``L``, what GNU tar
writes when someone repacks a bundle) and pax global headers (``g``,
ignored). Other member types (directories, links, devices) are skipped
without being read into memory.

Every header's size is checked against the caps before any of its data
is read, so a header that claims 10 GiB costs nothing. ``tarfile`` cannot
do this: in stream mode it reads a pax header whole, whatever its size,
and keeps every member's TarInfo for the life of the archive (720 MB for
a million empty members).

Header layout (POSIX.1-1988 ustar, 512-byte blocks): name 0..100,
size 124..136 (octal, or base-256 when the first byte has 0x80 set),
checksum 148..156, typeflag 156, magic 257..263, prefix 345..500.
"""

from __future__ import annotations

from typing import Callable, Iterator

from snapcollect.bundle.limits import LimitExceeded, Limits

BLOCK = 512
_CHUNK = 1024 * 1024
REGULAR = (b"0", b"\0", b"7")


class TarFormatError(Exception):
    """The stream is not, or stops being, a tar archive."""


class TarTruncated(EOFError):
    """The stream ended inside a header or a member's data."""


def _number(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:
        # base-256 (GNU / star) for values too large for 11 octal digits
        value = int.from_bytes(field[1:], "big")
        if field[0] & 0x40:
            raise TarFormatError(f"negative {what} in a tar header")
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"tar header {what} is not a number: {text[:20]!r}") from None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156], "checksum")
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == unsigned


def _pax(data: bytes) -> dict[str, str]:
    """pax extended header records: ``<len> <key>=<value>\\n``."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            break
        sp = data.find(b" ", pos, pos + 24)
        if sp < 0:
            raise TarFormatError("pax header record without a length")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise TarFormatError("pax header record length is not a number") from None
        end = pos + length
        if length <= sp - pos + 1 or end > len(data) or data[end - 1:end] != b"\n":
            raise TarFormatError("pax header record length does not fit its header")
        key, eq, value = data[sp + 1:end - 1].partition(b"=")
        if not eq:
            raise TarFormatError("pax header record without '='")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return out


class TarStream:
    """Iterate ``(name, data)`` of the regular members of a tar stream.

    ``read(n)`` returns up to n bytes, b"" at the end. ``offset`` is the
    number of stream bytes consumed so far; ``ended`` tells whether the
    end-of-archive marker was seen.
    """

    def __init__(self, read: Callable[[int], bytes], limits: Limits):
        self._read = read
        self._limits = limits
        self.offset = 0
        self.members = 0
        self.ended = False

    def _exact(self, n: int, where: str) -> bytes:
        parts = []
        left = n
        while left:
            chunk = self._read(min(left, _CHUNK))
            if not chunk:
                raise TarTruncated(f"archive ends inside {where}")
            parts.append(chunk)
            left -= len(chunk)
        self.offset += n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _skip(self, n: int, where: str) -> None:
        while n:
            step = min(n, _CHUNK)
            self._exact(step, where)
            n -= step

    def _reserve(self, name: str, size: int) -> int:
        """Check the caps for a member of ``size`` bytes; its padded length."""
        padded = size + (-size) % BLOCK
        if size > self._limits.max_member_bytes:
            raise LimitExceeded(self._limits.exceeded(
                "max_member_bytes", f"member {name[:80]!r} declares {size:,} bytes"))
        if self.offset + padded > self._limits.max_total_bytes:
            raise LimitExceeded(self._limits.exceeded(
                "max_total_bytes", f"the archive holds more than {self._limits.max_total_bytes:,} bytes"))
        return padded

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        long_name: str | None = None
        pax: dict[str, str] = {}
        while True:
            block = self._read_header()
            if block is None:
                self.ended = True
                return
            if not _checksum_ok(block):
                raise TarFormatError(f"tar header checksum mismatch at byte {self.offset - BLOCK:,}")
            typeflag = block[156:157]
            size = _number(block[124:136], "size")
            name = self._name(block)
            # Extended headers count too: a million of them is as costly
            # as a million members.
            self.members += 1
            if self.members > self._limits.max_members:
                raise LimitExceeded(self._limits.exceeded(
                    "max_members", f"the archive has more than {self._limits.max_members:,} members"))
            if typeflag in (b"x", b"g", b"L"):
                padded = self._reserve(f"{name} (extended header)", size)
                data = self._exact(padded, "an extended header")[:size]
                if typeflag == b"x":
                    pax = _pax(data)
                elif typeflag == b"L":
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            name = pax.get("path") or long_name or name
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise TarFormatError("pax size is not a number") from None
                if size < 0:
                    raise TarFormatError("pax size is negative")
            long_name, pax = None, {}
            padded = self._reserve(name, size)
            if typeflag not in REGULAR:
                self._skip(padded, f"member {name[:80]!r}")
                continue
            data = self._exact(size, f"member {name[:80]!r}")
            self._skip(padded - size, f"member {name[:80]!r}")
            yield name, data

    def _read_header(self) -> bytes | None:
        first = self._read(BLOCK)
        if not first:
            raise TarTruncated("archive ends before its end-of-archive marker")
        block = first if len(first) == BLOCK else first + self._rest(BLOCK - len(first))
        self.offset += BLOCK
        if block.count(0) == BLOCK:
            return None
        return block

    def _rest(self, n: int) -> bytes:
        parts = []
        while n:
            chunk = self._read(n)
            if not chunk:
                raise TarTruncated("archive ends inside a tar header")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    @staticmethod
    def _name(block: bytes) -> str:
        name = block[:100].split(b"\0", 1)[0]
        if block[257:262] == b"ustar":
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        return name.decode("utf-8", "surrogateescape")


__all__ = ["BLOCK", "TarFormatError", "TarStream", "TarTruncated"]
