"""Test helper endpoints of the demo storefront, used by the proxy's tests.

Each handler exercises one thing a reverse proxy must get right:

=============================  ===========================================================
``/echo/{path}`` (any method)  JSON of what arrived: method, path, query, raw headers, body hash
``/download/{n}.bin``          ``n`` MiB (1..100) streamed, deterministic, single ``Range``
``/slow?ms=N``                 waits ``N`` ms (at most 60 000), for timeouts
``/status/{code}``             that status (200..599), tiny text body (none for 204/304)
``/gzip-page``                 HTML already ``Content-Encoding: gzip``
``/no-transform``              HTML with ``Cache-Control: no-transform``
``/headers/multi``             two ``Set-Cookie``, ``X-Upstream``, and a hop-by-hop
                               ``X-Drop-Me`` named in ``Connection``
``/headers/echo?name=value``   200 with each query pair as a response header (repeats kept)
=============================  ===========================================================
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from edge.demo import download
from edge.demo.pages import simple_page

__all__ = ["ROUTES"]

MAX_SLOW_MS = 60_000
MAX_DOWNLOAD_MB = 100


async def echo(request: Request) -> Response:
    """Describe the request as JSON. The body is hashed while streaming, never buffered.

    ``path`` is the full request path (``/echo/a/b``), ``query`` the raw query
    string, ``headers`` the ASGI header list as ``[name, value]`` pairs
    (lower-case names, arrival order, duplicates kept).
    """
    digest = hashlib.sha256()
    size = 0
    async for part in request.stream():
        digest.update(part)
        size += len(part)
    payload = {
        "method": request.method,
        "path": request.url.path,
        "query": request.scope.get("query_string", b"").decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
        "body_sha256": digest.hexdigest(),
        "body_bytes": size,
    }
    return Response(orjson.dumps(payload), media_type="application/json")


async def download_file(request: Request) -> Response:
    """``size_mb`` MiB of deterministic bytes; honours one ``Range`` (206 / 416)."""
    size_mb = request.path_params["size_mb"]
    if not 1 <= size_mb <= MAX_DOWNLOAD_MB:
        return PlainTextResponse(f"size must be 1..{MAX_DOWNLOAD_MB} MiB\n", status_code=404)
    size = size_mb * 1024 * 1024
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    first, last, status = 0, size - 1, 200
    wanted = download.parse_range(request.headers.get("range"), size)
    if wanted is download.UNSATISFIABLE:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(b"", status_code=416, headers=headers)
    if wanted is not None:
        (first, last), status = wanted, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=headers)

    async def body() -> AsyncIterator[bytes]:
        for piece in download.iter_bytes(first, last):
            yield piece
            await asyncio.sleep(0)  # let other requests run between 64 KiB pieces

    return StreamingResponse(body(), status_code=status, headers=headers)


async def slow(request: Request) -> Response:
    """Wait ``?ms=N`` milliseconds (capped at 60 000), then answer a small page."""
    try:
        ms = min(max(int(request.query_params.get("ms", "0")), 0), MAX_SLOW_MS)
    except ValueError:
        return PlainTextResponse("ms must be an integer\n", status_code=400)
    await asyncio.sleep(ms / 1000)
    return HTMLResponse(simple_page("Slow page", f"Answered after {ms} ms."))


async def status(request: Request) -> Response:
    """Answer with status ``code`` (200..599). 3xx redirects point at ``/``."""
    code = request.path_params["code"]
    if not 200 <= code <= 599:
        return PlainTextResponse("status must be 200..599\n", status_code=400)
    if code in (204, 304):
        return Response(status_code=code)
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    headers = {"Location": "/"} if code in (301, 302, 303, 307, 308) else None
    return PlainTextResponse(f"{code} {phrase}\n", status_code=code, headers=headers)


_GZIP_PAGE = gzip.compress(
    simple_page("Pre-compressed page", "This body was gzip-compressed by the origin. Grüße!").encode(),
    mtime=0,  # no timestamp: identical bytes in every process
)


async def gzip_page(request: Request) -> Response:
    """A small HTML page sent gzip-compressed (whatever ``Accept-Encoding`` says)."""
    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(_GZIP_PAGE, media_type="text/html", headers=headers)


async def no_transform(request: Request) -> Response:
    """An HTML page the proxy must not modify (``Cache-Control: no-transform``)."""
    page = simple_page("No transform", "Cache-Control: no-transform forbids proxies to rewrite this page.")
    return HTMLResponse(page, headers={"Cache-Control": "no-transform"})


async def multi_headers(request: Request) -> Response:
    """Repeated and hop-by-hop headers: the proxy keeps both cookies and drops ``X-Drop-Me``."""
    response = PlainTextResponse("multi-header response\n")
    response.raw_headers += [
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; Path=/; HttpOnly"),
        (b"x-upstream", b"yes"),
        (b"connection", b"X-Drop-Me"),
        (b"x-drop-me", b"1"),
    ]
    return response


async def echo_headers(request: Request) -> Response:
    """Answer 200 with every ``?name=value`` pair of the query as a response header, in order.

    For the proxy's tests of response headers the demo never sends (``Trailer``,
    ``Upgrade``, ``Proxy-Authenticate``...): what edge passes on is compared with what was asked.
    """
    response = PlainTextResponse("echoed headers\n")
    response.raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.query_params.multi_items()
    ]
    return response


ROUTES = [
    Route(
        "/echo/{path:path}",
        echo,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    ),
    Route("/download/{size_mb:int}.bin", download_file, methods=["GET", "HEAD"]),
    Route("/slow", slow),
    Route("/status/{code:int}", status),
    Route("/gzip-page", gzip_page),
    Route("/no-transform", no_transform),
    Route("/headers/multi", multi_headers),
    Route("/headers/echo", echo_headers),
]
