"""The fast path: a page request served without the ASGI layers between the server and the storefront.

Most requests a storefront gets are page views at the full tier: a ``GET`` with no body, answered by
an uncompressed HTML page of declared length, which edge streams through with the switch link and the
beacon spliced in before ``</body>``. The ASGI path serves them through uvicorn's cycle, the
middleware, the proxy and the responder, with a message dict and an ``await`` per layer and the page
copied once more for the splice. For such a request edge's public protocol
(:mod:`edge.runtime.protocol`) runs :class:`FastPath` instead of the app: the same steps, with the
same functions, in the same order, and the spliced page written with its head in one ``writev``
without joining it first. A page decided lite or minimal is laid out and written the same way.

Which requests (:meth:`FastPath.takes`, before anything is done): ``GET`` over HTTP/1.1, not an
``/__edge/`` path, no ``Content-Length``, ``Transfer-Encoding``, ``Expect``, ``Upgrade``,
``If-None-Match`` or ``Cache-Control: no-transform``, a path and ``Sec-Fetch-Dest`` that look like a
page (the middleware's ``likely_page``), on a fail-open edge whose upstream transport is
``http1``. Every other request goes to the app, unchanged.

Which answers: the fast path sends the request upstream exactly as the proxy does
(:meth:`~edge.transport.proxy.ReverseProxy.exchange`) and, while the storefront works, decides the
tier in the next loop step as the middleware does. Only a ``200`` ``text/html`` page with a numeric
``Content-Length`` under ``max_rewrite_bytes``, no ``Content-Encoding`` and no ``no-transform`` is
served here: decided ``full``, spliced; decided ``lite`` or ``minimal``, laid out by the responder's
own buffered step (:meth:`~edge.adapt.responder.Responder.laid_out`: the rewrite cache, a layout
template or lol_html, the adapted headers) and written with its head in one ``writev``. Any other
answer (a redirect, a 304, an image, a gzip page, a failure upstream) goes to the proxy's relay and
a :class:`~edge.adapt.responder.Responder` exactly as on the ASGI path, which the fast path has not
touched by then. A page whose body is still arriving when its head is in streams through the
responder's splice (full) or is held by its buffered path (lite), as on the ASGI path. The bytes the shopper and the
storefront see are the ASGI path's (``tests/runtime/test_fast_path.py`` compares both over sockets).

    >>> from edge.runtime.app import build_edge
    >>> from edge.core.settings import Settings
    >>> edge = build_edge(Settings(fail_mode="open"))
    >>> asyncio.run(edge.proxy.open())  # (the lifespan does it)
    >>> page = {"method": "GET", "http_version": "1.1", "path": "/shop", "headers": [(b"host", b"shop")]}
    >>> edge.fast_path.takes(page), edge.fast_path.takes({**page, "path": "/hero.png"})
    (True, False)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from edge.adapt.headers import adapted_headers
from edge.adapt.middleware import _ASSET_DESTINATIONS, _ASSET_SUFFIXES, EDGE_PATH_PREFIX
from edge.adapt.responder import Responder, observe_upstream
from edge.core import metrics
from edge.core.errors import UpstreamStreamBroken
from edge.pipeline.rewrite import StreamSplicer
from edge.runtime.callback_exchange import start_callback_exchange
from edge.transport.http1 import Http1Transport, RawResponse
from edge.transport.proxy import PROXIED, response_headers

if TYPE_CHECKING:
    from edge.adapt.middleware import AdaptiveMiddleware
    from edge.runtime.protocol import EdgeHttpProtocol, _Cycle
    from edge.transport.proxy import ReverseProxy

__all__ = ["FastPath"]

log = logging.getLogger("edge.adapt")

#: Request fields that send a request down the ASGI path: a body or its framing, an upgrade, a
#: conditional request (decided before it goes upstream), a 100-continue.
_NOT_FAST = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"if-none-match"})
_OK = metrics.counting(PROXIED[2])
_FAST_PAGE = metrics.counting(metrics.FAST_PATH)


class FastPath:
    """The fast path for one edge (see the module docstring): an ASGI app for the requests it takes."""

    def __init__(self, middleware: AdaptiveMiddleware, proxy: ReverseProxy, app: Any) -> None:
        self.mw = middleware
        self.proxy = proxy
        #: The app it stands in for (edge's public app): the protocol uses the fast path only in front of it.
        self.app = app

    def takes(self, scope: Scope) -> bool:
        """Whether this request (its head parsed, header names lower-case) is the fast path's."""
        if scope["method"] != "GET" or scope["http_version"] != "1.1" or self.mw.strict:
            return False
        path = scope["path"]
        if not isinstance(self.proxy.transport, Http1Transport) or path.startswith(EDGE_PATH_PREFIX):
            return False
        dest = None
        for name, value in scope["headers"]:
            if name in _NOT_FAST or (name == b"cache-control" and b"no-transform" in value.lower()):
                return False
            if name == b"sec-fetch-dest" and dest is None:
                dest = value
        # The middleware's likely_page, in this one pass over the headers: not an asset's path nor destination.
        return not path.lower().endswith(_ASSET_SUFFIXES) and dest not in _ASSET_DESTINATIONS

    def start(self, protocol: EdgeHttpProtocol, cycle: _Cycle) -> bool:
        """Run this request (taken) without a task when it can be (:mod:`edge.runtime.callback_exchange`): True
        when it runs so; False, with nothing done, when the protocol must start a task running this app."""
        return start_callback_exchange(self, protocol, cycle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the middleware and the proxy do for this request (uvicorn's cycle runs it, as it runs the app)."""
        mw = self.mw
        responder = Responder(mw, scope, send)
        # As the middleware: decide in the next loop step, after the request has gone upstream.
        asyncio.get_running_loop().call_soon(responder.decide_early)
        proxy = self.proxy
        transport = proxy.transport
        if not isinstance(transport, Http1Transport):  # closed since takes(): the proxy answers
            try:
                await proxy(scope, receive, responder.send)
            except UpstreamStreamBroken as exc:
                await _broke(responder, exc)
            return
        response = await proxy.exchange(transport, scope, b"", responder.send)
        if response is not None:
            await self.answer(response, responder, send)

    async def answer(self, response: RawResponse, responder: Responder, send: Send) -> None:
        """The storefront's answer (its head is in) to the shopper: a page served here, or the proxy's relay."""
        try:
            try:
                if not await self._serve_page(response, responder, send):
                    await self.proxy._relay(response.status, response.headers, response.next_chunk, responder.send)
            finally:
                response.close()
        except UpstreamStreamBroken as exc:
            await _broke(responder, exc)

    async def _serve_page(self, response: RawResponse, responder: Responder, send: Send) -> bool:
        """The answer as a full-tier page, spliced; False, with nothing done, when it is not one."""
        verdict = responder.verdict
        if response.status != 200 or verdict is None:
            return False
        headers = response_headers(response.headers)
        page = self._page(headers)
        if page is None:
            return False
        if verdict.decision.tier != "full":
            return await self._serve_laid_out(response, responder, send, headers, page[1])
        spliced = self.splice_head(responder, headers, page)
        if spliced is None:
            # As the responder: the page is held and laid out for its tier (the buffered path), or served as it came.
            await self.proxy.relay_body(response.next_chunk, responder.send)
            return True
        out, splicer = spliced
        body = response.whole()
        cycle = getattr(send, "__self__", None)
        send_whole = getattr(cycle, "send_whole", None)
        if body is None or send_whole is None:
            # The page is still arriving: stream it through the responder's splice.
            responder.splicer, responder.mode = splicer, "splice"
            await send({"type": "http.response.start", "status": 200, "headers": out})
            await self.proxy.relay_body(response.next_chunk, responder.send)
            return True
        responder.mode = "done"
        await send_whole(200, out, splicer.finish_pieces(body))
        self.spliced(responder, body, splicer)
        return True

    def splice_head(
        self, responder: Responder, headers: list[tuple[bytes, bytes]], page: tuple[int, bytes]
    ) -> tuple[list[tuple[bytes, bytes]], StreamSplicer] | None:
        """A full-tier page's head is in (its lower-case ``headers``, ``page`` from :meth:`_page`): the proxy's
        relay of the head, then the responder's start of a splice: (the headers to send, the splicer). None when
        adapting it failed (counted): the responder then holds the page (its buffered path), to be relayed to it."""
        verdict = responder.verdict
        assert verdict is not None
        length, responder.content_type = page
        _OK()
        responder.upstream_s = time.perf_counter() - responder.started
        observe_upstream(responder.upstream_s)
        try:
            token = responder._issue(verdict, "full")
            snippet = responder._snippet("full", token)
            out = adapted_headers(
                headers,
                "full",
                verdict.decision,
                length + len(snippet),
                None,
                responder.upstream_s,
                verdict.model_s,
                0.0,
                verdict.set_cookie,
            )
        except Exception as exc:
            self.mw.fail_open("respond", exc)
            responder.kind, responder.mode = "html", "buffer"
            responder.start = {"type": "http.response.start", "status": 200, "headers": headers}
            return None
        out.append((b"edge-token", token.encode()))
        return out, StreamSplicer(snippet, length)

    def spliced(self, responder: Responder, body: bytes, splicer: StreamSplicer) -> None:
        """A full-tier page written whole: its counters."""
        assert responder.verdict is not None
        responder._count("full", responder.verdict.decision.source, len(body), len(body) + len(splicer.snippet))
        _FAST_PAGE()

    async def _serve_laid_out(
        self, response: RawResponse, responder: Responder, send: Send, headers: list[tuple[bytes, bytes]], content_type: bytes
    ) -> bool:
        """The answer as a page laid out for its (lite or minimal) tier: the responder's buffered path, its
        page and headers written in one ``writev``; False, with nothing done, when the cycle cannot."""
        send_whole = getattr(getattr(send, "__self__", None), "send_whole", None)
        if send_whole is None:
            return False
        self.hold(responder, headers, content_type)
        body = response.whole()
        if body is None:
            # The page is still arriving: held, as the responder holds it (its declared length is under
            # max_rewrite_bytes); should it break off, the responder answers 502 or 504 as for a held page.
            responder.mode = "buffer"
            body = await self.proxy.read_body(response.next_chunk)
        responder.mode = "done"
        tier, out, served = responder.laid_out(body)
        await send_whole(200, headers if out is None else out, [served])
        self.laid_out(responder, tier, body, served)
        return True

    def hold(self, responder: Responder, headers: list[tuple[bytes, bytes]], content_type: bytes) -> None:
        """A lite or minimal page's head is in: the proxy's relay of the head, then the responder holding the page."""
        _OK()
        responder.upstream_s = time.perf_counter() - responder.started
        observe_upstream(responder.upstream_s)
        responder.kind, responder.content_type = "html", content_type
        responder.start = {"type": "http.response.start", "status": 200, "headers": headers}

    def laid_out(self, responder: Responder, tier: str, body: bytes, served: bytes) -> None:
        """A page laid out and written whole: its counters."""
        assert responder.verdict is not None
        responder._count(tier, responder.verdict.decision.source, len(body), len(served))
        _FAST_PAGE()

    def _page(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes] | None:
        """(declared length, lower-case content type) of an uncompressed HTML page edge adapts, from its
        lower-case headers; None for anything else, or anything the responder would count as unclassified."""
        length: int | None = None
        content_type: bytes | None = None
        for name, value in headers:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
            elif name == b"content-type":
                if content_type is not None:
                    return None  # two: the responder reads the last
                content_type = value.lower()
                if not content_type.startswith(b"text/html"):
                    return None
            elif name == b"content-encoding" or (name == b"cache-control" and b"no-transform" in value.lower()):
                return None
        if content_type is None or length is None or length > self.mw.max_body:
            return None
        return length, content_type


async def _broke(responder: Responder, exc: UpstreamStreamBroken) -> None:
    if not await responder.upstream_broke(exc):
        log.warning("%s after the response started: connection aborted", exc)
