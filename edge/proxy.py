"""The reverse proxy: forward a request to the storefront and stream its answer back.

One shared :class:`httpx.AsyncClient` (opened and closed by the app's lifespan)
carries every request, so connections to the storefront are pooled and kept
alive. The proxy is transparent except where HTTP says a proxy must act:

- hop-by-hop headers (RFC 9110 §7.6.1: ``Connection``, the fields it names,
  ``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``, ``Proxy-Authorization``,
  ``Proxy-Authenticate``) are dropped in both directions;
- ``X-Forwarded-For`` (appended), ``X-Forwarded-Proto``, ``X-Forwarded-Host``
  and ``Via`` are added; ``Host`` is the client's (``preserve_host``, the
  default, as Envoy does) or the upstream's own (like nginx's default);
- redirects are passed through, never followed; several ``Set-Cookie`` stay
  separate; bodies stream through chunk by chunk, never buffered here;
- the storefront refusing or resetting the connection gives a ``502``, not
  answering in time a ``504``, each with a one-line plain-text body.

The proxy never adds ``Accept-Encoding`` or other defaults of its own: the
storefront sees what the shopper's client sent, so what comes back is what
that client can decode.
"""

from __future__ import annotations

import logging
from email.utils import formatdate
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from starlette.types import Message, Receive, Scope, Send

from edge import metrics
from edge.errors import UpstreamStreamBroken
from edge.settings import Settings
from edge.transport import make_transport, upstream_error_kind

__all__ = ["ReverseProxy", "HOP_BY_HOP"]

log = logging.getLogger("edge.proxy")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)
VIA = b"1.1 edge"
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


def strip_hop_by_hop(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop fields, including any named in ``Connection``; names come out lower-case.

    >>> strip_hop_by_hop([(b"Connection", b"close, X-Trace"), (b"X-Trace", b"1"), (b"Accept", b"*/*")])
    [(b'accept', b'*/*')]
    """
    named = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return [
        (name.lower(), value)
        for name, value in headers
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]


class ReverseProxy:
    """ASGI app forwarding every request to ``settings.upstream``.

    Call :meth:`open` and :meth:`aclose` from the lifespan (``edge.app`` does).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.upstream = httpx.URL(settings.upstream)
        self.client: httpx.AsyncClient | None = None
        self.transport: httpx.AsyncBaseTransport | None = None
        self._timeout: dict[str, float | None] = {}

    async def open(self) -> None:
        timeout = httpx.Timeout(
            connect=self.settings.connect_timeout,
            read=self.settings.read_timeout,
            write=self.settings.read_timeout,
            pool=self.settings.connect_timeout,
        )
        limits = httpx.Limits(
            max_connections=self.settings.pool_size,
            max_keepalive_connections=self.settings.pool_size,
            keepalive_expiry=30.0,
        )
        # A jar that refuses every cookie: the client is shared by all shoppers, so a storefront's
        # Set-Cookie must go to the shopper who caused it and never be replayed for anyone else.
        no_cookies = httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))
        # The client owns the transport (its pool) and closes it; requests go straight to the
        # transport: the client's own layers (redirects, auth, cookies) are what a reverse proxy
        # must not apply, and they cost every request (the cookie jar alone ~5% of the CPU).
        self.transport = make_transport(self.settings) or httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        self.client = httpx.AsyncClient(
            timeout=timeout,
            limits=limits,
            follow_redirects=False,
            trust_env=False,
            cookies=no_cookies,
            transport=self.transport,
        )
        self._timeout = timeout.as_dict()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = self.transport = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        transport = self.transport
        if transport is None:
            await _plain(send, 503, b"edge is starting\n")
            return
        # httpx.Request directly, not client.build_request: the client would merge its default
        # headers (User-Agent, Accept, Accept-Encoding) and cookies into what the shopper sent.
        # A transport reports a broken request as httpx.HTTPError, like the client would.
        request = httpx.Request(
            scope["method"],
            self._url(scope),
            headers=self._request_headers(scope),
            content=self._body(scope, receive),
            extensions={"timeout": self._timeout},
        )
        try:
            response = await transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            kind, timed_out = upstream_error_kind(exc)
            metrics.UPSTREAM_ERRORS.labels(kind).inc()
            _PROXIED_5XX.inc()
            if timed_out:
                await _plain(send, 504, b"upstream timed out\n")
            else:
                log.warning("upstream %s error: %s", kind, (exc.__cause__ or exc).__class__.__name__)
                await _plain(send, 502, b"upstream unavailable\n")
            return
        try:
            _PROXIED[response.status_code // 100].inc()
            headers = strip_hop_by_hop(response.headers.raw)
            headers.append((b"via", VIA))
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            try:
                async for chunk in response.aiter_raw():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:
                # Headers are out: the only honest signal left is to abort the connection.
                metrics.UPSTREAM_ERRORS.labels(upstream_error_kind(exc)[0]).inc()
                raise UpstreamStreamBroken(f"upstream body broke off: {exc.__class__.__name__}") from None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    def _url(self, scope: Scope) -> httpx.URL:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")
        return self.upstream.copy_with(raw_path=target)

    def _request_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        incoming = scope["headers"]
        headers = [(n, v) for n, v in strip_hop_by_hop(incoming) if n not in _REPLACED_REQUEST_HEADERS]
        original_host = next((v for n, v in incoming if n == b"host"), None)
        if self.settings.preserve_host and original_host is not None:
            headers.append((b"host", original_host))
        prior_xff = b", ".join(v for n, v in incoming if n == b"x-forwarded-for")
        client = scope.get("client")
        client_ip = client[0].encode() if client else b"unknown"
        headers.append((b"x-forwarded-for", prior_xff + b", " + client_ip if prior_xff else client_ip))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if original_host is not None:
            headers.append((b"x-forwarded-host", original_host))
        prior_via = b", ".join(v for n, v in incoming if n == b"via")
        headers.append((b"via", prior_via + b", " + VIA if prior_via else VIA))
        return headers

    def _body(self, scope: Scope, receive: Receive) -> AsyncIterator[bytes] | None:
        if scope["method"] in _NO_BODY_METHODS and not any(
            n in (b"content-length", b"transfer-encoding") for n, _ in scope["headers"]
        ):
            return None
        return _stream_request_body(receive)


# Label children resolved once: the per-request path only increments.
_PROXIED = {i: metrics.PROXIED.labels(f"{i}xx") for i in range(1, 6)}
_PROXIED_5XX = _PROXIED[5]

_REPLACED_REQUEST_HEADERS = frozenset({b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"via"})


async def _stream_request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"date", formatdate(usegmt=True).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
