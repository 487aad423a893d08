"""The reverse proxy's hot path over edge's own transport: Http1Transport.exchange and upstream_request_headers.

``exchange`` sends a request without building httpx objects, so the proxy has to add what
``httpx.Request`` would (``upstream_request_headers``): the two paths must put the same bytes on
the wire. And the response says which chunk is its last, so the proxy relays it in the message that
ends the response.
"""

from __future__ import annotations

import asyncio

import httpx
from hypothesis import given
from hypothesis import strategies as st

from edge.transport.http1 import Http1Transport, _serialize, request_head
from edge.transport.proxy import upstream_request_headers
from tests.transport.test_http1 import PAGE, TIMEOUTS, Server, check_body_cut_short, keep_answering, ok

NAMES = st.sampled_from([b"host", b"content-length", b"transfer-encoding", b"accept", b"x-forwarded-for", b"cookie"])
HEADERS = st.lists(st.tuples(NAMES, st.sampled_from([b"0", b"12", b"a b", b""])), max_size=6)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
UPSTREAMS = st.sampled_from(["http://shop.internal:8081/", "http://127.0.0.1/", "https://shop.example/"])


@given(METHODS, HEADERS, st.sampled_from([None, b"", b"order=1"]), UPSTREAMS)
def test_the_raw_path_sends_what_httpx_request_would(method, headers, content, upstream):
    url = httpx.URL(upstream).copy_with(raw_path=b"/p?q=1")
    request = httpx.Request(method, url, headers=headers, content=content)
    ours = upstream_request_headers(method, headers, content or b"", url.netloc)
    assert ours == request.headers.raw
    head, body, _ = _serialize(request)
    assert request_head(method.encode(), url.raw_path, ours) == head and body == (content or b"")


def origin(server: Server) -> tuple[str, str, int]:
    url = httpx.URL(server.url)
    assert url.port is not None
    return ("http", "127.0.0.1", url.port)


async def exchange_body(transport: Http1Transport, server: Server, method: str = "GET") -> tuple[int, list[tuple[bytes, bytes]], list[tuple[bytes, bool]]]:
    headers = upstream_request_headers(method, [(b"accept", b"*/*")], b"", httpx.URL(server.url).netloc)
    response = await transport.exchange(method, origin(server), b"/p", headers, b"", TIMEOUTS)
    chunks = []
    try:
        while True:
            chunk, last = await response.next_chunk()
            chunks.append((chunk, last))
            if last:
                break
    finally:
        response.close()
    return response.status, response.headers, chunks


def test_exchange_marks_the_last_chunk_and_reuses_the_connection():
    async def go():
        async with Server(keep_answering(ok(extra=b"X-Case: Kept\r\n"))) as server:
            transport = Http1Transport()
            for _ in range(3):
                status, headers, chunks = await exchange_body(transport, server)
                assert status == 200 and (b"X-Case", b"Kept") in headers
                assert b"".join(c for c, _ in chunks) == PAGE and chunks[-1][1] and not any(last for _, last in chunks[:-1])
            await transport.aclose()
            assert server.connections == 1
            assert server.requests[0] == b"GET /p HTTP/1.1\r\nHost: %s\r\naccept: */*\r\n\r\n" % httpx.URL(server.url).netloc

    asyncio.run(go())


def test_exchange_of_a_body_that_arrives_in_pieces_and_of_a_head():
    async def handler(reader, writer, server):
        while True:
            head = await server.read_request(reader)
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"world")
            await writer.drain()

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            _, _, chunks = await exchange_body(transport, server)
            assert chunks[0] == (b"hello", False) and b"".join(c for c, _ in chunks) == b"helloworld" and chunks[-1][1]
            _, _, chunks = await exchange_body(transport, server, "HEAD")
            assert chunks == [(b"", True)]
            _, _, chunks = await exchange_body(transport, server)  # the same connection, still in step
            assert b"".join(c for c, _ in chunks) == b"helloworld"
            await transport.aclose()
            assert server.connections == 1

    asyncio.run(go())


def test_exchange_body_cut_short_raises_and_frees_the_slot():
    check_body_cut_short(exchange_body)


def test_a_shorter_read_timeout_on_a_reused_connection_is_kept():
    """One timer serves a connection's waits (edge.transport.http1_connection): a later, shorter timeout still counts."""

    async def handler(reader, writer, server):
        await server.read_request(reader)
        writer.write(ok(b"x"))
        await writer.drain()
        await server.read_request(reader)
        await asyncio.sleep(5)  # never answers the second request in time

    async def go():
        async with Server(handler) as server:
            transport = Http1Transport()
            _, _, chunks = await exchange_body(transport, server)
            assert chunks[-1] == (b"x", True)
            headers = upstream_request_headers("GET", [], b"", httpx.URL(server.url).netloc)
            started = asyncio.get_running_loop().time()
            try:
                await transport.exchange("GET", origin(server), b"/", headers, b"", {**TIMEOUTS, "read": 0.3})
            except httpx.ReadTimeout:
                pass
            else:
                raise AssertionError("the second request must time out")
            assert asyncio.get_running_loop().time() - started < 1.5  # its own 0.3 s, not the first request's 2 s
            assert server.connections == 1  # it was the reused connection that timed out
            await transport.aclose()

    asyncio.run(go())
