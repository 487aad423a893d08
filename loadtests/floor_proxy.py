"""The floor: the least a Python proxy does to splice a snippet into a page, as a benchmark reference.

``bench.py`` runs it beside nginx and edge (the ``python floor`` row) to show what any Python data plane
costs on the machine before it decides anything: uvloop and httptools (the C parts edge runs on too),
callbacks only (no tasks, no ASGI), one keep-alive upstream connection per client connection, the
page read whole, a fixed snippet of edge's size put before the last ``</body>``, ``Content-Length``
fixed, one ``writelines`` to the client. No tier decision, model, token, metrics, limits or timeouts:
it is not a product and serves only what the benchmark sends (``GET`` without a body, answers of
declared length). Where the floor's added p50 is already over a target's multiple of nginx's, no
Python data plane meets that target on this machine, whatever it leaves out.

    python loadtests/floor_proxy.py UPSTREAM_PORT LISTEN_PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httptools
import uvloop

#: About the size of edge's full-tier snippet (the switch link and the beacon script with its token).
SNIPPET = b"<a href='/__edge/switch?to=lite'>lite</a><script>" + b"/*" + b"x" * 1000 + b"*/</script>"
#: The storefront's port (the first argument).
UPSTREAM_PORT = 0
_DROPPED = frozenset({b"connection", b"keep-alive", b"content-length", b"transfer-encoding", b"date", b"server"})


class Upstream(asyncio.Protocol):
    """The storefront connection of one client connection: its answers spliced and written to the client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.headers, self.body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        cut = body.rfind(b"</body>")
        pieces = [body] if cut < 0 else [body[:cut], SNIPPET, body[cut:]]
        length = sum(map(len, pieces))
        head = [b"HTTP/1.1 %d OK\r\n" % self.parser.get_status_code()]
        head += [name + b": " + value + b"\r\n" for name, value in self.headers if name.lower() not in _DROPPED]
        head.append(b"content-length: %d\r\nserver: floor\r\n\r\n" % length)
        self.client.transport.writelines([b"".join(head), *pieces])

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()


class Client(asyncio.Protocol):
    """One shopper connection: each request head passed upstream with ``X-Forwarded-For``."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None
        self.pending: list[bytes] | None = []
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.upstream = await loop.create_connection(lambda: Upstream(self), "127.0.0.1", UPSTREAM_PORT)
        for request in self.pending or ():
            self.upstream.transport.write(request)
        self.pending = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.headers: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append(name + b": " + value + b"\r\n")

    def on_message_complete(self) -> None:
        request = b"".join([b"GET " + self.url + b" HTTP/1.1\r\n", *self.headers, b"x-forwarded-for: 127.0.0.1\r\n\r\n"])
        if self.pending is not None:
            self.pending.append(request)
        elif self.upstream is not None:
            self.upstream.transport.write(request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def serve(port: int) -> None:
    # reuse_port: two floors on one port are the two-worker reference (bench.py's "python floor x2").
    server = await asyncio.get_running_loop().create_server(Client, "127.0.0.1", port, reuse_port=True)
    await server.serve_forever()


if __name__ == "__main__":
    UPSTREAM_PORT = int(sys.argv[1])
    uvloop.run(serve(int(sys.argv[2])))
