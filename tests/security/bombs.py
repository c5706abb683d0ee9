"""zstd bombs of every shape the hub must refuse cheaply: RLE blocks (zeros), compressed blocks
(a repeated random pattern), an honest header declaring the size, a header lying about it, and a
bomb behind a valid first frame."""

from __future__ import annotations

import random
from collections.abc import Iterator

import zstandard

MiB = 1024 * 1024
GiB = 1024 * MiB
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _blocks(total: int, block: bytes) -> Iterator[bytes]:
    for _ in range(total // len(block)):
        yield block


def _stream(total: int, block: bytes, size: int = -1) -> bytes:
    """One zstd frame of `total` bytes of `block` repeated; the header declares `size` (-1:
    nothing, as a streaming compressor writes it)."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj(size=size)
    return b"".join(compressor.compress(b) for b in _blocks(total, block)) + compressor.flush()


def zeros_bomb(expanded: int) -> bytes:
    """Zeros: libzstd writes RLE blocks (4 bytes per 128 KiB), ~32 KB per GiB."""
    return _stream(expanded, bytes(4 * MiB))


PATTERN = random.Random(13).randbytes(4096) * 1024  # 4 MiB of a repeated random 4 KiB


def pattern_bomb(expanded: int) -> bytes:
    """A repeated random pattern: compressed blocks (matches), ~100 KB per GiB, nothing in
    the block headers says how much each block expands."""
    return _stream(expanded, PATTERN)


def honest_bomb(expanded: int) -> bytes:
    """A frame whose header declares its true size."""
    return _stream(expanded, PATTERN, size=expanded)


def lying_header(frame: bytes, declared: int) -> bytes:
    """`frame` (a streaming frame, no content size) rewritten to declare `declared` bytes."""
    assert frame[:4] == ZSTD_MAGIC
    fhd = frame[4]
    assert fhd >> 6 == 0 and not fhd & 0x20, "expects a frame without a content size"
    dict_bytes = (0, 1, 2, 4)[fhd & 3]
    head = 6 + dict_bytes  # magic, descriptor, window byte, dictionary id
    return (ZSTD_MAGIC + bytes([0x80 | (fhd & 0x3F)]) + frame[5:head]
            + declared.to_bytes(4, "little") + frame[head:])


def behind_a_valid_frame(bomb: bytes) -> bytes:
    """A small valid frame, then the bomb as a second frame."""
    return zstandard.ZstdCompressor().compress(b"\x90") + bomb
