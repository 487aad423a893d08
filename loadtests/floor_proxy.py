"""The floor: the least a Python proxy does to splice a snippet into a page, as a benchmark reference.

``bench.py`` runs it beside nginx and edge (the ``python floor`` row) to show what any Python data plane
costs on the machine before it decides anything: uvloop and httptools (the C parts edge runs on too),
callbacks only (no tasks, no ASGI), one keep-alive upstream connection per client connection, the
page read whole, a fixed snippet of edge's size put before the last ``</body>``, ``Content-Length``
fixed, one ``writelines`` to the client. No tier decision, model, token, metrics, limits or timeouts:
it is not a product and serves only what the benchmark sends (``GET`` without a body, answers of
declared length). Where the floor's added p50 is already over a target's multiple of nginx's, no
Python data plane meets that target on this machine, whatever it leaves out.

With ``--edge-work`` the floor also does, per page, the work edge must do whatever carries it, through
edge's own objects (:class:`EdgeWork`): the connection's TCP_INFO read, the tier decision (signals,
features, the model, the policy), the token and the snippet that carries it, edge's response headers and
its counters. That is the bound for a bespoke data plane around edge's logic: what edge would cost
without uvicorn's protocol and cycle, the ASGI scope's machinery, the fast path's checks, the limits and
the timeouts (``bench.py``'s ``python floor + edge work`` rows; docs/performance.md).

    python loadtests/floor_proxy.py UPSTREAM_PORT LISTEN_PORT [--edge-work]
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from time import perf_counter
from typing import Any

import httptools
import uvloop

#: About the size of edge's full-tier snippet (the switch link and the beacon script with its token).
SNIPPET = b"<a href='/__edge/switch?to=lite'>lite</a><script>" + b"/*" + b"x" * 1000 + b"*/</script>"
#: The storefront's port (the first argument).
UPSTREAM_PORT = 0
_DROPPED = frozenset({b"connection", b"keep-alive", b"content-length", b"transfer-encoding", b"date", b"server"})


class EdgeWork:
    """Edge's per-page work, through edge's own objects (an :class:`edge.runtime.app.Edge` on ``upstream_port``):
    a request's decision, then its answer's token, snippet, headers and counters (the fast path's steps).

    Only what the benchmark sends: a ``GET`` decided at the full tier (4G hints), a ``200`` HTML page of
    declared length, uncompressed.
    """

    def __init__(self, upstream_port: int) -> None:
        # (edge is imported here, not at the top: the bare floor imports nothing of it)
        from edge.adapt.responder import Responder
        from edge.core.settings import Settings
        from edge.pipeline.client_rtt import SCOPE_EXTENSION, read_tcp_info
        from edge.runtime.app import build_edge
        from edge.transport.proxy import response_headers

        settings = Settings(upstream=f"http://127.0.0.1:{upstream_port}", feedback_key="bench-key-0123456789abcdef")
        edge = build_edge(settings)
        self.middleware, self.fast = edge.middleware, edge.fast_path
        assert self.fast is not None
        self.responder, self.extension_key, self.read_tcp_info, self.response_headers = (
            Responder, SCOPE_EXTENSION, read_tcp_info, response_headers
        )

    def decide(self, peer: Any, tcp: Any, target: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
        """The request's responder with its verdict (``headers``: lower-case names), as edge's protocol and
        fast path make it: the scope with the ``edge.tcp_info`` extension, then the decision."""
        extension: dict[str, Any] = {"peer": peer[0], "head_at": perf_counter()}
        figures = self.read_tcp_info(tcp)
        if figures:
            extension.update(figures)
        path, _, query = target.partition(b"?")
        scope = {
            "type": "http", "method": "GET", "http_version": "1.1", "path": path.decode("latin-1"), "query_string": query,
            "headers": headers, "client": peer, "extensions": {self.extension_key: extension},
        }  # fmt: skip
        responder = self.responder(self.middleware, scope, None)
        responder.decide_early()
        return responder

    def answer(self, responder: Any, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> list[bytes]:
        """The head and body pieces edge writes for this page, its counters counted."""
        headers = self.response_headers(raw_headers)
        page = self.fast._page(headers)
        spliced = self.fast.splice_head(responder, headers, page) if page is not None else None
        if spliced is None:
            raise RuntimeError("floor_proxy --edge-work serves full-tier HTML pages of declared length only")
        out, splicer = spliced
        head = [b"HTTP/1.1 200 OK\r\n"]
        for name, value in out:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        pieces = [b"".join(head), *splicer.finish_pieces(body)]
        self.fast.spliced(responder, body, splicer)
        return pieces


#: With ``--edge-work``: edge's per-page work (None: the floor alone).
WORK: EdgeWork | None = None


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

    upstream_protocol: type[Upstream] = Upstream

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None
        self.pending: list[bytes] | None = []
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.upstream = await loop.create_connection(lambda: self.upstream_protocol(self), "127.0.0.1", UPSTREAM_PORT)
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


class EdgeWorkUpstream(Upstream):
    """With ``--edge-work``: the answer as edge writes it (:meth:`EdgeWork.answer`)."""

    client: EdgeWorkClient

    def on_message_complete(self) -> None:
        assert WORK is not None
        self.client.transport.writelines(WORK.answer(self.client.responders.popleft(), self.headers, b"".join(self.body)))


class EdgeWorkClient(Client):
    """With ``--edge-work``: each request also decided (:meth:`EdgeWork.decide`) once it is on its way
    upstream, as edge's fast path decides while the storefront works."""

    upstream_protocol = EdgeWorkUpstream

    def connection_made(self, transport: Any) -> None:
        from edge.pipeline.client_rtt import FdSocket

        self.peer = transport.get_extra_info("peername")
        self.tcp = FdSocket(transport.get_extra_info("socket"))
        self.responders: deque[Any] = deque()  # one per request sent upstream, in order
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.fields: list[tuple[bytes, bytes]] = []  # (lower-case names, as edge's scope has them)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self.fields.append((name.lower(), value))

    def on_message_complete(self) -> None:
        super().on_message_complete()
        assert WORK is not None
        self.responders.append(WORK.decide(self.peer, self.tcp, self.url, self.fields))


async def serve(port: int, client: type[Client] = Client) -> None:
    # reuse_port: two floors on one port are the two-worker reference (bench.py's "python floor x2").
    server = await asyncio.get_running_loop().create_server(client, "127.0.0.1", port, reuse_port=True)
    await server.serve_forever()


if __name__ == "__main__":
    UPSTREAM_PORT = int(sys.argv[1])
    if "--edge-work" in sys.argv[3:]:
        WORK = EdgeWork(UPSTREAM_PORT)
    uvloop.run(serve(int(sys.argv[2]), Client if WORK is None else EdgeWorkClient))
