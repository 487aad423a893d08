"""Deterministic pseudo-random downloads, streamed in 64 KiB chunks, with ``Range`` support.

Chunk ``k`` is a fixed random 64 KiB block XORed with a 64-byte key derived
from ``k`` by BLAKE2b: cheap (two big-int operations per chunk), different for
every chunk, identical in every process, and never the whole file in memory.

    >>> len(chunk(0)) == CHUNK_SIZE and chunk(0) != chunk(1) and chunk(5) == chunk(5)
    True
    >>> b"".join(iter_bytes(CHUNK_SIZE - 2, CHUNK_SIZE + 1)) == chunk(0)[-2:] + chunk(1)[:2]
    True
    >>> parse_range("bytes=0-99", 1000), parse_range("bytes=-10", 1000), parse_range("bytes=990-", 1000)
    ((0, 99), (990, 999), (990, 999))
    >>> parse_range("bytes=1000-", 1000) is UNSATISFIABLE, parse_range("bytes=0-1,5-6", 1000)
    (True, None)
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from typing import Final

__all__ = ["CHUNK_SIZE", "UNSATISFIABLE", "chunk", "iter_bytes", "parse_range"]

CHUNK_SIZE: Final = 64 * 1024
_BLOCK = int.from_bytes(random.Random(0xED6E).randbytes(CHUNK_SIZE), "big")
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

#: Returned by :func:`parse_range` when the range cannot be served (answer 416).
UNSATISFIABLE: Final = (-1, -1)


def chunk(k: int) -> bytes:
    """The ``k``-th 64 KiB chunk of every download."""
    key = hashlib.blake2b(k.to_bytes(8, "big"), digest_size=64).digest()
    return (_BLOCK ^ int.from_bytes(key * (CHUNK_SIZE // 64), "big")).to_bytes(CHUNK_SIZE, "big")


def iter_bytes(start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start..end`` (inclusive) of the stream, in pieces of at most 64 KiB."""
    for k in range(start // CHUNK_SIZE, end // CHUNK_SIZE + 1):
        data = chunk(k)
        lo = max(start - k * CHUNK_SIZE, 0)
        hi = min(end - k * CHUNK_SIZE + 1, CHUNK_SIZE)
        yield data if (lo, hi) == (0, CHUNK_SIZE) else data[lo:hi]


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte positions of a single ``Range: bytes=a-b`` (or ``a-``, ``-n``).

    ``None`` means "ignore the header and send everything" (no header, bad
    syntax, several ranges: RFC 9110 allows ignoring Range). :data:`UNSATISFIABLE`
    means answer 416. ``last`` is clamped to ``size - 1``.
    """
    if not header:
        return None
    m = _RANGE.match(header)
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix: the last n bytes
        n = int(m[2])
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else UNSATISFIABLE
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if first >= size:
        return UNSATISFIABLE
    if last < first:
        return None  # syntactically invalid: ignore
    return first, min(last, size - 1)
