"""edge's own HTTP/1.1 transport under httpx: a keep-alive pool of asyncio connections parsed by httptools.

The proxy speaks httpx's API (``httpx.Request`` in, ``httpx.Response`` out);
this module is what carries it to the storefront by default. It exists
because the transports under httpx cost more per request than everything
else edge does (``loadtests/bench.py``, figures in the README): httpcore
parses with pure-Python h11, and aiohttp under httpx builds its own request,
response and header objects on top of httpx's. Here a request is one
``transport.write`` of the head (and a small body), the response is parsed by
httptools (llhttp, the parser uvicorn uses on the other side), and body
chunks are handed over as they arrive, everything buffered so far in one
chunk.

What it does, and no more (a sidecar talking to its own storefront):

- HTTP/1.1 with keep-alive; ``max_connections`` per transport, idle
  connections kept ``keepalive_expiry`` seconds, newest first; callers wait
  for a free connection up to the pool timeout;
- ``Content-Length`` and chunked request bodies (streamed, with write flow
  control); responses with ``Content-Length``, chunked, or read until close;
  ``HEAD``, ``1xx`` interim responses skipped, ``204``/``304`` without body;
- bounded memory: reading pauses while more than ``max_buffer`` body bytes
  wait for the consumer, and a response head over ``max_head`` bytes is a
  protocol error;
- httpx's timeouts (``connect``, ``read`` per wait, ``write``, ``pool``) and
  exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
  ``ReadError``, ``RemoteProtocolError``, ``PoolTimeout``, ``WriteError``);
- an idempotent request without a streamed body that finds its reused
  connection closed by the server (the keep-alive race) is retried once on a
  new connection;
- ``https`` upstreams with the default certificate checks.

No HTTP/2, no proxies, no redirects or cookies (httpx's client layers, which
a reverse proxy does not want anyway).

The pool and the transport are here; one connection (the asyncio protocol and its parser
callbacks) is :mod:`edge.transport.http1_connection`.

>>> import httpx
>>> transport = Http1Transport(max_connections=10)
>>> client = httpx.AsyncClient(transport=transport)  # the card's API on top
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from edge.transport.http1_connection import _Connection, _StaleConnection

__all__ = ["Http1Transport", "RawResponse", "request_head"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Body(httpx.AsyncByteStream):
    """A response body: each step yields everything that has arrived; the end releases the connection."""

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self._connection: _Connection | None = connection
        self._timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            while True:
                chunk = await connection.read(self._timeout)
                if not chunk:
                    break
                yield chunk
        except BaseException:
            self._release(reuse=False)
            raise
        self._release(reuse=True)

    def _release(self, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.pool.release(connection, reuse=reuse and connection.reusable())

    async def aclose(self) -> None:
        connection = self._connection
        if connection is not None:
            # Read to its end (nothing more to wait for) or cut short: only a finished one is reused.
            self._release(reuse=True)


class RawResponse:
    """A response from :meth:`Http1Transport.exchange`: status, header list and body, no httpx objects.

    :meth:`next_chunk` says which chunk is the body's last, so the proxy can relay it as the last
    ASGI message (one write to the client instead of the chunk and then an empty end).
    """

    __slots__ = ("status", "headers", "_connection", "_timeout")

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self.status = connection.status
        self.headers = connection.headers
        self._connection: _Connection | None = connection
        self._timeout = read_timeout

    async def next_chunk(self) -> tuple[bytes, bool]:
        """The body bytes that have arrived, and whether the body ends with them (``b"", True`` at its end).

        Raises httpx's errors as :class:`httpx.Response`'s stream would; the connection goes back to its
        pool (reusable or not) as soon as the body has ended or failed.
        """
        connection = self._connection
        if connection is None:
            return b"", True
        try:
            chunk = await connection.read(self._timeout)
        except BaseException:
            self._release(reuse=False)
            raise
        if not chunk or (connection.complete and not connection.chunks):
            self._release(reuse=True)
            return chunk, True
        return chunk, False

    def whole(self) -> bytes | None:
        """The whole body when all of it has arrived (the connection goes back to its pool), else None
        (nothing changes: read it with :meth:`next_chunk`). What ``next_chunk`` would return, with
        ``True``, when its first call gets the whole body.
        """
        connection = self._connection
        if connection is None or not connection.complete:
            return None
        chunks = connection.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        connection.chunks = []
        connection.buffered = 0
        if connection.reading_paused and not connection.closed and connection.transport is not None:
            connection.reading_paused = False
            connection.transport.resume_reading()
        self._release(reuse=True)
        return data

    def _release(self, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.pool.release(connection, reuse=reuse and connection.reusable())

    def close(self) -> None:
        """Done with it: a connection whose body was read to its end is reused, any other is closed."""
        if self._connection is not None:
            self._release(reuse=True)


class _Pool:
    """Connections to one origin: idle ones newest first, at most ``limit`` in all."""

    def __init__(self, key: tuple[str, str, int], limit: int, keepalive_expiry: float, ssl_context: ssl.SSLContext | None) -> None:
        self.scheme, self.host, self.port = key
        self.limit = limit
        self.keepalive_expiry = keepalive_expiry
        self.ssl_context = ssl_context
        self.idle: list[_Connection] = []
        self.count = 0  # open or opening, idle or in use
        self.closed = False
        self.waiters: deque[asyncio.Future[None]] = deque()

    def take_idle(self) -> _Connection | None:
        """The newest idle connection still usable (:meth:`acquire`'s first choice), or None."""
        now = time.monotonic()
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.closed or now - connection.idle_since > self.keepalive_expiry:
                connection.close()
                self._forget(connection)
                continue
            return connection
        return None

    async def acquire(self, timeouts: dict[str, Any], max_buffer: int, max_head: int, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection and whether it was reused from the idle list (``fresh``: a new one)."""
        deadline = None
        while True:
            now = time.monotonic()
            if fresh and self.idle and self.count >= self.limit:
                # Make room for the new connection: the oldest idle one is the likeliest to be dead.
                oldest = self.idle.pop(0)
                oldest.close()
                self._forget(oldest)
            while self.idle and not fresh:
                connection = self.idle.pop()
                if connection.closed or now - connection.idle_since > self.keepalive_expiry:
                    connection.close()
                    self._forget(connection)
                    continue
                return connection, True
            if self.count < self.limit:
                self.count += 1
                try:
                    return await self._connect(timeouts.get("connect"), max_buffer, max_head), False
                except BaseException:
                    self.count -= 1
                    self._wake_one()
                    raise
            pool_timeout = timeouts.get("pool")
            if deadline is None and pool_timeout is not None:
                deadline = now + pool_timeout
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                raise httpx.PoolTimeout("no free upstream connection in time") from None
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

    async def _connect(self, timeout: float | None, max_buffer: int, max_head: int) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self.scheme == "https"
        if tls and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self, max_buffer, max_head),
                    self.host,
                    self.port,
                    ssl=self.ssl_context if tls else None,
                    server_hostname=self.host if tls else None,
                ),
                timeout,
            )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return connection

    def release(self, connection: _Connection, reuse: bool) -> None:
        connection.in_use = False
        if reuse and not connection.closed and not self.closed:
            connection.idle_since = time.monotonic()
            self.idle.append(connection)
        else:
            connection.close()
            self._forget(connection)
        self._wake_one()

    def lost(self, connection: _Connection) -> None:
        """The connection closed; an idle one leaves the pool now (an in-use one on release)."""
        if not connection.in_use and connection in self.idle:
            self.idle.remove(connection)
            self._forget(connection)
            self._wake_one()

    def _forget(self, connection: _Connection) -> None:
        if connection.counted:
            connection.counted = False
            self.count -= 1

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close the idle connections now; those in use close when released."""
        self.closed = True
        for connection in self.idle:
            connection.close()
        self.idle.clear()


class Http1Transport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` over a pool of HTTP/1.1 connections per origin.

    ``max_buffer``: body bytes held before reading pauses; ``max_head``: the
    largest response head accepted.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        max_buffer: int = 256 * 1024,
        max_head: int = 64 * 1024,
    ) -> None:
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.ssl_context = ssl_context
        self.max_buffer = max_buffer
        self.max_head = max_head
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._closed = False

    def _pool(self, scheme: str, host: str, port: int | None) -> _Pool:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"edge's upstream transport speaks http and https, not {scheme!r}")
        key = (scheme, host, port or _DEFAULT_PORTS[scheme])
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(key, self.max_connections, self.keepalive_expiry, self.ssl_context)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        pool = self._pool(url.scheme, url.host, url.port)
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        head, body, chunked = _serialize(request)

        async def stream(connection: _Connection) -> None:
            await _write_stream(connection, request, chunked, timeouts.get("write"))

        connection = await self._send(pool, request.method, head, body, stream, timeouts, request)
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": connection.reason}
        return httpx.Response(
            status_code=connection.status,
            headers=connection.headers,
            stream=_Body(connection, read_timeout),
            request=request,
            extensions=extensions,
        )

    async def exchange(
        self,
        method: str,
        origin: tuple[str, str, int | None],
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: dict[str, Any],
    ) -> RawResponse:
        """One request whose body is held whole, without httpx's objects: the reverse proxy's hot path.

        ``origin`` is (scheme, host, port); ``headers`` go out as given, so the caller adds what
        ``httpx.Request`` would (``Host``, ``Content-Length``: the proxy's ``upstream_request_headers``).
        Same pool, retries, limits and errors as :meth:`handle_async_request`.
        """
        pool = self._pool(*origin)
        head = request_head(method.encode("ascii"), target, headers)
        connection = await self._send(pool, method, head, body, None, timeouts, None)
        return RawResponse(connection, timeouts.get("read"))

    def start_idle(self, origin: tuple[str, str, int | None], method: str, head: bytes) -> _Connection | None:
        """Write a request without a body (its ``head``) on an idle pooled connection, now, without waiting:
        the connection it went out on, or None when none is idle or the one found was closed (nothing is
        written then: :meth:`exchange` does all of it). The caller reads the answer by listening to the
        connection (``_Connection.listen``) or with :meth:`resume`, what :meth:`exchange` does next.
        """
        pool = self._pool(*origin)
        connection = pool.take_idle()
        if connection is None:
            return None
        connection.start(head_request=method == "HEAD")
        try:
            connection.write_now(head)
        except _StaleConnection:
            pool.release(connection, reuse=False)
            return None
        return connection

    async def resume(self, connection: _Connection, method: str, head: bytes, timeouts: dict[str, Any], drain: bool) -> RawResponse:
        """The rest of :meth:`exchange` for a request :meth:`start_idle` wrote on ``connection`` (``drain``:
        writing paused, wait until the transport took it): its response head, with the same retry (a reused
        connection closed before answering: once more, on a new one), limits and errors."""
        read_timeout = timeouts.get("read")
        pool = connection.pool
        try:
            await self._answered(connection, (lambda: connection.drained(timeouts.get("write"))) if drain else None, read_timeout)
        except _StaleConnection:
            pool.release(connection, reuse=False)
            if method not in _IDEMPOTENT:
                raise httpx.ReadError("upstream closed the connection without answering") from None
            connection = await self._send(pool, method, head, b"", None, timeouts, None, first_attempt=1)
        except BaseException:
            pool.release(connection, reuse=False)
            raise
        return RawResponse(connection, read_timeout)

    async def _send(
        self,
        pool: _Pool,
        method: str,
        head: bytes,
        body: bytes | None,
        stream: Callable[[_Connection], Awaitable[None]] | None,
        timeouts: dict[str, Any],
        request: httpx.Request | None,
        first_attempt: int = 0,
    ) -> _Connection:
        """Write the request (``body`` whole, or ``stream`` it) and wait for its response head."""
        read_timeout = timeouts.get("read")
        write_timeout = timeouts.get("write")
        retry_allowed = method in _IDEMPOTENT and body is not None
        for attempt in range(first_attempt, 2):
            # A retry takes a new connection: the idle ones may have died with the one that failed.
            connection, reused = await pool.acquire(timeouts, self.max_buffer, self.max_head, fresh=attempt > 0)
            connection.start(head_request=method == "HEAD")

            async def write(connection: _Connection = connection) -> None:
                if body is not None:
                    await connection.write(head + body if len(body) <= 64 * 1024 else head, write_timeout)
                    if len(body) > 64 * 1024:
                        await connection.write(body, write_timeout)
                else:
                    await connection.write(head, write_timeout)
                    assert stream is not None
                    await stream(connection)

            try:
                await self._answered(connection, write, read_timeout)
            except _StaleConnection:
                pool.release(connection, reuse=False)
                if reused and retry_allowed and attempt == 0:
                    continue
                raise httpx.ReadError("upstream closed the connection without answering", request=request) from None
            except BaseException:
                pool.release(connection, reuse=False)
                raise
            return connection
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _answered(connection: _Connection, write: Callable[[], Awaitable[None]] | None, read_timeout: float | None) -> None:
        """``write`` the request (None: it is out) and wait for the response head."""
        if write is not None:
            try:
                await write()
            except (_StaleConnection, httpx.WriteError):
                if not connection.headers_done:
                    raise
                # The storefront answered (413, 401...) and closed before taking the whole body: relay it.
            if connection.headers_done:
                # An answer that came before the request was written whole: whatever the storefront did
                # with the rest of the body, this connection's framing is no longer known. Never reuse it.
                connection.keep_alive = False
                connection.answered_early = True
        await connection.wait_headers(read_timeout)

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _serialize(request: httpx.Request) -> tuple[bytes, bytes | None, bool]:
    """(request head, whole body or None when it streams, body is chunked)."""
    raw = request.headers.raw
    head = request_head(request.method.encode("ascii"), request.url.raw_path, raw, request)
    chunked = any(n.lower() == b"transfer-encoding" and v.lower() == b"chunked" for n, v in raw)
    try:
        content = request.content
    except httpx.RequestNotRead:
        return head, None, chunked
    if chunked:
        content = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(content), content)) if content else b"0\r\n\r\n"
    return head, content, chunked


_FIELD = b"%s: %s\r\n"


def request_head(method: bytes, target: bytes, raw: list[tuple[bytes, bytes]], request: httpx.Request | None = None) -> bytes:
    """A request head: the request line and the header fields, as given."""
    head = b"".join([method, b" ", target, b" HTTP/1.1\r\n", *map(_FIELD.__mod__, raw), b"\r\n"])  # (map: no comprehension call)
    # Header names and values came through parsers that refuse CR and LF, but this is the last
    # place a stray one could split the request in two: one count over the whole head checks it.
    if head.count(b"\n") != len(raw) + 2 or head.count(b"\r") != len(raw) + 2:
        raise httpx.LocalProtocolError("a request header or the target contains CR or LF", request=request)
    return head


async def _write_stream(connection: _Connection, request: httpx.Request, chunked: bool, timeout: float | None) -> None:
    """Write a streamed body; one that ends short of its ``Content-Length`` is an error, never a request.

    An exception from the body (the client left) propagates and the caller closes the connection: the
    storefront then sees a request that broke off, never one completed for the client.
    """
    declared = None if chunked else request.headers.get("content-length")
    written = 0
    async for chunk in request.stream:  # type: ignore[union-attr]
        if not chunk:
            continue
        written += len(chunk)
        await connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk, timeout)
    if chunked:
        await connection.write(b"0\r\n\r\n", timeout)
    elif declared is not None and written != int(declared):
        connection.close()
        raise httpx.LocalProtocolError(f"request body of {written} bytes for a Content-Length of {declared}", request=request)
