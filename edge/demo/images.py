"""Deterministic PNG images of an exact byte size, generated in pure Python.

Every image the storefront references is listed in :data:`IMAGES` with its
pixel size and its exact file size in bytes (the value pages declare in
``data-edge-bytes``). Bytes are produced on demand by :func:`render` and kept
in a small LRU cache.

Why the PNGs look the way they do:

- Pixels are a smooth two-colour gradient plus 7 bits of seeded grain, so the
  image is recognisably "a picture" but barely compressible: a proxy cannot
  make the byte budget look better than it is by gzip-ing images.
- The zlib stream uses *stored* (uncompressed) deflate blocks written by hand,
  so the file size is pure arithmetic on width and height, identical on every
  zlib build (zlib-ng, system zlib, ...), and the bytes never change.
- To hit an exact byte size the height is chosen to fit and the remainder
  (less than one pixel row) goes into a ``tEXt`` comment chunk.

    >>> spec = IMAGES["logo.png"]
    >>> data = render("logo.png")
    >>> len(data) == spec.bytes, data[:8] == PNG_SIGNATURE
    (True, True)
    >>> len(render("logo.png", width=spec.width // 2)) < spec.bytes // 3
    True
    >>> "nope.png" in IMAGES
    False
"""

from __future__ import annotations

import functools
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass

from edge.demo.catalog import PRODUCTS

