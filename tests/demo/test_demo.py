"""Tests of the demo storefront (``edge.demo``), driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import httpx

from edge.demo import build_storefront
from edge.demo.images import IMAGES, PNG_SIGNATURE
from edge.demo.layout import HIGH_PRIORITY, HOME_WIDGETS, LOW_PRIORITY, WIDGET_PRIORITY

MIB = 1024 * 1024


def run(scenario):
    """Run ``scenario(client)`` (an async function) against a fresh storefront."""

    async def main():
        transport = httpx.ASGITransport(app=build_storefront())
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            return await scenario(client)

    return asyncio.run(main())


class PageScan(HTMLParser):
    """Widgets, images and the character spans of low-priority widget subtrees of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.widgets: list[str] = []
        self.images: list[tuple[dict, bool]] = []  # (attributes, inside a low-priority widget)
        self.low_spans: list[tuple[int, int]] = []
        self._skip: list | None = None  # [tag, depth, start offset]
        self.feed(text)
        self.close()

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        widget = attributes.get("data-edge-widget")
        if widget:
            self.widgets.append(widget)
        if tag == "img":
            self.images.append((attributes, self._skip is not None or widget in LOW_PRIORITY))
        if self._skip is not None:
            if tag == self._skip[0]:
                self._skip[1] += 1
        elif widget in LOW_PRIORITY:
            self._skip = [tag, 1, self._offset()]

    def handle_endtag(self, tag):
        if self._skip is not None and tag == self._skip[0]:
            self._skip[1] -= 1
            if self._skip[1] == 0:
                end = self.text.index(">", self._offset()) + 1
                self.low_spans.append((self._skip[2], end))
                self._skip = None

    def light_html(self) -> str:
        """The page with every low-priority widget cut out."""
        parts, pos = [], 0
        for start, end in self.low_spans:
            parts.append(self.text[pos:start])
            pos = end
        parts.append(self.text[pos:])
        return "".join(parts)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, data) chunks, checking every CRC."""
    assert data[:8] == PNG_SIGNATURE
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def check_png(data: bytes) -> tuple[int, int]:
    """Assert ``data`` is a valid 8-bit RGB PNG; return (width, height)."""
    chunks = png_chunks(data)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (3 * width + 1)
    assert all(raw[y * (3 * width + 1)] == 0 for y in range(height))  # filter type "None"
    return width, height


async def fetch_home_and_images(client):
    home = await client.get("/")
    scan = PageScan(home.text)
    sources = {attrs["src"] for attrs, _ in scan.images}
    fetched = {src: (await client.get(src)).content for src in sorted(sources)}
    return home, scan, fetched


# ---------------------------------------------------------------- home page


def test_home_page_headers_and_size():
    home = run(lambda c: c.get("/"))
    assert home.status_code == 200
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert home.content.startswith(b"<!DOCTYPE html>")
    assert len(home.content) >= 100_000
    assert re.fullmatch(r'"[0-9a-f]{32}"', home.headers["etag"])
    assert home.headers["etag"] == '"' + hashlib.sha256(home.content).hexdigest()[:32] + '"'
    assert home.headers["cache-control"] == "public, max-age=60"
    cookies = home.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert re.fullmatch(r"session=[^;]+; Path=/; HttpOnly", cookies[0])
    assert cookies[1] == "ab=grid-v2; Path=/"


def test_home_304_on_if_none_match():
    async def scenario(client):
        first = await client.get("/")
        etag = first.headers["etag"]
        again = await client.get("/", headers={"If-None-Match": etag})
        weak_list = await client.get("/", headers={"If-None-Match": f'"nope", W/{etag}'})
        other = await client.get("/", headers={"If-None-Match": '"nope"'})
        return etag, again, weak_list, other

    etag, again, weak_list, other = run(scenario)
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert weak_list.status_code == 304
    assert other.status_code == 200


def test_home_bytes_budget_and_image_declarations():
    home, scan, fetched = run(fetch_home_and_images)
    html_bytes = len(home.content)
    for attrs, _ in scan.images:
        for name in ("src", "width", "height", "alt", "data-edge-bytes"):
            assert name in attrs, (name, attrs)
        data = fetched[attrs["src"]]
        assert int(attrs["data-edge-bytes"]) == len(data), attrs["src"]
        assert check_png(data) == (int(attrs["width"]), int(attrs["height"]))
    total = html_bytes + sum(len(d) for d in fetched.values())
    assert total >= MIB

    light_html = scan.light_html()
    assert not any(f'data-edge-widget="{w}"' in light_html for w in LOW_PRIORITY)
    assert all(f'data-edge-widget="{w}"' in light_html for w in HIGH_PRIORITY - {"product"})
    light_images = {attrs["src"] for attrs, low in scan.images if not low}
    light = len(light_html.encode()) + sum(len(fetched[src]) for src in light_images)
    assert light / total <= 0.20, (light, total)


def test_home_widgets():
    home = run(lambda c: c.get("/"))
    scan = PageScan(home.text)
    assert sorted(scan.widgets) == sorted(HOME_WIDGETS)  # each exactly once
    assert set(WIDGET_PRIORITY) == set(HOME_WIDGETS) | {"product"}
    grid = home.text.split('data-edge-widget="product-grid"')[1].split("</section>")[0]
    assert grid.count('<article class="card"') == 12
    assert grid.count('action="/cart" method="post"') == 12
    assert '<form action="/search" method="get"' in home.text and 'name="q"' in home.text
    recommendations = home.text.split('data-edge-widget="recommendations"')[1].split("</section>")[0]
    assert 10 <= recommendations.count('<article class="card"') <= 16
    assert "srcset=" in recommendations


def test_home_markup_is_realistically_messy():
    text = run(lambda c: c.get("/")).text
    for needle in (
        '"<div class=\\"chat-bubble bot\\">',
        "<\\/div>",
        "<\\/p>",
        '<script type="application/ld+json">',
        "window.__STATE__ = {",
        "&amp;", "&nbsp;", "&euro;", "&#8217;",
        "<!--[if lt IE 9]>", "<![endif]-->",
        "<template", "<noscript>", "<style>",
        "Café crème", "Ōsaka tea set", "Zürich",
    ):  # fmt: skip
        assert needle in text, needle
    ld = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)[1]
    assert json.loads(ld)["@type"] == "ItemList"
    state = re.search(r"<script>window.__STATE__ = (.*?);</script>", text, re.S)[1]
    assert json.loads(state)["ab"] == "grid-v2"
    video = text.split('data-edge-widget="video"')[1].split("</section>")[0]
    assert "<video" in video and 'poster="/static/img/video-poster.png"' in video and "<img" in video


def test_pages_are_deterministic_across_processes():
    """Same bytes in another process with a different hash seed."""
    probe = (
        "import hashlib, sys;"
        "from edge.demo.pages import home_page; from edge.demo.images import render;"
        "sys.stdout.write(hashlib.sha256(home_page().encode() + render('hero-2.png')"
        " + render('product-07-thumb.png', 30)).hexdigest())"
    )
    from edge.demo.images import render
    from edge.demo.pages import home_page

    here = hashlib.sha256(
        home_page().encode() + render("hero-2.png") + render("product-07-thumb.png", 30)
    ).hexdigest()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    there = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert there == here


# ---------------------------------------------------------------- images


def test_images_valid_variants_and_headers():
    async def scenario(client):
        full = await client.get("/static/img/hero-1.png")
        again = await client.get("/static/img/hero-1.png")
        small = await client.get("/static/img/hero-1.png?w=210")
        cached = await client.get("/static/img/hero-1.png", headers={"If-None-Match": full.headers["etag"]})
        missing = await client.get("/static/img/nope.png")
        bad_width = await client.get("/static/img/hero-1.png?w=abc")
        return full, again, small, cached, missing, bad_width

    full, again, small, cached, missing, bad_width = run(scenario)
    spec = IMAGES["hero-1.png"]
    assert full.status_code == 200 and full.content == again.content
    assert full.headers["content-type"] == "image/png"
    assert full.headers["content-length"] == str(spec.bytes) == str(len(full.content))
    assert full.headers["cache-control"] == "public, max-age=86400"
    assert full.headers["etag"] == '"' + hashlib.sha256(full.content).hexdigest()[:32] + '"'
    assert check_png(full.content) == (spec.width, spec.height)
    assert check_png(small.content)[0] == 210
    assert len(small.content) < len(full.content) // 2
    assert cached.status_code == 304 and cached.content == b""
    assert missing.status_code == 404
    assert bad_width.status_code == 400


def test_every_registered_image_has_its_declared_size():
    from edge.demo.images import render

    for name in ("logo.png", "video-poster.png", "ad-3.png", "product-60-large.png", "product-33-card.png"):
        data = render(name)
        assert len(data) == IMAGES[name].bytes
        check_png(data)


# ---------------------------------------------------------------- shop pages


def test_search():
    async def scenario(client):
        return [await client.get("/search", params={"q": q}) for q in ("", "tea", '<script>"x"', "zzzz")]

    everything, tea, nasty, nothing = run(scenario)
    assert everything.status_code == 200
    assert everything.text.count('<article class="card"') >= 8 + 6  # results + recommendations
    assert "Ōsaka tea set" in tea.text
    assert "<script>&quot;x&quot;" not in nasty.text and '<script>"x"' not in nasty.text
    assert "&lt;script&gt;&quot;x&quot;" in nasty.text
    assert "0 results" in nothing.text
    widgets = PageScan(everything.text).widgets
    assert widgets == ["header", "search", "product-grid", "recommendations", "ads", "footer"]


def test_product_page_and_404():
    async def scenario(client):
        return [await client.get(p) for p in ("/product/5", "/product/999", "/product/abc", "/nowhere")]

    page, unknown, not_int, nowhere = run(scenario)
    assert page.status_code == 200 and "Ōsaka tea set" in page.text
    assert PageScan(page.text).widgets == ["header", "search", "product", "reviews", "recommendations", "video", "footer"]
    assert f'data-edge-bytes="{IMAGES["product-05-large.png"].bytes}"' in page.text
    for response in (unknown, not_int, nowhere):
        assert response.status_code == 404
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "Page not found" in response.text


def test_cart_flow_and_checkout_redirect():
    async def scenario(client):
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        first = await client.post("/cart", content=b"product_id=5", headers=form)
        second = await client.post("/cart", content=b"product_id=7", headers={**form, "Cookie": "cart=5"})
        bad = await client.post("/cart", content=b"product_id=999", headers=form)
        empty = await client.get("/cart", headers={"Cookie": ""})
        full = await client.get("/cart", headers={"Cookie": "cart=5.7.7"})
        checkout = await client.get("/checkout")
        return first, second, bad, empty, full, checkout

    first, second, bad, empty, full, checkout = run(scenario)
    assert first.status_code == 303 and first.headers["location"] == "/cart"
    assert first.headers["set-cookie"].startswith("cart=5; Path=/")
    assert second.headers["set-cookie"].startswith("cart=5.7; Path=/")
    assert bad.status_code == 400
    assert "Your cart is empty" in empty.text
    assert "Ōsaka tea set" in full.text and "Your cart (3 items)" in full.text
    assert PageScan(full.text).widgets == ["header", "cart", "footer"]
    assert checkout.status_code == 302 and checkout.headers["location"] == "/cart"


def test_layout_api():
    response = run(lambda c: c.get("/api/layout/home"))
    assert response.headers["content-type"] == "application/json"
    sections = response.json()["sections"]
    assert [s["widget"] for s in sections] == list(HOME_WIDGETS)
    for section in sections:
        assert section["priority"] == WIDGET_PRIORITY[section["widget"]]
        for item in section["items"]:
            assert {"id", "title", "image", "image_bytes"} <= item.keys()
            if item["image"]:
                assert item["image_bytes"] == IMAGES[item["image"].rsplit("/", 1)[1]].bytes


# ---------------------------------------------------------------- test helpers


def test_echo():
    body = os.urandom(3 * MIB + 17)

    async def scenario(client):
        posted = await client.post(
            "/echo/a/b?x=1&x=2",
            content=body,
            headers=[("X-Dup", "one"), ("X-Dup", "two"), ("Content-Type", "application/octet-stream")],
        )
        others = [await client.request(m, "/echo/z") for m in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS")]
        return posted, others

    posted, others = run(scenario)
    data = posted.json()
    assert posted.headers["content-type"] == "application/json"
    assert data["method"] == "POST" and data["path"] == "/echo/a/b" and data["query"] == "x=1&x=2"
    assert data["body_bytes"] == len(body) and data["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert [v for k, v in data["headers"] if k == "x-dup"] == ["one", "two"]
    assert all(k == k.lower() for k, _ in data["headers"])
    assert [r.json()["method"] for r in others] == ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"]
    assert others[0].json()["body_sha256"] == hashlib.sha256(b"").hexdigest()


def test_download_and_ranges():
    size = MIB

    async def scenario(client):
        full = await client.get("/download/1.bin")
        again = await client.get("/download/1.bin")
        ranges = {
            spec: await client.get("/download/1.bin", headers={"Range": spec})
            for spec in ("bytes=100-199", "bytes=-10", f"bytes={size - 5}-", "bytes=65530-65545", f"bytes=0-{size * 2}")
        }
        unsatisfiable = await client.get("/download/1.bin", headers={"Range": f"bytes={size}-"})
        too_big = await client.get("/download/101.bin")
        zero = await client.get("/download/0.bin")
        head = await client.head("/download/2.bin")
        return full, again, ranges, unsatisfiable, too_big, zero, head

    full, again, ranges, unsatisfiable, too_big, zero, head = run(scenario)
    assert full.status_code == 200 and len(full.content) == size
    assert full.headers["content-length"] == str(size)
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["accept-ranges"] == "bytes"
    assert full.content == again.content
    assert len(set(full.content[i : i + 64 * 1024] for i in range(0, size, 64 * 1024))) == 16
    expected = {
        "bytes=100-199": (100, 199),
        "bytes=-10": (size - 10, size - 1),
        f"bytes={size - 5}-": (size - 5, size - 1),
        "bytes=65530-65545": (65530, 65545),
        f"bytes=0-{size * 2}": (0, size - 1),
    }
    for spec, (first, last) in expected.items():
        response = ranges[spec]
        assert response.status_code == 206, spec
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert response.headers["content-length"] == str(last - first + 1)
        assert response.content == full.content[first : last + 1], spec
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    assert too_big.status_code == 404 and zero.status_code == 404
    assert head.status_code == 200 and head.headers["content-length"] == str(2 * MIB) and head.content == b""


def test_status_codes():
    async def scenario(client):
        return {code: await client.get(f"/status/{code}") for code in (200, 204, 302, 304, 404, 418, 503, 99)}

    responses = run(scenario)
    assert responses[200].text == "200 OK\n"
    assert responses[404].status_code == 404 and responses[404].text.startswith("404")
    assert responses[418].status_code == 418
    assert responses[503].status_code == 503
    for code in (204, 304):
        assert responses[code].status_code == code and responses[code].content == b""
    assert responses[302].status_code == 302 and responses[302].headers["location"] == "/"
    assert responses[99].status_code == 400


def test_slow():
    """``/slow?ms=N`` waits N ms: started longest first, concurrent requests finish shortest first.

    Order, not wall time (the machines are shared): no clock bound on how long a wait took.
    """

    async def scenario(client):
        finished: list[int] = []

        async def fetch(ms: int) -> httpx.Response:
            response = await client.get("/slow", params={"ms": ms})
            finished.append(ms)
            return response

        # Created (and started) in the order 400, 200, 0: each one is in flight before the next.
        responses = await asyncio.gather(*(fetch(ms) for ms in (400, 200, 0)))
        bad = await client.get("/slow", params={"ms": "soon"})
        return finished, responses, bad

    finished, responses, bad = run(scenario)
    for ms, response in zip((400, 200, 0), responses):
        assert response.status_code == 200 and f"Answered after {ms} ms" in response.text
    assert finished == [0, 200, 400]
    assert bad.status_code == 400


def test_gzip_no_transform_and_multi_headers():
    async def scenario(client):
        async with client.stream("GET", "/gzip-page") as response:
            raw = b"".join([part async for part in response.aiter_raw()])
        return (
            response,
            raw,
            await client.get("/no-transform"),
            await client.get("/headers/multi"),
        )

    gz, raw, no_transform, multi = run(scenario)
    assert gz.headers["content-encoding"] == "gzip"
    assert gz.headers["content-type"] == "text/html; charset=utf-8"
    assert gzip.decompress(raw).startswith(b"<!DOCTYPE html>")
    assert no_transform.headers["cache-control"] == "no-transform"
    assert "<html" in no_transform.text
    assert multi.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert multi.headers["x-upstream"] == "yes"
    assert multi.headers["connection"] == "X-Drop-Me" and multi.headers["x-drop-me"] == "1"
