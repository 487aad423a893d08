"""The storefront's dynamic mode: every HTML page carries per-request content, the way real shops' pages do.

``edge storefront --dynamic`` (``build_storefront(dynamic=True)``) wraps the shop in
:class:`Personalize`, which rewrites each ``text/html`` 200 response before it goes out:

- a fresh CSRF token in every form (``<input type="hidden" name="csrf_token" value="…">``);
- a fresh nonce on every ``<script>`` (``nonce="…"``);
- the cart count in the header's cart link (``Cart (3)``, from the ``cart`` cookie);
- a "Recently viewed" strip of up to four products from the ``recent`` cookie (``recent=3.7.12``),
  each a link and a thumbnail, at the end of ``<main>``;
- the time the page was rendered, to the microsecond.

So no two responses are byte for byte the same, and edge's rewrite cache never hits on them as it
does on the plain demo's pages. Dynamic pages are ``Cache-Control: private, no-store`` without an
``ETag``; with ``Accept-Encoding: gzip`` they are sent gzip-compressed (as shops behind a CDN do).

    >>> import re
    >>> page = personalize(b'<header><a class="cart-link" href="/cart">Cart</a></header><main>'
    ...     b'<form action="/cart"><button>Add</button></form><script>go()</script></main>', "3.3", "7")
    >>> re.sub(rb'(value|nonce)="[^"]+"', rb'\\1="X"', re.sub(rb"at [0-9T:.Z-]+", b"at T", page)).decode()  # doctest: +NORMALIZE_WHITESPACE
    '<header><a class="cart-link" href="/cart">Cart (2)</a></header><main><form action="/cart"><input type="hidden"
    name="csrf_token" value="X"><button>Add</button></form><script nonce="X">go()</script><section class="recent"
    data-edge-widget="recently-viewed"><h2>Recently viewed</h2><ul><li><a href="/product/7"><img
    src="/static/img/product-07-thumb.png" width="72" height="72" alt="Harbour chef&#x27;s knife"
    data-edge-bytes="17196"></a></li></ul></section><p class="rendered">Rendered at T</p></main>'
"""

from __future__ import annotations

import gzip
import html
import re
import secrets
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.demo import catalog, images

__all__ = ["Personalize", "personalize"]

_CART_LINK = b'<a class="cart-link" href="/cart">Cart</a>'
#: Every place a request's values go, found in one pass: form start tags, script start tags, the cart link.
_SPOTS = re.compile(rb"<(?:[fF][oO][rR][mM]\b[^>]*>|[sS][cC][rR][iI][pP][tT](?=[\s>])|" + re.escape(_CART_LINK[1:]) + rb")")
MAX_RECENT = 4


def _recent(cookie: str | None) -> bytes:
    """The "Recently viewed" strip for the ``recent`` cookie (empty when it names no product)."""
    items = []
    for token in (cookie or "").split(".")[:MAX_RECENT]:
        product = catalog.product_by_id(int(token)) if token.isdigit() else None
        if product is None:
            continue
        name = f"product-{product.id:02d}-thumb.png"
        items.append(
            f'<li><a href="/product/{product.id}"><img src="{images.url(name)}" width="72" height="72" '
            f'alt="{html.escape(product.name)}" data-edge-bytes="{images.IMAGES[name].bytes}"></a></li>'
        )
    if not items:
        return b""
    return (
        '<section class="recent" data-edge-widget="recently-viewed"><h2>Recently viewed</h2><ul>' + "".join(items) + "</ul></section>"
    ).encode()


