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

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from starlette.types import Message, Receive, Scope, Send

from edge.core import metrics
from edge.core.errors import UpstreamStreamBroken
from edge.core.settings import Settings
from edge.transport.http1 import Http1Transport, RawResponse, request_head
from edge.transport.upstream import make_transport, upstream_error_kind

__all__ = ["ReverseProxy", "HOP_BY_HOP", "PROXIED", "response_headers"]

log = logging.getLogger("edge.transport.proxy")

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
#: Upstream URLs kept by request target (httpx builds one in ~40 µs, a sizeable share of a full-tier
#: request): targets up to this long, this many of them (all forgotten when full).
_URL_MEMO_TARGET_BYTES = 512
_URL_MEMO_SIZE = 4096


def strip_hop_by_hop(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop fields, including any named in ``Connection``; names come out lower-case.

    >>> strip_hop_by_hop([(b"Connection", b"close, X-Trace"), (b"X-Trace", b"1"), (b"Accept", b"*/*")])
    [(b'accept', b'*/*')]
    """
    out: list[tuple[bytes, bytes]] = []
    named: set[bytes] | None = None
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            if lower == b"connection":
                named = named or set()
                named.update(token.strip().lower() for token in value.split(b","))
            continue
        out.append((lower, value))
    return [pair for pair in out if pair[0] not in named] if named else out


class ReverseProxy:
    """ASGI app forwarding every request to ``settings.upstream``.

    Call :meth:`open` and :meth:`aclose` from the lifespan (``edge.runtime.app`` does).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.upstream = httpx.URL(settings.upstream)
        self._urls: dict[bytes, tuple[httpx.URL, bytes]] = {}
        # What Http1Transport.exchange needs of the upstream (only the target changes per request).
        self._origin = (self.upstream.scheme, self.upstream.host, self.upstream.port)
        self._netloc = self.upstream.netloc
        self.client: httpx.AsyncClient | None = None
        self.transport: httpx.AsyncBaseTransport | None = None
        self._timeout: dict[str, float | None] = {}
        # Streamed uploads (bodies over request_buffer_bytes) hold an upstream connection as long as the
        # client takes: at most this many at once, so slow uploaders cannot take the whole pool.
        self._uploads = asyncio.Semaphore(settings.max_streaming_uploads or max(1, settings.pool_size // 4))

    async def open(self) -> None:
        timeout = httpx.Timeout(
            connect=self.settings.connect_timeout,
            read=self.settings.read_timeout,
            write=self.settings.read_timeout,
            pool=self.settings.pool_timeout,
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
        content: bytes | AsyncIterator[bytes] | None = None
        upload: _Upload | None = None
        if self._has_body(scope):
            try:
                content, complete = await self._buffer_body(receive)
            except _BodyIncomplete as exc:
                await _body_failed(send, exc.reason)
                return
            if not complete:
                upload = await self._upload_slot()
                if upload is None:
                    await _plain(send, 503, b"too many uploads in progress\n")
                    return
                content = upload.stream(content, receive)
        try:
            await self._forward(scope, content, upload, send)
        finally:
            if upload is not None:
                upload.release()

    async def _forward(self, scope: Scope, content: bytes | AsyncIterator[bytes] | None, upload: _Upload | None, send: Send) -> None:
        transport = self.transport
        assert transport is not None
        if isinstance(transport, Http1Transport) and not isinstance(content, AsyncIterator):
            # edge's own transport, body held whole (every GET): no httpx.Request or Response is built,
            # and the body's last chunk is known as it arrives.
            raw = await self.exchange(transport, scope, content or b"", send)
            if raw is not None:
                try:
                    await self._relay(raw.status, raw.headers, raw.next_chunk, send)
                finally:
                    raw.close()
            return
        url = self._upstream_target(scope)[0]
        headers = self._request_headers(scope)
        try:
            # httpx.Request directly, not client.build_request: the client would merge its default
            # headers (User-Agent, Accept, Accept-Encoding) and cookies into what the shopper sent.
            # A transport reports a broken request as httpx.HTTPError, like the client would.
            request = httpx.Request(scope["method"], url, headers=headers, content=content, extensions={"timeout": self._timeout})
            response = await transport.handle_async_request(request)
        except Exception as exc:
            # A streamed upload that broke off (the client left or paused too long) aborts the upstream
            # request, whatever error the transport made of it: the storefront never gets it whole.
            if upload is not None and upload.failure is not None:
                await _body_failed(send, upload.failure)
                return
            if not isinstance(exc, httpx.HTTPError):
                # A transport's own error that it did not map to httpx's: still the storefront's side.
                log.error("upstream request failed: %s: %.200s", exc.__class__.__name__, exc)
                exc = httpx.TransportError(str(exc))
            await self._upstream_failed(send, exc)
            return
        chunks = response.aiter_raw().__aiter__()

        async def next_chunk() -> tuple[bytes, bool]:
            try:
                return await chunks.__anext__(), False
            except StopAsyncIteration:
                return b"", True

        try:
            await self._relay(response.status_code, response.headers.raw, next_chunk, send)
        finally:
            await response.aclose()

    async def exchange(self, transport: Http1Transport, scope: Scope, body: bytes, send: Send) -> RawResponse | None:
        """This request, its ``body`` held whole, to the storefront over edge's own transport: its answer,
        or None when there is none (``send`` then got the 502, 503 or 504, counted)."""
        target = self._upstream_target(scope)[1]
        method = scope["method"].upper()
        headers = upstream_request_headers(method, self._request_headers(scope), body, self._netloc)
        try:
            return await transport.exchange(method, self._origin, target, headers, body, self._timeout)
        except Exception as exc:
            await self.exchange_failed(exc, send)
            return None

    def upstream_head(self, scope: Scope) -> bytes:
        """The head :meth:`exchange` writes for this request without a body; raises what the transport would."""
        method = scope["method"].upper()
        headers = upstream_request_headers(method, self._request_headers(scope), b"", self._netloc)
        return request_head(method.encode("ascii"), self._upstream_target(scope)[1], headers)

    async def exchange_failed(self, exc: Exception, send: Send) -> None:
        """What :meth:`exchange` answers when no answer came (502, 503 or 504, counted)."""
        if not isinstance(exc, httpx.HTTPError):
            # A transport's own error that it did not map to httpx's: still the storefront's side.
            log.error("upstream request failed: %s: %.200s", exc.__class__.__name__, exc)
            exc = httpx.TransportError(str(exc))
        await self._upstream_failed(send, exc)

    async def _relay(
        self, status: int, raw_headers: list[tuple[bytes, bytes]], next_chunk: Callable[[], Awaitable[tuple[bytes, bool]]], send: Send
    ) -> None:
        """The storefront's answer to the client: its head, then its body as it arrives (the last chunk
        in the message that ends the response, when the transport knows it is the last)."""
        if not 200 <= status < 600:
            # 101 to a request that asked no upgrade, or a status HTTP does not have: not relayable.
            metrics.UPSTREAM_ERRORS.labels("protocol").inc()
            _PROXIED_5XX.inc()
            log.warning("upstream answered with status %d: not relayed", status)
            await _plain(send, 502, b"upstream unavailable\n")
            return
        _PROXIED_INC[status // 100]()
        await send({"type": "http.response.start", "status": status, "headers": response_headers(raw_headers)})
        await self.relay_body(next_chunk, send)

    async def relay_body(self, next_chunk: Callable[[], Awaitable[tuple[bytes, bool]]], send: Send) -> None:
        """The body of an answer whose head is out, as it arrives; a body that breaks off raises
        :class:`~edge.core.errors.UpstreamStreamBroken` (counted)."""
        try:
            while True:
                chunk, last = await next_chunk()
                if last:
                    break
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            # Headers are out: the only honest signal left is to abort the connection.
            raise _broken(exc) from None
        await send({"type": "http.response.body", "body": chunk, "more_body": False})

    async def read_body(self, next_chunk: Callable[[], Awaitable[tuple[bytes, bool]]]) -> bytes:
        """The rest of an answer's body, whole (the caller bounds it: a declared length edge accepted); one that
        breaks off raises :class:`~edge.core.errors.UpstreamStreamBroken` (counted), as :meth:`relay_body`."""
        chunks: list[bytes] = []
        try:
            while True:
                chunk, last = await next_chunk()
                if chunk:
                    chunks.append(chunk)
                if last:
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except httpx.HTTPError as exc:
            raise _broken(exc) from None

    async def _upstream_failed(self, send: Send, exc: httpx.HTTPError) -> None:
        kind, timed_out = upstream_error_kind(exc)
        metrics.UPSTREAM_ERRORS.labels(kind).inc()
        _PROXIED_5XX.inc()
        if isinstance(exc, httpx.PoolTimeout):
            await _plain(send, 503, b"no free upstream connection\n")
        elif timed_out:
            await _plain(send, 504, b"upstream timed out\n")
        else:
            log.warning("upstream %s error: %s", kind, (exc.__cause__ or exc).__class__.__name__)
            await _plain(send, 502, b"upstream unavailable\n")

    def _has_body(self, scope: Scope) -> bool:
        if scope["method"] not in _NO_BODY_METHODS:
            return True
        return any(n in (b"content-length", b"transfer-encoding") for n, _ in scope["headers"])

    async def _buffer_body(self, receive: Receive) -> tuple[bytes, bool]:
        """The body read whole if it fits ``request_buffer_bytes`` (True), else what came so far (False).

        Reading a small body before asking the storefront (as nginx does) means a slow client holds no
        upstream connection, and a body that never completes never reaches the storefront.
        """
        limit = self.settings.request_buffer_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await _receive_body(receive, self.settings.body_timeout)
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True
            if size > limit:
                return b"".join(chunks), False

    async def _upload_slot(self) -> _Upload | None:
        """A slot for one streamed upload, waiting up to the pool timeout; None when none freed up."""
        try:
            async with asyncio.timeout(self.settings.pool_timeout):
                await self._uploads.acquire()
        except TimeoutError:
            metrics.CLIENT_REJECTED.labels("upload_limit").inc()
            return None
        return _Upload(self._uploads, self.settings.body_timeout)

    def _url(self, scope: Scope) -> httpx.URL:
        """The upstream URL for this request's target."""
        return self._upstream_target(scope)[0]

    def _upstream_target(self, scope: Scope) -> tuple[httpx.URL, bytes]:
        """The upstream URL for this request's target, and the target as it goes upstream (httpx's quoting)."""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")
        known = self._urls.get(target)
        if known is None:
            url = self.upstream.copy_with(raw_path=target)  # (httpx.URL is immutable: safe to share)
            known = (url, url.raw_path)
            if len(target) <= _URL_MEMO_TARGET_BYTES:
                if len(self._urls) >= _URL_MEMO_SIZE:
                    self._urls.clear()
                self._urls[target] = known
        return known

    def _request_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The client's headers for the storefront: hop-by-hop fields out (:func:`strip_hop_by_hop`), then
        ``Host`` (when preserved), ``X-Forwarded-For`` (appended), ``-Proto``, ``-Host`` and ``Via``. One pass."""
        headers: list[tuple[bytes, bytes]] = []
        named: set[bytes] | None = None
        original_host: bytes | None = None
        prior_xff: list[bytes] = []
        prior_via: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"host":
                if original_host is None:
                    original_host = value
            elif name == b"x-forwarded-for":
                prior_xff.append(value)
            elif name == b"via":
                prior_via.append(value)
            lower = name.lower()
            if lower in HOP_BY_HOP:
                if lower == b"connection":
                    named = named or set()
                    named.update(token.strip().lower() for token in value.split(b","))
            elif lower not in _REPLACED_REQUEST_HEADERS:
                headers.append((lower, value))
        if named:
            headers = [pair for pair in headers if pair[0] not in named]
        if self.settings.preserve_host and original_host is not None:
            headers.append((b"host", original_host))
        client = scope.get("client")
        client_ip = client[0].encode() if client else b"unknown"
        xff = b", ".join(prior_xff)
        headers.append((b"x-forwarded-for", xff + b", " + client_ip if xff else client_ip))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if original_host is not None:
            headers.append((b"x-forwarded-host", original_host))
        via = b", ".join(prior_via)
        headers.append((b"via", via + b", " + VIA if via else VIA))
        return headers


def response_headers(raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The storefront's response headers for the client: hop-by-hop fields out, ``Via`` added.

    >>> response_headers([(b"Content-Type", b"text/html"), (b"Keep-Alive", b"timeout=5")])
    [(b'content-type', b'text/html'), (b'via', b'1.1 edge')]
    """
    headers = strip_hop_by_hop(raw_headers)
    headers.append((b"via", VIA))
    return headers


def _broken(exc: httpx.HTTPError) -> UpstreamStreamBroken:
    """A body that broke off (``exc``), counted by kind."""
    kind, timed_out = upstream_error_kind(exc)
    metrics.UPSTREAM_ERRORS.labels(kind).inc()
    return UpstreamStreamBroken(f"upstream body broke off: {exc.__class__.__name__}", timed_out)


# Label children resolved once: the per-request path only increments.
PROXIED = {i: metrics.PROXIED.labels(f"{i}xx") for i in range(1, 6)}
_PROXIED_5XX = PROXIED[5]
_PROXIED_INC = {i: metrics.counting(child) for i, child in PROXIED.items()}

_REPLACED_REQUEST_HEADERS = frozenset({b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"via"})
_LENGTH_REQUIRED = frozenset({"POST", "PUT", "PATCH"})


def upstream_request_headers(method: str, headers: list[tuple[bytes, bytes]], body: bytes, netloc: bytes) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-case names) as ``httpx.Request`` would send them with ``body`` to ``netloc``: a
    ``Content-Length`` appended for a body that has none, then a ``Host`` (when missing) and, for a body-less
    POST, PUT or PATCH, ``Content-Length: 0`` in front — byte for byte what the httpx path sends.

    >>> upstream_request_headers("POST", [(b"accept", b"*/*")], b"", b"shop:8000")
    [(b'Host', b'shop:8000'), (b'Content-Length', b'0'), (b'accept', b'*/*')]
    >>> upstream_request_headers("GET", [(b"host", b"a"), (b"via", b"1.1 edge")], b"", b"shop")
    [(b'host', b'a'), (b'via', b'1.1 edge')]
    >>> upstream_request_headers("PUT", [(b"host", b"a")], b"xy", b"shop")
    [(b'host', b'a'), (b'Content-Length', b'2')]
    """
    has_host = has_length = has_coding = False
    for name, _ in headers:
        if name == b"host":
            has_host = True
        elif name == b"content-length":
            has_length = True
        elif name == b"transfer-encoding":
            has_coding = True
    if body and not has_length:
        headers = [*headers, (b"Content-Length", str(len(body)).encode())]
    has_length = has_length or has_coding or bool(body)
    if has_host and (has_length or method not in _LENGTH_REQUIRED):
        return headers
    auto: list[tuple[bytes, bytes]] = []
    if not has_host and netloc:
        auto.append((b"Host", netloc))
    if not has_length and method in _LENGTH_REQUIRED:
        auto.append((b"Content-Length", b"0"))
    return auto + headers


class _BodyIncomplete(Exception):
    """The client's request body did not arrive whole (``reason``: ``incomplete_body`` or ``body_timeout``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _receive_body(receive: Receive, timeout: float) -> Message:
    """The next piece of the request body; a disconnect or a pause over ``timeout`` s is :class:`_BodyIncomplete`."""
    try:
        async with asyncio.timeout(timeout):
            message: Message = await receive()
    except TimeoutError:
        raise _BodyIncomplete("body_timeout") from None
    if message["type"] == "http.disconnect":
        raise _BodyIncomplete("incomplete_body")
    return message


class _Upload:
    """One streamed request body (larger than the buffer), holding one of the proxy's upload slots."""

    def __init__(self, slots: asyncio.Semaphore, timeout: float) -> None:
        self._slots: asyncio.Semaphore | None = slots
        self._timeout = timeout
        #: Why the body broke off (None: it did not), read by the proxy whatever the transport raised.
        self.failure: str | None = None

    async def stream(self, first: bytes, receive: Receive) -> AsyncIterator[bytes]:
        if first:
            yield first
        while True:
            try:
                message = await _receive_body(receive, self._timeout)
            except _BodyIncomplete as exc:
                self.failure = exc.reason
                raise
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.release()


async def _body_failed(send: Send, reason: str) -> None:
    """The request body broke off: nothing went (or will go) to the storefront whole."""
    metrics.CLIENT_REJECTED.labels(reason).inc()
    if reason == "body_timeout":
        await _plain(send, 408, b"request body not received in time\n", close=True)
    # incomplete_body: the client is gone; there is nobody to answer.


async def _plain(send: Send, status: int, body: bytes, close: bool = False) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"date", formatdate(usegmt=True).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
