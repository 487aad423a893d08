"""What carries the proxy's httpx requests to the storefront.

The proxy speaks httpx's API to every transport (edge's own also takes a leaner
call for a request held whole, :meth:`~edge.transport.http1.Http1Transport.exchange`);
underneath, the transport is a setting (``EDGE_UPSTREAM_TRANSPORT``), chosen by
measurement (``loadtests/bench.py``; figures in the README):

- ``http1`` (default): :class:`edge.transport.http1.Http1Transport`, edge's own
  HTTP/1.1 keep-alive pool parsed by httptools — the cheapest per request;
- ``aiohttp``: httpx-aiohttp's transport over an aiohttp ``ClientSession``
  (several times httpcore's throughput, below ``http1``'s);
- ``httpx``: httpx's own httpcore transport.

The aiohttp session is configured as a reverse proxy needs: no cookie jar
(the session is shared by every shopper), no automatic request headers
(``User-Agent``, ``Accept``, ``Accept-Encoding`` stay what the shopper sent),
no decompression (bodies pass through byte-exact).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from edge.core.settings import Settings
from edge.transport.http1 import Http1Transport

__all__ = ["make_transport", "upstream_error_kind"]

_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def make_transport(settings: Settings) -> httpx.AsyncBaseTransport | None:
    """The transport for ``settings.upstream_transport`` (None: httpx's default)."""
    if settings.upstream_transport == "httpx":
        return None
    if settings.upstream_transport == "http1":
        return Http1Transport(max_connections=settings.pool_size, keepalive_expiry=30.0)

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=settings.pool_size,
            limit_per_host=settings.pool_size,
            keepalive_timeout=30.0,
            ttl_dns_cache=60,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            auto_decompress=False,
            trust_env=False,
        )

    return _CoalescingTransport(client=session)


class _AnyChunks(httpx.AsyncByteStream):
    """The body as aiohttp has it buffered: one chunk per read of everything that has arrived.

    httpx-aiohttp reads fixed 16 KB chunks; each chunk then crosses every layer (httpx, the
    proxy, the middleware, uvicorn, a socket write). Taking what is there instead cuts a 130 KB
    page from ~9 trips to 1–3 and still streams a slow body as it comes.
    """

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with map_aiohttp_exceptions():
            content = self._response.content
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk

    async def aclose(self) -> None:
        with map_aiohttp_exceptions():
            await self._response.__aexit__(None, None, None)


class _CoalescingTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except aiohttp.ClientResponseError as exc:
            # A response aiohttp could not parse (a head line over its limit, a bad status line):
            # httpx-aiohttp leaves these unmapped.
            raise httpx.RemoteProtocolError(f"malformed upstream response: {exc.message}", request=request) from exc
        stream = response.stream
        aiohttp_response = getattr(stream, "_aiohttp_response", None)
        if aiohttp_response is not None:
            response.stream = _AnyChunks(aiohttp_response)
        return response


def upstream_error_kind(exc: httpx.HTTPError) -> tuple[str, bool]:
    """(metric kind, is a timeout) for an upstream failure, whichever transport raised it.

    httpx-aiohttp maps some aiohttp connection errors to httpx timeouts (a server
    that hangs up becomes ``ConnectTimeout``), so the original cause decides.
    """
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError) or isinstance(cause, TimeoutError):
        if isinstance(cause, (aiohttp.ServerTimeoutError, TimeoutError)):
            return "timeout", True
        if isinstance(cause, aiohttp.ClientConnectorError):
            return "connect", False
        if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
            return "read", False
        return "protocol" if isinstance(cause, aiohttp.ClientResponseError) else "other", False
    if isinstance(exc, httpx.PoolTimeout):
        return "pool", True
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", True
    if isinstance(exc, httpx.ConnectError):
        return "connect", False
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.LocalProtocolError)):
        return "protocol", False
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return "read", False
    return "other", False
