"""A small upstream for the integration tests, run as its own uvicorn process.

    python tests/integration/upstreams.py --host 127.0.0.1 --port 8099 --bomb-dir /tmp/edge-bombs

It serves what the demo storefront does not: HTML pages compressed with every coding edge decodes,
pages in legacy charsets, and compression bombs. Every page ignores ``Accept-Encoding`` (like the
demo's ``/gzip-page``): the origin compresses as it likes and edge must cope.

=================================  =====================================================================
``/page?coding=C``                 a ~5 KB UTF-8 storefront page (widgets header, product-grid, reviews,
                                   ads) sent with ``Content-Encoding: C`` (identity, gzip, br, zstd, deflate)
``/latin1?coding=C``               an ISO-8859-1 page, charset in ``Content-Type``
``/latin1-meta?coding=C``          the same page, charset only in ``<meta http-equiv>``
``/sjis?coding=C``                 a Shift_JIS page, charset in ``Content-Type``
``/sjis-meta?coding=C``            the same page, charset only in ``<meta charset>``
``/bomb/{gzip,br,zstd}``           ``text/html`` whose body decodes to 1 GiB of zeros
``/broken/{variant}``              ``/page`` in a tricky stream: ``zstd-frames`` (two zstd frames, legal),
                                   ``zstd-truncated`` and ``gzip-truncated`` (the last 16 bytes cut)
=================================  =====================================================================

:func:`page_bytes` and :func:`bomb_path` are imported by the tests to know what was sent.
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import zlib
from pathlib import Path

import brotli
import zstandard

#: The widgets a page carries, in page order; the tests' policy drops ``reviews`` and ``ads`` on lite.
WIDGETS = ("header", "product-grid", "reviews", "ads")
BOMB_DECODED_BYTES = 1 << 30
BOMB_CODINGS = ("gzip", "br", "zstd")
CODINGS = ("identity", "gzip", "br", "zstd", "deflate")

# Texts with bytes that trip naive decoders: Latin-1 high bytes, and Shift_JIS double-byte
# characters whose second byte is 0x5C ('\\') or 0x7C ('|'), or looks like '<', '>' (none do) …
LATIN1_TEXT = "Grüße aus Köln: Café, naïve Crème brûlée - ½ Preis, © 2024, ±5 °C, «Angebot»"
SJIS_TEXT = "東京の表示ソフト「ポイント十倍」能力予定：本日限り。申し込み〜"


def _widget(name: str, inner: str) -> str:
    return f'<section data-edge-widget="{name}" class="w-{name}">{inner}</section>\n'


def _page_text(title: str, text: str, head_extra: str = "") -> str:
    items = "".join(f"<article><h3>{text[: 10 + i % 7]} #{i}</h3><p>{text}</p></article>\n" for i in range(30))
    return (
        "<!DOCTYPE html>\n<html lang=\"x\">\n<head>\n"
        f"{head_extra}<title>{title}</title>\n"
        "<!-- an HTML comment edge must keep: <b>not markup</b> -->\n"
        "<script type=\"application/ld+json\">{\"@type\": \"Product\", \"name\": \"a < b && c\"}</script>\n"
        "</head>\n<body>\n"
        + _widget("header", f"<h1>{title}</h1><p>{text}</p>")
        + _widget("product-grid", f'<div class="grid">{items}</div>')
        + _widget("reviews", f"<ul><li>{text}</li><li>5/5 &amp; more &eacute;</li></ul>")
        + _widget("ads", f'<a href="/ad?x=1&amp;y=2">{text}</a>')
        + f"<footer><p>{text}</p></footer>\n"
        "</body>\n</html>\n"
    )


def page_bytes(kind: str) -> tuple[bytes, str]:
    """The uncompressed body and Content-Type of page ``kind`` (page, latin1, latin1-meta, sjis, sjis-meta)."""
    if kind == "page":
        return _page_text("Storefront page", "Fresh tea, ōsaka sets and more: 東京 ✓").encode("utf-8"), "text/html; charset=utf-8"
    if kind == "latin1":
        return _page_text("Latin-1 page", LATIN1_TEXT).encode("iso-8859-1"), "text/html; charset=ISO-8859-1"
    if kind == "latin1-meta":
        meta = '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">\n'
        return _page_text("Latin-1 page", LATIN1_TEXT, meta).encode("iso-8859-1"), "text/html"
    if kind == "sjis":
        return _page_text("Shift_JIS ページ", SJIS_TEXT).encode("shift_jis"), "text/html; charset=Shift_JIS"
    if kind == "sjis-meta":
        return _page_text("Shift_JIS ページ", SJIS_TEXT, '<meta charset="Shift_JIS">\n').encode("shift_jis"), "text/html"
    raise KeyError(kind)


def compress(data: bytes, coding: str) -> bytes:
    if coding == "identity":
        return data
    if coding == "gzip":
        return gzip.compress(data, mtime=0)
    if coding == "br":
        return brotli.compress(data)
    if coding == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    raise KeyError(coding)


def broken_body(variant: str) -> tuple[bytes, str]:
    """(body, Content-Encoding) of ``/broken/{variant}``."""
    page, _ = page_bytes("page")
    if variant == "zstd-frames":
        half = len(page) // 2
        return compress(page[:half], "zstd") + compress(page[half:], "zstd"), "zstd"
    if variant == "zstd-truncated":
        return compress(page, "zstd")[:-16], "zstd"
    if variant == "gzip-truncated":
        return compress(page, "gzip")[:-16], "gzip"
    raise KeyError(variant)


def bomb_path(coding: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """A file whose ``coding`` stream decodes to 1 GiB of zeros, made once and cached (gzip ~1 MB, 3 s)."""
    directory = Path(directory or Path(tempfile.gettempdir()) / "edge-test-bombs")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"zeros-1GiB.{coding}"
    if path.exists():
        return path
    chunk = bytes(1 << 20)
    if coding == "gzip":
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        step, finish = compressor.compress, compressor.flush
    elif coding == "br":
        compressor = brotli.Compressor(quality=5)
        step, finish = compressor.process, compressor.finish
    elif coding == "zstd":
        compressor = zstandard.ZstdCompressor(level=3).compressobj()
        step, finish = compressor.compress, compressor.flush
    else:
        raise KeyError(coding)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        for _ in range(BOMB_DECODED_BYTES // len(chunk)):
            out.write(step(chunk))
        out.write(finish())
    os.replace(tmp, path)  # atomic: a concurrent run never reads half a file
    return path


def build_app(bomb_dir: str | None = None):  # noqa: ANN201
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    bombs = {coding: bomb_path(coding, bomb_dir).read_bytes() for coding in BOMB_CODINGS}

    def _coded(body: bytes, content_type: str, coding: str) -> Response:
        headers = {"Vary": "Accept-Encoding", "ETag": '"itest-v1"', "Cache-Control": "public, max-age=60"}
        if coding != "identity":
            headers["Content-Encoding"] = coding
        return Response(compress(body, coding), headers={**headers, "Content-Type": content_type})

    async def page(request: Request) -> Response:
        coding = request.query_params.get("coding", "identity")
        if coding not in CODINGS:
            return PlainTextResponse("unknown coding\n", status_code=400)
        try:
            body, content_type = page_bytes(request.path_params["kind"])
        except KeyError:
            return PlainTextResponse("no such page\n", status_code=404)
        return _coded(body, content_type, coding)

    async def bomb(request: Request) -> Response:
        coding = request.path_params["coding"]
        if coding not in bombs:
            return PlainTextResponse("unknown coding\n", status_code=404)
        return Response(bombs[coding], headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": coding})

    async def broken(request: Request) -> Response:
        try:
            body, coding = broken_body(request.path_params["variant"])
        except KeyError:
            return PlainTextResponse("no such variant\n", status_code=404)
        return Response(body, headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": coding})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/bomb/{coding}", bomb),
            Route("/broken/{variant}", broken),
            Route("/{kind:str}", page),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bomb-dir", default=None)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(build_app(args.bomb_dir), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
