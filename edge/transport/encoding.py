"""Content codings and charsets for bodies edge rewrites.

Compressed pages are decoded for rewriting with a hard cap on the decoded size:
decompression stops as soon as the output would pass ``limit``, so a
compression bomb costs at most ``limit`` bytes of memory and is then passed
through unmodified. The rewritten body is compressed again for what the client
accepts.

    >>> import gzip
    >>> decode(gzip.compress(b"x" * 1000), "gzip", limit=2000)
    b'xxx...'
    >>> decode(gzip.compress(b"x" * 1000), "gzip", limit=100) is None
    True
    >>> negotiate("gzip;q=0.5, br, *;q=0")
    'br'
    >>> charset_of(b"text/html; charset=Shift_JIS", b""), charset_of(b"text/html", b'<meta charset="iso-8859-1">')
    ('shift_jis', 'iso-8859-1')
"""

from __future__ import annotations

import gzip
import io
import re
import zlib

import brotli
import zstandard

from edge.core.errors import EdgeError

__all__ = ["CODINGS", "decode", "encode", "negotiate", "charset_of", "DecodeFailed"]

#: Codings edge can decode and produce, in order of preference when the client accepts several.
CODINGS = ("br", "zstd", "gzip", "deflate")
_CHUNK = 64 * 1024


class DecodeFailed(EdgeError, ValueError):
    """The body is not valid for its declared Content-Encoding."""


def decode(data: bytes, coding: str, limit: int) -> bytes | None:
    """``data`` decoded, or ``None`` if the decoded body would exceed ``limit`` bytes."""
    coding = coding.strip().lower()
    try:
        if coding in ("", "identity"):
            return data if len(data) <= limit else None
        if coding in ("gzip", "x-gzip", "deflate"):
            # gzip: wbits 16+; deflate: zlib-wrapped (RFC 9110) or, from broken servers, raw.
            wbits = 16 + zlib.MAX_WBITS if coding != "deflate" else (zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
            inflater = zlib.decompressobj(wbits)
            out = inflater.decompress(data, limit + 1)
            if len(out) > limit or inflater.unconsumed_tail:
                return None
            out += inflater.flush()
            if not inflater.eof or inflater.unused_data:
                # Truncated, or several gzip members: refuse rather than rewrite part of a page.
                raise DecodeFailed(f"{coding} body is truncated or has trailing data")
            return out if len(out) <= limit else None
        if coding == "br":
            decompressor = brotli.Decompressor()
            out = decompressor.process(data, output_buffer_limit=limit + 1)
            if len(out) > limit or not decompressor.is_finished():
                if len(out) > limit:
                    return None
                _fail("truncated brotli stream")
            return out
        if coding == "zstd":
            return _decode_zstd(data, limit)
    except (zlib.error, brotli.error, zstandard.ZstdError, EOFError) as exc:
        raise DecodeFailed(f"invalid {coding} body: {exc}") from None
    raise DecodeFailed(f"unsupported content coding {coding!r}")


def _decode_zstd(data: bytes, limit: int) -> bytes | None:
    """zstd, possibly several frames (RFC 8878 §3.1), capped at ``limit`` decoded bytes.

    zstandard's one-shot decompressors have no output cap, so first a capped streaming read
    proves the whole body decodes to at most ``limit`` bytes; only then is it decoded frame
    by frame, checking every frame ends (a truncated page must not become a short page).
    """
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
        if len(reader.read(limit + 1)) > limit:
            return None
    out = bytearray()
    rest = data
    while rest:
        inflater = zstandard.ZstdDecompressor().decompressobj()
        out += inflater.decompress(rest)
        if not inflater.eof:
            raise DecodeFailed("zstd body is truncated")
        rest = inflater.unused_data
    return bytes(out)


def _fail(message: str) -> None:
    raise DecodeFailed(message)


def encode(data: bytes, coding: str) -> bytes:
    """Compress ``data`` with a fast setting (edge pays this per adapted page)."""
    if coding == "br":
        return brotli.compress(data, quality=4)
    if coding == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if coding == "gzip":
        return gzip.compress(data, compresslevel=5, mtime=0)
    if coding == "deflate":
        return zlib.compress(data, 5)
    return data


def negotiate(accept_encoding: str | None) -> str | None:
    """The best coding of :data:`CODINGS` the client accepts (RFC 9110 §12.5.3), or None for identity."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            try:
                q = float(match.group(1))
            except ValueError:
                q = 0.0
        weights[name.strip()] = q
    best = None
    for coding in CODINGS:
        q = weights.get(coding, weights.get("*", 0.0))
        if q > 0 and (best is None or q > best[1]):
            best = (coding, q)
    return best[0] if best else None


_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE
)


_TYPE_CHARSET = re.compile(rb"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.IGNORECASE)
#: Pages' charsets by (Content-Type, first 1 KB): a route's pages mostly begin alike, so the regexes run
#: once per kind of page. At most this many entries (~300 KB), then it starts afresh.
_CHARSET_MEMO_ENTRIES = 256
_charsets: dict[tuple[bytes, bytes], str | None] = {}


def charset_of(content_type: bytes, head: bytes) -> str | None:
    """The page's charset: from ``Content-Type``, else a ``<meta charset>`` or http-equiv in its first 1 KB."""
    key = (content_type, head[:1024])
    try:
        return _charsets[key]
    except KeyError:
        pass
    match = _TYPE_CHARSET.search(content_type)
    if match is None:
        match = _META_CHARSET.search(key[1])
    charset = match.group(1).decode("ascii").lower() if match else None
    if len(_charsets) >= _CHARSET_MEMO_ENTRIES:
        _charsets.clear()
    _charsets[key] = charset
    return charset
