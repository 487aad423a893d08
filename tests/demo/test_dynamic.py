"""The demo storefront's dynamic mode (``edge storefront --dynamic``): per-request content on every page."""

from __future__ import annotations

import asyncio
import re

import httpx

from edge.demo import build_storefront

SHOPPER = {"cookie": "cart=3.4.4; recent=7.9.x.12", "accept-encoding": "identity"}


def fetch(*requests: tuple[str, dict[str, str]]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=build_storefront(dynamic=True))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            return [await client.get(path, headers=headers) for path, headers in requests]

    return asyncio.run(main())


def test_every_request_gets_its_own_tokens_nonces_and_time():
    a, b = fetch(("/", SHOPPER), ("/", SHOPPER))
    assert a.status_code == b.status_code == 200 and a.content != b.content
    forms = re.findall(rb"<form\b[^>]*>(<input [^>]*>)", a.content)
    assert len(forms) == a.content.count(b"<form") >= 20  # every product card's form, search, chat
    tokens = [re.search(rb'name="csrf_token" value="([\w-]+)"', f).group(1) for f in forms]
    assert len(set(tokens)) == len(tokens) and len(tokens[0]) >= 30
    scripts = re.findall(rb"<script\b[^>]*>", a.content)
    assert scripts and all(re.search(rb' nonce="[\w-]{20,}"', s) for s in scripts)
    assert set(re.findall(rb'nonce="([\w-]+)"', a.content)).isdisjoint(re.findall(rb'nonce="([\w-]+)"', b.content))
    assert re.search(rb"Rendered at \d{4}-\d\d-\d\dT[\d:.]+Z", a.content)
    # Not cacheable, not revalidatable: a shop does not put a per-request page in a shared cache.
    assert a.headers["cache-control"] == "private, no-store" and "etag" not in a.headers
    assert int(a.headers["content-length"]) == len(a.content)


def test_cart_count_and_recently_viewed_come_from_the_cookie():
    page, product, anonymous = fetch(("/", SHOPPER), ("/product/5", SHOPPER), ("/", {"accept-encoding": "identity"}))
    for response in (page, product):
        assert b'<a class="cart-link" href="/cart">Cart (3)</a>' in response.content
        strip = re.search(rb'<section class="recent" data-edge-widget="recently-viewed">.*?</section>', response.content).group(0)
        assert re.findall(rb'href="/product/(\d+)"', strip) == [b"7", b"9", b"12"]  # "x" ignored, order kept
        assert strip.count(b"<img ") == 3
    assert b"Cart (0)" in anonymous.content and b"recently-viewed" not in anonymous.content


def test_no_304_and_gzip_when_asked_and_other_responses_untouched():
    first, again, zipped, image = fetch(
        ("/", SHOPPER), ("/", {**SHOPPER, "if-none-match": "*"}), ("/", {**SHOPPER, "accept-encoding": "gzip"}),
        ("/static/img/logo.png", SHOPPER),
    )  # fmt: skip
    assert again.status_code == 200 and again.content != first.content
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding, Cookie"
    assert b"csrf_token" in zipped.content  # httpx decoded it
    assert image.headers["content-type"] == "image/png" and "etag" in image.headers and "content-encoding" not in image.headers


def test_the_static_storefront_is_unchanged():
    async def main() -> list[bytes]:
        transport = httpx.ASGITransport(app=build_storefront())
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            return [(await client.get("/", headers=SHOPPER)).content for _ in range(2)]

    a, b = asyncio.run(main())
    assert a == b and b"csrf_token" not in a and b"nonce=" not in a


def _personalize_by_regex(page: bytes, cart: str | None, recent: str | None) -> bytes:
    """The plain definition: one regex substitution over the page, then the tail before the last </main>."""
    from edge.demo import dynamic

    count = sum(1 for t in (cart or "").split(".") if t.isdigit())

    def fill(m: re.Match[bytes]) -> bytes:
        tag = m.group(0)
        if tag == dynamic._CART_LINK:
            return dynamic._CART_LINK.replace(b"Cart<", f"Cart ({count})<".encode())
        if tag[1] in b"sS":
            return tag + b' nonce="N"'
        return tag + b'<input type="hidden" name="csrf_token" value="T">'

    page = dynamic._SPOTS.sub(fill, page)
    tail = dynamic._recent(recent) + b'<p class="rendered">Rendered at S</p>'
    k = page.rfind(b"</main>")
    return page[:k] + tail + page[k:] if k >= 0 else page + tail


def _masked(page: bytes) -> bytes:
    page = re.sub(rb'name="csrf_token" value="[\w-]+"', b'name="csrf_token" value="T"', page)
    return re.sub(rb"Rendered at [\dT:.Z-]+<", b"Rendered at S<", re.sub(rb' nonce="[\w-]+"', b' nonce="N"', page))


def test_a_pages_layout_is_cut_once_and_filled_as_the_regex_would():
    from edge.demo.dynamic import personalize

    pages = [r.content for r in asyncio.run(_static_pages(("/", "/product/3", "/cart", "/search?q=knife")))]
    odd = [b"", b"<p>no main</p><form>", b"<main></main><main>x</main>", b"<main><form a></main>",
           b'<a class="cart-link" href="/cart">Cart</a><SCRIPT>', b'<a class="cart-link" href="/cart">Cart</a></main>']
    for page in pages + odd:
        for cart, recent in ((None, None), ("1.2", "3.7.12"), ("x", "99")):
            for _ in range(2):  # the second from the cached layout
                assert _masked(personalize(page, cart, recent)) == _personalize_by_regex(page, cart, recent)


async def _static_pages(paths: tuple[str, ...]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=build_storefront())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        return [await client.get(path) for path in paths]
