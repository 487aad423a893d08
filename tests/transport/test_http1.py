"""edge.transport.http1.Http1Transport against real loopback servers that answer with scripted bytes.

Each test starts an asyncio server on 127.0.0.1 whose handler reads requests and
writes exactly the response bytes the case needs (well-formed or not), so the
transport is exercised on real sockets, byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from edge.transport.http1 import Http1Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]

PAGE = b"<html><body>" + b"x" * 5000 + b"</body></html>"
TIMEOUTS = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


class Server:
    """A loopback server running ``handler`` per connection; counts connections and keeps requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer, self)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request: its head, and its body by Content-Length or chunked framing."""
        head = await reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        body = b""
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += (await reader.readexactly(size + 2))[:-2]
                if size == 0:
                    break
        elif b"content-length:" in lower:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


def ok(body: bytes = PAGE, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def keep_answering(response: bytes) -> Handler:
    async def handler(reader, writer, server):
        while True:
            await server.read_request(reader)
            writer.write(response)
            await writer.drain()

    return handler


async def fetch(transport: Http1Transport, method: str, url: str, **kwargs) -> tuple[httpx.Response, bytes]:
    request = httpx.Request(method, url, extensions={"timeout": kwargs.pop("timeout", TIMEOUTS)}, **kwargs)
    response = await transport.handle_async_request(request)
    try:
        body = b"".join([chunk async for chunk in response.stream])
    finally:
        await response.aclose()
    return response, body


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_reuses_one_connection_and_passes_headers_through():
    async def go():
        async with Server(keep_answering(ok(extra=b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Case: Kept\r\n"))) as server:
            transport = Http1Transport()
            for _ in range(5):
                response, body = await fetch(transport, "GET", server.url + "/p?q=1", headers=[(b"Accept-Encoding", b"br")])
                assert response.status_code == 200 and body == PAGE
                assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
                assert (b"X-Case", b"Kept") in response.headers.raw
                assert response.reason_phrase == "OK"
            await transport.aclose()
            assert server.connections == 1
            assert server.requests[0].startswith(b"GET /p?q=1 HTTP/1.1\r\n")
            assert b"Accept-Encoding: br\r\n" in server.requests[0]

    run(go())


def test_chunked_response_with_extensions_and_trailers():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"

    async def go():
        async with Server(keep_answering(chunked)) as server:
            transport = Http1Transport()
            for _ in range(2):
                response, body = await fetch(transport, "GET", server.url)
                assert body == b"hello world"
            assert server.connections == 1
            await transport.aclose()

    run(go())


def test_body_until_close_is_read_whole_and_the_connection_is_not_reused():
    async def handler(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + PAGE)
        await writer.drain()

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            for _ in range(2):
                _, body = await fetch(transport, "GET", server.url)
                assert body == PAGE
            assert server.connections == 2
            await transport.aclose()

    run(go())


def test_head_interim_and_bodiless_responses_keep_the_connection_in_step():
    async def handler(reader, writer, server):
        while True:
            request = await server.read_request(reader)
            if request.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
            elif b"/interim" in request:
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + ok(b"after hints"))
            elif b"/empty" in request:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif b"/not-modified" in request:
                writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nContent-Length: 5000\r\n\r\n")
            elif b"/twice" in request:
                writer.write(ok(b"one") + ok(b"two"))
            else:
                writer.write(ok())
            await writer.drain()

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            response, body = await fetch(transport, "HEAD", server.url)
            assert (response.status_code, body, response.headers["content-length"]) == (200, b"", "5000")
            response, body = await fetch(transport, "GET", server.url + "/interim")
            assert (response.status_code, body) == (200, b"after hints")
            assert "link" not in response.headers  # the interim response's fields are not the response's
            response, body = await fetch(transport, "GET", server.url + "/empty")
            assert (response.status_code, body) == (204, b"")
            response, body = await fetch(transport, "GET", server.url + "/not-modified")
            assert (response.status_code, body) == (304, b"")
            assert server.connections == 1
            # Two responses to one request: the first is the answer, the connection is dropped.
            response, body = await fetch(transport, "GET", server.url + "/twice")
            assert body == b"one"
            _, body = await fetch(transport, "GET", server.url)
            assert body == PAGE and server.connections == 2
            await transport.aclose()

    run(go())


def test_request_bodies_arrive_whole_by_length_and_chunked():
    async def handler(reader, writer, server):
        while True:
            request = await server.read_request(reader)
            body = request.split(b"\r\n\r\n", 1)[1]
            writer.write(ok(body))
            await writer.drain()

    async def chunks():
        for part in (b"first,", b"", b"second," * 20_000, b"third"):
            yield part

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            _, echoed = await fetch(transport, "POST", server.url, content=b"a=1&b=2")
            assert echoed == b"a=1&b=2"
            _, echoed = await fetch(transport, "POST", server.url, content=b"y" * 200_000)
            assert echoed == b"y" * 200_000
            _, echoed = await fetch(transport, "POST", server.url, content=chunks())
            assert echoed == b"first," + b"second," * 20_000 + b"third"
            assert b"Transfer-Encoding: chunked" in server.requests[-1]
            assert server.connections == 1
            await transport.aclose()

    run(go())


def test_idle_connection_closed_by_the_server_is_retried_once_for_a_get():
    async def handler(reader, writer, server):
        await server.read_request(reader)
        writer.write(ok())  # keep-alive promised, then the server hangs up (its idle timeout)
        await writer.drain()
        await asyncio.sleep(0.05)

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            for _ in range(3):
                _, body = await fetch(transport, "GET", server.url)
                assert body == PAGE
                await asyncio.sleep(0.2)  # let the close arrive before the next request
            assert server.connections == 3
            await transport.aclose()

    run(go())


def test_reused_connection_that_dies_without_answering_is_retried_for_get_not_for_post():
    async def handler(reader, writer, server):
        await server.read_request(reader)
        writer.write(ok())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request on this connection: hang up on it
        writer.transport.abort()

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            await fetch(transport, "GET", server.url)
            _, body = await fetch(transport, "GET", server.url)  # dies on the reused one, retried
            assert body == PAGE and server.connections == 2
            with pytest.raises(httpx.ReadError):
                await fetch(transport, "POST", server.url, content=b"order=1")  # never replayed
            await transport.aclose()

    run(go())


def check_body_cut_short(get: Callable[[Http1Transport, Server], Awaitable[object]]) -> None:
    """``get`` (one request over the transport) raises ReadError for a body cut short, and frees the slot."""

    async def handler(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 1000)
        await writer.drain()
        writer.transport.abort()

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport(max_connections=1)
            for _ in range(2):  # the slot comes back: a second request is not stuck on the first
                with pytest.raises(httpx.ReadError):
                    await get(transport, server)
            await transport.aclose()

    run(go())


def test_body_cut_short_raises_read_error_and_frees_the_slot():
    check_body_cut_short(lambda transport, server: fetch(transport, "GET", server.url))


def test_read_timeout_connect_error_and_pool_timeout():
    async def silent(reader, writer, server):
        await server.read_request(reader)
        await asyncio.sleep(10)

    async def go():
        async with Server(silent) as server:
            transport = Http1Transport(max_connections=1)
            timeouts = {**TIMEOUTS, "read": 0.2, "pool": 0.2}
            with pytest.raises(httpx.ReadTimeout):
                await fetch(transport, "GET", server.url, timeout=timeouts)
            slow = asyncio.ensure_future(fetch(transport, "GET", server.url, timeout={**timeouts, "read": 2.0}))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout):
                await fetch(transport, "GET", server.url, timeout=timeouts)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            pool = next(iter(transport._pools.values()))
            assert pool.count == 0  # the cancelled request's connection was closed, not pooled
            await transport.aclose()
        with socket_reserved() as port:
            with pytest.raises(httpx.ConnectError):
                await fetch(Http1Transport(), "GET", f"http://127.0.0.1:{port}/")

    run(go())


def test_malformed_and_oversized_responses_are_protocol_errors():
    async def handler(reader, writer, server):
        request = await server.read_request(reader)
        if b"/huge" in request:
            writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"h" * 100_000 + b"\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nhi")
        await writer.drain()
        await asyncio.sleep(0.5)

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport(max_head=64 * 1024)
            for path in ("/bad", "/huge"):
                with pytest.raises(httpx.RemoteProtocolError):
                    await fetch(transport, "GET", server.url + path)
            await transport.aclose()

    run(go())


def test_a_header_carrying_cr_or_lf_is_refused_before_anything_is_sent():
    async def go():
        async with Server(keep_answering(ok())) as server:
            transport = Http1Transport()
            request = httpx.Request("GET", server.url, headers=[(b"X-Evil", b"a\r\nX-Injected: 1")])
            with pytest.raises(httpx.LocalProtocolError):
                await transport.handle_async_request(request)
            assert server.requests == []
            await transport.aclose()

    run(go())


def test_a_slow_consumer_bounds_what_is_buffered():
    size = 20 * 1024 * 1024

    async def handler(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"b" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport(max_buffer=256 * 1024)
            response = await transport.handle_async_request(httpx.Request("GET", server.url, extensions={"timeout": TIMEOUTS}))
            connection = response.stream._connection
            total = largest = 0
            async for chunk in response.stream:
                total += len(chunk)
                largest = max(largest, len(chunk))
                await asyncio.sleep(0.002)  # a shopper's slow link
            await response.aclose()
            await transport.aclose()
            assert total == size
            assert connection.reading_paused is False
            return largest

    largest = run(go())
    # Reading pauses past 256 KB; what is in flight when it does (one socket read) is on top.
    assert largest <= 256 * 1024 + 512 * 1024, largest


class socket_reserved:
    """A loopback port bound but never listening: connections to it are refused."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_connections_in_use_at_aclose_are_closed_when_released():
    async def go():
        async with Server(keep_answering(ok())) as server:
            transport = Http1Transport()
            request = httpx.Request("GET", server.url, extensions={"timeout": TIMEOUTS})
            response = await transport.handle_async_request(request)
            connection = response.stream._connection
            await transport.aclose()  # a shutdown while a response is still streaming
            assert b"".join([chunk async for chunk in response.stream]) == PAGE
            await response.aclose()
            assert connection.closed
            with pytest.raises(RuntimeError):
                await transport.handle_async_request(request)

    run(go())


def test_https_upstream_checks_the_certificate(tmp_path):
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    async def go():
        server = Server(keep_answering(ok()))
        server.server = await asyncio.start_server(
            lambda r, w: server.handler(r, w, server), "127.0.0.1", 0, ssl=server_tls
        )
        url = server.url.replace("http://", "https://")
        trusted = Http1Transport(ssl_context=ssl.create_default_context(cafile=str(cert)))
        for _ in range(2):
            _, body = await fetch(trusted, "GET", url)
            assert body == PAGE
        await trusted.aclose()
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not know this certificate
            await fetch(Http1Transport(), "GET", url)
        server.server.close()

    run(go())


def test_the_retry_takes_a_new_connection_not_another_idle_one():
    async def handler(reader, writer, server):
        await server.read_request(reader)
        await asyncio.sleep(0.05)  # so that two requests hold two connections at once
        writer.write(ok())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # every connection dies on its second request
        writer.transport.abort()

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            await asyncio.gather(fetch(transport, "GET", server.url), fetch(transport, "GET", server.url))
            assert server.connections == 2
            _, body = await fetch(transport, "GET", server.url)  # idle #2 dies; the retry must not take idle #1
            assert body == PAGE and server.connections == 3

    run(go())
