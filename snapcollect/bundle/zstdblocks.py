"""Decompressed bytes of a file of concatenated zstd frames, one block at a time.

A zstd block never decompresses to more than 128 KiB (RFC 8878, 3.1.1.2.4:
Block_Maximum_Size), yet 4 bytes of input (an RLE block) can give those
128 KiB, so a 96 KB file can hold gigabytes. ``decompressobj`` returns
everything one call's input yields, and zstandard's ``stream_reader``
drops the last blocks when the input ends inside a frame (what a killed
collector leaves). This module splits the input at block boundaries
itself and hands zstandard one block per call: memory per call is
bounded by the block limit, and a cut file yields everything up to its
last whole block.

Frame layout (RFC 8878, 3.1.1): magic ``28 b5 2f fd``, a frame header
descriptor byte (bits 7-6 frame content size flag, bit 5 single segment,
bit 2 checksum, bits 1-0 dictionary id flag), an optional window
descriptor, dictionary id and content size, then blocks, each with a
3-byte little-endian header (bit 0 last block, bits 2-1 type: raw, RLE,
compressed, reserved; bits 23-3 size) and, after the last block, a 4-byte
checksum when the flag says so. Skippable frames (magic ``5? 2a 4d 18``,
a 4-byte size, data) are passed over.
"""

from __future__ import annotations

import zstandard

MAGIC = b"\x28\xb5\x2f\xfd"
BLOCK_MAX = 128 * 1024
# The writer uses level 3 (window 2 MiB at most); 32 MiB still reads
# bundles repacked with ``zstd -19`` and refuses frames that would make
# zstandard allocate up to 2 GiB for a window.
MAX_WINDOW = 32 * 1024 * 1024
_READ = 256 * 1024


class ZstdFormatError(Exception):
    """The input is not, or stops being, a zstd stream."""


class ZstdBlocks:
    """``read(n)``: up to n decompressed bytes (b"" at the end).

    ``cut`` tells, once the end is reached, whether the input ended
    inside a frame.
    """

    def __init__(self, fh):
        self._fh = fh
        self._in = bytearray()
        self._in_pos = 0
        self._eof = False
        self._dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        self._d = None
        self._state = "frame"  # "frame" (expecting a frame start), "block", "checksum"
        self._checksum = False
        self._out = b""
        self._out_pos = 0
        self.cut = False
        self.done = False

    # -- input ---------------------------------------------------------

    def _need(self, n: int) -> bool:
        """True when ``n`` input bytes are buffered; False at end of input."""
        while len(self._in) - self._in_pos < n:
            if self._eof:
                return False
            chunk = self._fh.read(_READ)
            if not chunk:
                self._eof = True
                return False
            if self._in_pos:
                del self._in[:self._in_pos]
                self._in_pos = 0
            self._in += chunk
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._in[self._in_pos:self._in_pos + n])
        self._in_pos += n
        return data

    def _peek(self, n: int) -> bytes:
        return bytes(self._in[self._in_pos:self._in_pos + n])

    # -- frames and blocks -----------------------------------------------

    def _next_output(self) -> bytes | None:
        """The next piece of output (maybe empty); None at the end."""
        while True:
            if self._state == "frame":
                if not self._need(1):
                    self.done = True
                    return None
                if not self._need(4):
                    return self._end_cut()
                magic = self._peek(4)
                if magic[1:] == b"\x2a\x4d\x18" and magic[0] & 0xF0 == 0x50:
                    if not self._need(8):
                        return self._end_cut()
                    size = int.from_bytes(self._peek(8)[4:], "little")
                    if not self._need(8 + size):
                        return self._end_cut()
                    self._take(8 + size)
                    continue
                if magic != MAGIC:
                    raise ZstdFormatError("not a zstd frame where one should start")
                if not self._need(5):
                    return self._end_cut()
                fhd = self._peek(5)[4]
                if fhd & 0x08:
                    raise ZstdFormatError("zstd frame header has its reserved bit set")
                single = bool(fhd & 0x20)
                fcs = (0 if not single else 1, 2, 4, 8)[fhd >> 6]
                did = (0, 1, 2, 4)[fhd & 0x03]
                header = 5 + (0 if single else 1) + did + fcs
                if not self._need(header):
                    return self._end_cut()
                self._checksum = bool(fhd & 0x04)
                self._d = self._dctx.decompressobj()
                out = self._feed(self._take(header))
                self._state = "block"
                return out
            if self._state == "block":
                if not self._need(3):
                    return self._end_cut()
                head = int.from_bytes(self._peek(3), "little")
                last, kind, size = head & 1, (head >> 1) & 3, head >> 3
                if kind == 3:
                    raise ZstdFormatError("zstd block of the reserved type")
                length = 1 if kind == 1 else size
                if size > BLOCK_MAX:
                    raise ZstdFormatError(f"zstd block of {size:,} bytes, over the {BLOCK_MAX:,} limit")
                if not self._need(3 + length):
                    return self._end_cut()
                out = self._feed(self._take(3 + length))
                if last:
                    self._state = "checksum" if self._checksum else "frame"
                    if not self._checksum:
                        self._d = None
                return out
            # checksum
            if not self._need(4):
                return self._end_cut()
            out = self._feed(self._take(4))
            self._state, self._d = "frame", None
            return out

    def _feed(self, data: bytes) -> bytes:
        try:
            return self._d.decompress(data)
        except zstandard.ZstdError as exc:
            raise ZstdFormatError(f"zstd: {exc}") from None

    def _end_cut(self) -> None:
        self.cut = True
        self.done = True
        return None

    def read(self, n: int) -> bytes:
        while self._out_pos >= len(self._out):
            if self.done:
                return b""
            piece = self._next_output()
            if piece is None:
                return b""
            self._out, self._out_pos = piece, 0
        data = self._out[self._out_pos:self._out_pos + n]
        self._out_pos += len(data)
        return data


__all__ = ["MAX_WINDOW", "ZstdBlocks", "ZstdFormatError"]
