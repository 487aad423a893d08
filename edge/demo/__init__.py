"""A deterministic sample storefront for demos, tests and benchmarks.

``build_storefront()`` returns a Starlette ASGI app: a small shop (home,
search, product, cart pages; widgets marked ``data-edge-widget``; generated
PNG images of exact, declared byte sizes) plus test helper endpoints for the
proxy (echo, ranged downloads, slow responses, status codes...). The same URL
gives the same bytes in every run and every process.

    >>> import asyncio, httpx
    >>> async def fetch():
    ...     transport = httpx.ASGITransport(app=build_storefront())
    ...     async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
    ...         return await client.get("/")
    >>> response = asyncio.run(fetch())
    >>> response.status_code, response.headers["content-type"]
    (200, 'text/html; charset=utf-8')

Modules: :mod:`~edge.demo.catalog` (products and reviews),
:mod:`~edge.demo.images` (PNG generation), :mod:`~edge.demo.layout` (widget
names and priorities), :mod:`~edge.demo.pages` (HTML),
:mod:`~edge.demo.download` and :mod:`~edge.demo.probes` (test helpers),
:mod:`~edge.demo.app` (routes).
"""

from edge.demo.app import build_storefront

__all__ = ["build_storefront"]
