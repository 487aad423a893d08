"""Routes of the demo storefront and :func:`build_storefront`.

Shop routes
    ``GET /``                     home page (strong ETag, 304 on If-None-Match, two Set-Cookie)
    ``GET /search?q=``            search results
    ``GET /product/{id}``         product page (404 page for unknown ids)
    ``GET /cart``, ``POST /cart``  cart page; POST ``product_id`` adds one, 303 to ``/cart``
    ``GET /checkout``             302 to ``/cart`` (the proxy must pass redirects through)
    ``GET /api/layout/home``      the native app's home layout as JSON
    ``GET /static/img/{name}``    generated PNGs, ``?w=N`` for a smaller variant

Test helpers: see :mod:`edge.demo.probes`.

Cart state lives entirely in the ``cart`` cookie, and rendered pages are
cached in bounded LRU caches, so the server's memory does not grow with traffic.
"""

from __future__ import annotations

import functools
import hashlib
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from edge.demo import catalog, images, layout, pages, probes
from edge.demo.dynamic import Personalize

__all__ = ["build_storefront"]

MAX_CART_ITEMS = 50  # keeps the cookie far below the 4 KB browser limit
MAX_FORM_BYTES = 16 * 1024
_SESSION = "s-" + hashlib.sha256(b"edge.demo session").hexdigest()[:24]  # fixed: pages stay deterministic


def strong_etag(body: bytes) -> str:
    """Quoted SHA-256 prefix of ``body``.

    >>> strong_etag(b"")
    '"e3b0c44298fc1c149afbf4c8996fb924"'
    """
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (weak comparison, as RFC 9110 says for it).

    >>> etag_matches('W/"x", "abc"', '"abc"'), etag_matches("*", '"abc"'), etag_matches(None, '"a"')
    (True, True, False)
    """
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _cacheable(request: Request, body: bytes, media_type: str, cache_control: str) -> Response:
    etag = strong_etag(body)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@functools.cache
def _home_html() -> bytes:
    return pages.home_page().encode()


@functools.lru_cache(maxsize=64)
def _product_html(product_id: int) -> bytes:
    return pages.product_page(catalog.product(product_id)).encode()


async def home(request: Request) -> Response:
    response = _cacheable(request, _home_html(), "text/html", "public, max-age=60")
    if response.status_code == 200:
        # Two separate Set-Cookie headers: a proxy must not fold them into one.
        response.raw_headers += [
            (b"set-cookie", f"session={_SESSION}; Path=/; HttpOnly".encode()),
            (b"set-cookie", b"ab=grid-v2; Path=/"),
        ]
    return response


async def search(request: Request) -> Response:
    query = request.query_params.get("q", "")[:200]
    return HTMLResponse(pages.search_page(query), headers={"Cache-Control": "public, max-age=60"})


async def product(request: Request) -> Response:
    product_id = request.path_params["product_id"]
    if catalog.product_by_id(product_id) is None:
        raise HTTPException(404)
    return _cacheable(request, _product_html(product_id), "text/html", "public, max-age=60")


async def cart(request: Request) -> Response:
    page = pages.cart_page(pages.parse_cart(request.cookies.get("cart")))
    return HTMLResponse(page, headers={"Cache-Control": "private, no-store"})


async def add_to_cart(request: Request) -> Response:
    """Form POST (``product_id``): add one item to the ``cart`` cookie, then 303 to ``/cart``."""
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_FORM_BYTES:
            return HTMLResponse(pages.simple_page("Form too large", "Nothing was added."), status_code=413)
    fields = parse_qs(body.decode("utf-8", "replace"))
    raw_id = (fields.get("product_id") or [""])[0].strip()
    if not raw_id.isdigit() or catalog.product_by_id(int(raw_id)) is None:
        return HTMLResponse(pages.simple_page("Unknown product", "Nothing was added."), status_code=400)
    items = [t for t in request.cookies.get("cart", "").split(".") if t.isdigit()]
    items = (items + [str(int(raw_id))])[-MAX_CART_ITEMS:]
    response = RedirectResponse("/cart", status_code=303)
    response.raw_headers.append(
        (b"set-cookie", f"cart={'.'.join(items)}; Path=/; HttpOnly; SameSite=Lax".encode())
    )
    return response


async def checkout(request: Request) -> Response:
    return RedirectResponse("/cart", status_code=302)


async def home_layout(request: Request) -> Response:
    return Response(orjson.dumps(layout.home_layout()), media_type="application/json")


async def image(request: Request) -> Response:
    """A generated PNG; ``?w=N`` picks a narrower variant (aspect ratio kept)."""
    name = request.path_params["name"]
    if not name.endswith(".png") or name not in images.IMAGES:
        raise HTTPException(404)
    width = None
    if "w" in request.query_params:
        try:
            width = int(request.query_params["w"])
        except ValueError:
            width = 0
        if width <= 0:
            return Response(b"w must be a positive integer\n", status_code=400, media_type="text/plain")
    return _cacheable(request, images.render(name, width), "image/png", "public, max-age=86400")


async def not_found(request: Request, exc: Exception) -> Response:
    return HTMLResponse(pages.not_found_page(request.url.path), status_code=404)


def build_storefront(*, dynamic: bool = False) -> Starlette | Personalize:
    """The demo shop as an ASGI app (cheap: pages and images are rendered lazily and cached).

    ``dynamic=True`` (``edge storefront --dynamic``) personalizes every HTML page per request:
    CSRF tokens, script nonces, cart count, recently viewed items, a timestamp (:mod:`edge.demo.dynamic`).

    >>> [route.path for route in build_storefront().routes][:3]
    ['/', '/search', '/product/{product_id:int}']
    """
    routes = [
        Route("/", home),
        Route("/search", search),
        Route("/product/{product_id:int}", product),
        Route("/cart", cart, methods=["GET"]),
        Route("/cart", add_to_cart, methods=["POST"]),
        Route("/checkout", checkout),
        Route("/api/layout/home", home_layout),
        Route("/static/img/{name}", image),
        *probes.ROUTES,
    ]
    shop = Starlette(routes=routes, exception_handlers={404: not_found})
    return Personalize(shop) if dynamic else shop