def personalize(page: bytes, cart: str | None, recent: str | None) -> bytes:
    """``page`` with this request's CSRF tokens, script nonce, cart count, recently viewed items and time."""
    segments, spots = _layout(page)
    nonce = b' nonce="' + secrets.token_urlsafe(16).encode() + b'"'
    count = sum(1 for t in (cart or "").split(".") if t.isdigit())
    cart_link = _CART_LINK.replace(b"Cart<", f"Cart ({count})<".encode())
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    tail = _recent(recent) + b'<p class="rendered">Rendered at ' + stamp + b"</p>"
    out = [segments[0]]
    for spot, segment in zip(spots, segments[1:]):
        if spot is _CART:
            out.append(cart_link)
        elif spot is _SCRIPT:
            out.append(nonce)
        elif spot is _FORM:
            out.append(b'<input type="hidden" name="csrf_token" value="' + secrets.token_urlsafe(24).encode() + b'">')
        else:  # _TAIL: before the last </main>, or at the end of a page without one
            out.append(tail)
        out.append(segment)
    return b"".join(out)


# What goes in each spot of a page's layout (compared by identity).
_CART, _SCRIPT, _FORM, _TAIL = "cart", "script", "form", "tail"
#: The layouts of the last pages personalized (the demo serves a few dozen distinct pages): a page is
#: scanned once, and later requests only join its fixed segments with their values.
_LAYOUTS: dict[tuple[int, bytes], tuple[bytes, tuple[bytes, ...], tuple[str, ...]]] = {}
_MAX_LAYOUTS = 64


def _layout(page: bytes) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """``page`` cut where each request's values go: ``segments[0] spot[0] segments[1] spot[1] …``.

    >>> _layout(b'<main><form action="/a"><script>x()</script></main>')
    ((b'<main><form action="/a">', b'<script', b'>x()</script>', b'</main>'), ('form', 'script', 'tail'))
    """
    key = (len(page), page[:64] + page[-64:])
    cached = _LAYOUTS.get(key)
    if cached is not None and cached[0] == page:  # same length and ends: confirm the whole page
        return cached[1], cached[2]
    cuts: list[tuple[int, str]] = []  # (where the value goes, what goes there), in page order
    for m in _SPOTS.finditer(page):
        tag = m.group(0)
        if tag == _CART_LINK:  # replaced: the cut spans the link
            cuts.append((m.start(), _CART))
            cuts.append((m.end(), ""))
        else:  # after the tag's text: a nonce after "<script", a hidden input after "<form …>"
            cuts.append((m.end(), _SCRIPT if tag[1] in b"sS" else _FORM))
    k = page.rfind(b"</main>")
    cuts.append((k if k >= 0 else len(page), _TAIL))
    cuts.sort(key=lambda cut: cut[0])  # stable: the tail after a value cut at the same place
    segments: list[bytes] = []
    spots: list[str] = []
    at = 0
    for where, spot in cuts:
        if spot:
            segments.append(page[at:where])
            spots.append(spot)
            at = where
        else:  # the end of a replaced span: skip the original text
            at = where
    segments.append(page[at:])
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        _LAYOUTS.pop(next(iter(_LAYOUTS)))
    _LAYOUTS[key] = (page, tuple(segments), tuple(spots))
    return tuple(segments), tuple(spots)


def _cookies(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                out.setdefault(key, val)
    return out


class Personalize:
    """ASGI middleware: HTML 200 responses personalized per request (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"if-none-match"]  # never a 304: every page is new
        cookies = _cookies(headers)
        gzip_ok = any(k == b"accept-encoding" and b"gzip" in v.lower() for k, v in headers)
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] == 200 and ctype.startswith(b"text/html"):
                    start = message
                    return
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = personalize(b"".join(chunks), cookies.get("cart"), cookies.get("recent"))
                out = [(k, v) for k, v in start.get("headers", []) if k not in (b"content-length", b"etag", b"cache-control")]
                if gzip_ok:
                    body = gzip.compress(body, compresslevel=6, mtime=0)
                    out.append((b"content-encoding", b"gzip"))
                out += [
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"private, no-store"),
                    (b"vary", b"Accept-Encoding, Cookie"),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": out})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app({**scope, "headers": headers}, receive, capture)
