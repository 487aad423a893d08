"""A storefront whose small image variants never arrive: the lite tier (which uses them) cannot load.

Served by uvicorn in a real process (``uvicorn stallshop:app``) for tests/preview/test_preview.py.
The page's image ``/img/a.png`` answers at once; its variant ``/img/a.png?w=160`` (what the lite
tier's image rule points at) sends its headers and then never finishes its body.
"""

from __future__ import annotations

import asyncio
import base64

# A 1×1 grey PNG.
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg==")
PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>Stall shop</title></head><body>
<h1>Stall shop</h1><img src="/img/a.png" width="200" height="200" alt="a mug">
<div data-edge-widget="ads"><p>Buy more mugs!</p></div>
</body></html>"""


async def app(scope: dict, receive, send) -> None:  # noqa: ANN001 - a bare ASGI app
    if scope["type"] != "http":
        return
    path, query = scope["path"], scope.get("query_string", b"")
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": PAGE})
    elif path == "/img/a.png" and not query:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]})
        await send({"type": "http.response.body", "body": PIXEL})
    elif path == "/img/a.png":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": PIXEL[:10], "more_body": True})
        await asyncio.sleep(3600)  # the rest of the variant never comes
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"not found"})