__all__ = ["IMAGES", "PNG_SIGNATURE", "ImageSpec", "png_size", "render", "url"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_STORED_BLOCK = 65535
_TEXT_KEYWORD = b"Comment"
# Smallest possible padding chunk: length, type, keyword, NUL separator, CRC.
_MIN_PAD = 4 + 4 + len(_TEXT_KEYWORD) + 1 + 4


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """One image: pixel size, exact file size and the colours of its gradient."""

    name: str
    width: int
    height: int
    bytes: int
    seed: int


def url(name: str, width: int | None = None) -> str:
    """Path the storefront serves an image at.

    >>> url("logo.png"), url("hero-1.png", 210)
    ('/static/img/logo.png', '/static/img/hero-1.png?w=210')
    """
    return f"/static/img/{name}" + (f"?w={width}" if width else "")


def png_size(width: int, height: int) -> int:
    """File size of an unpadded PNG of this size as :func:`render` writes it.

    >>> png_size(1, 1)  # 8 signature + 25 IHDR + 12+15 IDAT + 12 IEND
    72
    """
    raw = height * (3 * width + 1)  # one filter byte per row
    blocks = max(1, -(-raw // _MAX_STORED_BLOCK))
    idat = 2 + raw + 5 * blocks + 4  # zlib header, stored blocks, adler32
    return len(PNG_SIGNATURE) + 25 + 12 + idat + 12


def _fit(width: int, target: int) -> tuple[int, int]:
    """Height and padding bytes that make a ``width``-wide PNG exactly ``target`` bytes."""
    height = max(1, (target - png_size(width, 0)) // (3 * width + 1) + 1)
    while height > 1 and (png_size(width, height) > target or 0 < target - png_size(width, height) < _MIN_PAD):
        height -= 1
    pad = target - png_size(width, height)
    if pad < 0 or 0 < pad < _MIN_PAD:
        raise ValueError(f"cannot make a {width}px wide PNG of exactly {target} bytes")
    return height, pad


def _seed(name: str) -> int:
    # hashlib, not hash(): str hashes are randomised per process.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _registry() -> dict[str, ImageSpec]:
    # name -> (width in px, exact size in bytes). Widths are chosen so the
    # aspect ratio suits the slot (banners wide, thumbnails squarish); CSS
    # scales them to the layout.
    wanted: dict[str, tuple[int, int]] = {
        "logo.png": (72, 5_120),
        "video-poster.png": (216, 80_000),
        "hero-1.png": (420, 148_000),
        "hero-2.png": (420, 136_000),
        "hero-3.png": (420, 162_000),
        "hero-4.png": (420, 124_000),
        "ad-1.png": (300, 52_000),
        "ad-2.png": (300, 64_000),
        "ad-3.png": (300, 44_000),
    }
    for p in PRODUCTS:
        wanted[f"product-{p.id:02d}-thumb.png"] = (72, p.thumb_bytes)
        wanted[f"product-{p.id:02d}-card.png"] = (96, p.card_bytes)
        wanted[f"product-{p.id:02d}-large.png"] = (144, p.large_bytes)
    specs = {}
    for name, (width, target) in wanted.items():
        height, _ = _fit(width, target)
        specs[name] = ImageSpec(name, width, height, target, _seed(name))
    return specs


#: Every image the storefront serves, by file name.
IMAGES: dict[str, ImageSpec] = _registry()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _scanlines(seed: int, width: int, height: int) -> bytes:
    """Raw PNG scanlines (filter byte 0 + RGB): gradient (0..128) + noise (0..127) per byte."""
    rng = random.Random(seed)
    left = [rng.randrange(65) for _ in range(3)]
    right = [rng.randrange(65) for _ in range(3)]
    # Horizontal gradient, 0..64 per channel.
    hrow = bytes(
        left[c] + (right[c] - left[c]) * x // max(1, width - 1) for x in range(width) for c in range(3)
    )
    noise_mask = bytes(b & 0x7F for b in range(256))
    n = 3 * width
    rows = []
    for y in range(height):
        shade = 64 * y // max(1, height - 1)  # vertical gradient, 0..64
        grad = hrow.translate(bytes(min(b + shade, 255) for b in range(256)))
        # Luminance grain (one random value per pixel, same for R, G, B) reads as a
        # photo's film grain rather than coloured confetti, and is still incompressible.
        grain = rng.randbytes(width).translate(noise_mask)
        noise = bytearray(n)
        noise[0::3] = noise[1::3] = noise[2::3] = grain
        # Per byte: grad <= 128 and noise <= 127, so big-int addition never carries
        # between bytes: a fast, exact byte-wise add without a Python pixel loop.
        row = (int.from_bytes(grad, "big") + int.from_bytes(noise, "big")).to_bytes(n, "big")
        rows.append(b"\x00" + row)
    return b"".join(rows)


def _stored_zlib(raw: bytes) -> bytes:
    """A zlib stream of uncompressed deflate blocks (RFC 1950/1951): size is predictable."""
    out = bytearray(b"\x78\x01")
    for start in range(0, max(1, len(raw)), _MAX_STORED_BLOCK):
        block = raw[start : start + _MAX_STORED_BLOCK]
        final = start + _MAX_STORED_BLOCK >= len(raw)
        out += bytes([1 if final else 0]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + block
    out += struct.pack(">I", zlib.adler32(raw))
    return bytes(out)


def _encode(seed: int, width: int, height: int, pad: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", ihdr)]
    if pad:
        filler = b"generated by edge.demo; " * (pad // 24 + 1)
        parts.append(_chunk(b"tEXt", _TEXT_KEYWORD + b"\x00" + filler[: pad - _MIN_PAD]))
    parts.append(_chunk(b"IDAT", _stored_zlib(_scanlines(seed, width, height))))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


@functools.lru_cache(maxsize=48)  # a full home page needs ~30 images; largest is ~160 KB
def render(name: str, width: int | None = None) -> bytes:
    """PNG bytes of image ``name``; with ``width``, a smaller variant (``?w=``).

    The full image is exactly ``IMAGES[name].bytes`` long. A variant keeps the
    aspect ratio, so it has roughly ``(width / full width) ** 2`` of the bytes,
    and carries no padding. A ``width`` at or above the full width gives the
    full image. Raises ``KeyError`` for an unknown name.
    """
    spec = IMAGES[name]
    if width is None or width >= spec.width:
        height, pad = _fit(spec.width, spec.bytes)
        return _encode(spec.seed, spec.width, height, pad)
    width = max(1, width)
    height = max(1, round(spec.height * width / spec.width))
    return _encode(spec.seed, width, height, 0)
