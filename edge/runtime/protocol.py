"""The HTTP/1.1 server protocol edge runs under uvicorn: uvicorn's httptools protocol with a front door's limits.

edge is the first thing a shopper's (or an attacker's) bytes reach, so the
connection itself is bounded before any ASGI code runs:

- **head size**: the request line (``max_request_line``, else 414), one header
  field (``max_header_bytes``), the number of fields (``max_headers``) and the
  whole head (``max_head_bytes``) are capped, else 431; bytes are counted
  *before* they are parsed, so a 100 MB header costs one read, not a quadratic
  re-join of its pieces;
- **time**: a request head must be complete within ``header_timeout`` seconds
  of the connection opening or of its first byte (408, or a silent close when
  nothing came), whatever the pace of the bytes; idle keep-alive connections
  close after ``keepalive_timeout`` (uvicorn's own timer);
- **connections**: at most ``max_connections`` per listener; past it, the
  oldest connections that run no request (idle, or still sending a head) are
  closed to make room, and a new one is refused only when every slot serves a
  request;
- **framing the proxy relies on**: a ``Host`` that is missing (HTTP/1.1),
  repeated or not a host[:port] is a 400; request trailers are dropped (they
  would otherwise be appended to the headers the proxy forwards); framing and
  trailer bytes between body pieces are bounded like a head;
- a ``204``/``304`` response may carry ``Content-Length`` (RFC 9110 §8.6) and
  never has a body.

Each refusal is counted in ``edge_client_rejected_total{reason}``.

It is also edge's one hook into the connection for the pure-ASGI middleware: every request's scope
gets ``scope["extensions"]["edge.tcp_info"]``, a dict with the socket's peer address (``"peer"``, before
any ``X-Forwarded-For`` rewriting), when its head was complete (``"head_at"``, ``time.perf_counter()``:
the wait from then to the request's start is server time in its token too) and, on a listener made with
``tcp_info=True``, the kernel's round
trip and delivery rate for this connection, read with one ``getsockopt(TCP_INFO)`` when the request head
is complete (:mod:`edge.pipeline.client_rtt` documents the keys). A failing read leaves the figures out
and is counted in ``edge_client_rtt_missing_total{reason="tcp_info_error"}``. The same read tells how long
the request waited unread (``queued_ms``: edge's queue, added to the server time its token carries),
summed in ``edge_request_queue_seconds_total``. With ``queue_only=True`` (``edge serve --client-socket
behind-proxy``: the socket's round trip is the balancer's) only that wait goes in the scope.

    >>> limits = ConnectionLimits(max_head_bytes=16384)
    >>> protocol = protocol_class(limits)  # for uvicorn.Config(http=protocol, ...)
    >>> protocol.limits.max_head_bytes, protocol.tcp_info
    (16384, False)
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections import OrderedDict
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from edge.core import metrics
from edge.pipeline.client_rtt import SCOPE_EXTENSION, FdSocket, read_tcp_info
from edge.runtime.cycle import _Cycle

if TYPE_CHECKING:
    from edge.runtime.fast_path import FastPath

__all__ = ["ConnectionLimits", "protocol_class", "EdgeHttpProtocol"]

#: edge_request_queue_seconds_total.inc
_QUEUED_SECONDS = metrics.adding(metrics.REQUEST_QUEUE)
#: host [":" port], where host is a reg-name, an IPv4 address or a bracketed IP literal (RFC 3986 §3.2.2);
#: empty is allowed (RFC 9112 §3.2: a target without authority).
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::[0-9]{0,5})?|")


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may cost (defaults: what an SRE would set at a public front door)."""

    header_timeout: float = 20.0
    max_connections: int = 4096
    max_request_line: int = 8192
    max_header_bytes: int = 16384
    max_head_bytes: int = 65536
    max_headers: int = 100


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the protocol answers ``status``."""


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` with :class:`ConnectionLimits`; use :func:`protocol_class`."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    #: This listener's open connections, oldest first (one table per class made by protocol_class).
    open_connections: ClassVar[OrderedDict[EdgeHttpProtocol, None]] = OrderedDict()
    #: Read TCP_INFO into each request's scope (edge serve's public port; see the module docstring).
    tcp_info: ClassVar[bool] = False
    #: With ``tcp_info``: put only ``queued_ms`` in the scope (behind a balancer the socket's round trip is
    #: the balancer's, not the shopper's; the wait in edge's own receive buffer is still edge's queue).
    queue_only: ClassVar[bool] = False
    #: The full tier's fast path (:mod:`edge.runtime.fast_path`): runs, instead of the listener's app, the
    #: requests it takes. None: every request goes to the app.
    fast_path: ClassVar[FastPath | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # parsing a request head (from the connection's start or the last message's end)
        self._head_begun = False  # a request head has begun (its first byte parsed) and is not complete
        self._head_bytes = 0  # bytes of the current head (or, in a body, of framing since the last body piece)
        self._body_in_feed = 0
        self._fields = 0
        self._refusal: tuple[int, bytes, str] | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._sock: Any = None  # the client socket, for TCP_INFO (None: not asked for, or not TCP)
        self._idle_since: float | None = None  # loop time of the last response's end, while no byte has come since

    # --- connection lifetime -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        table = self.open_connections
        if len(table) >= self.limits.max_connections and not self._evict_idle(table):
            metrics.CLIENT_REJECTED.labels("connection_limit").inc()
            transport.abort()
            return
        table[self] = None
        super().connection_made(transport)
        if self.tcp_info:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                self._sock = FdSocket(sock)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_connections.pop(self, None)
        self._sock = None  # (its descriptor is closed: its number may be the next connection's)
        self._stop_head_timer()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        if self.transport is None:  # refused in connection_made: uvicorn never saw it
            return
        super().connection_lost(exc)

    def _evict_idle(self, table: OrderedDict[EdgeHttpProtocol, None]) -> bool:
        for connection in table:
            if connection._runs_no_request():
                del table[connection]
                metrics.CLIENT_REJECTED.labels("evicted_idle").inc()
                connection.transport.close()
                return True
        return False

    def _runs_no_request(self) -> bool:
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # The fast path stands in for the app only when the app is the one it was made for (uvicorn wraps it in nothing: no proxy headers, no message log) and nobody logs access.
        fast = self.fast_path
        scope: Any = cycle.scope  # (uvicorn's TypedDict, an ASGI scope)
        if fast is not None and app is fast.app and not self.access_log and fast.takes(scope):
            if type(cycle) is RequestResponseCycle:
                cycle.__class__ = _Cycle  # (on_headers_complete does it too, after this call)
            # No task at all when the callback exchange can run it (edge.runtime.callback_exchange).
            if fast.start(self, cycle):  # type: ignore[arg-type]
                return
            app = fast
        super()._start_asgi_task(cycle, app)

    # --- the keep-alive deadline ----------------------------------------------------------------
    # uvicorn arms a timer after every response and cancels it at the next request's first bytes
    # (~5 us a request here). edge keeps one per connection: when it fires, it closes a connection
    # idle (no byte since its last response) for the keep-alive timeout, or waits on to that time.

    def on_response_complete(self) -> None:
        """uvicorn's, but the keep-alive timer is only armed when none is running."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # (FlowControl.resume_reading's own test: no call when reading was not paused)
            self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # bytes came: not idle (the timer, if any, sees it)

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None:
            return  # busy: the response that ends it arms the timer again
        left = since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    # --- the head deadline ---------------------------------------------------------------------

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        metrics.CLIENT_REJECTED.labels("header_timeout").inc()
        if self._head_bytes and self._runs_no_request():
            self._answer(408, b"request head not received in time\n")
        else:
            self.transport.close()

    # --- bytes in ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            # Count before parsing: httptools joins a header's pieces as they come, so a huge one must be
            # refused before it is fed. Only the bytes up to the end of the head count (the rest is body).
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, b"request header fields too large\n", "head_too_large")
                return
        self._idle_since = None  # (_unset_keepalive_if_required, inline: bytes came)
        self._body_in_feed = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._refuse(*(self._refusal or (400, b"malformed request\n", "malformed")))
            return
        if self._head_begun and self._in_head and self._head_timer is None:
            self._start_head_timer()  # a head begun in this read and not yet complete
        if not self._in_head:
            # In a body: chunk-size lines, extensions and trailers are joined like header pieces; bound them.
            framing = len(data) - self._body_in_feed
            self._head_bytes = framing if self._body_in_feed else self._head_bytes + framing
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(400, b"malformed request body framing\n", "framing_too_large")

    def _refuse(self, status: int, body: bytes, reason: str) -> None:
        metrics.CLIENT_REJECTED.labels(reason).inc()
        if self._runs_no_request() or not self.cycle.response_started:
            self._answer(status, body)
        else:
            self.transport.close()

    def _answer(self, status: int, body: bytes) -> None:
        """Answer with ``status`` and close: whatever else was on this connection is not trusted."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the request in flight (if any) ends: its body will never come
            self.cycle.message_event.set()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()

    # --- parser callbacks ------------------------------------------------------------------------

    def _stop(self, status: int, body: bytes, reason: str) -> None:
        self._refusal = (status, body, reason)
        raise _Refused(reason)

    def on_message_begin(self) -> None:
        # uvicorn's on_message_begin, inlined (one call less per request; uvicorn 0.54's and 0.55's, field for field):
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        self._fields = 0
        # The head deadline starts now; its timer only if the head is still incomplete once this read is parsed
        # (data_received): a head that comes whole in one read (nearly every one) costs no timer made and cancelled.
        self._head_begun = True

    def on_url(self, url: bytes) -> None:
        self.url += url  # (uvicorn's on_url, inlined)
        if len(self.url) > self.limits.max_request_line:
            self._stop(414, b"request target too long\n", "uri_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer: dropped, never forwarded as a header
        self._fields += 1
        if self._fields > self.limits.max_headers:
            self._stop(431, b"too many request header fields\n", "too_many_headers")
        if len(name) + len(value) > self.limits.max_header_bytes:
            self._stop(431, b"request header field too large\n", "header_too_large")
        # uvicorn's on_header (0.55's), inlined (one call less per field). llhttp keeps a value's trailing
        # whitespace, which is not part of it (RFC 9110 §5.5): never forwarded, never matched against.
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_begun = False
        if self._head_timer is not None:
            self._stop_head_timer()
        hosts = []  # (a loop, not a comprehension: no call per request)
        for name, value in self.headers:
            if name == b"host":
                hosts.append(value)
        if len(hosts) > 1 or (not hosts and self.parser.get_http_version() == "1.1"):
            self._stop(400, b"exactly one Host header is required\n", "bad_host")
        if hosts and not _HOST.fullmatch(hosts[0]):
            self._stop(400, b"invalid Host header\n", "bad_host")
        self._in_head = False
        self._head_bytes = 0
        self._add_tcp_info()
        super().on_headers_complete()
        if self.cycle is not None and type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = _Cycle  # the task is created, not started: it runs _Cycle.send
        if self in self.open_connections:
            self.open_connections.move_to_end(self)  # the table stays in order of last request

    def _add_tcp_info(self) -> None:
        """The scope extension ``edge.tcp_info``: the peer, when the head was complete and, when asked, one
        TCP_INFO read (module docstring)."""
        extension: dict[str, Any] = {"peer": self.client[0] if self.client else None, "head_at": perf_counter()}
        if self._sock is not None:
            try:
                figures = read_tcp_info(self._sock)
            except OSError:
                metrics.CLIENT_RTT_MISSING.labels("tcp_info_error").inc()
                figures = None
            if figures:
                queued = figures.get("queued_ms")  # (the wait before this read: edge's queue)
                if queued is not None:
                    _QUEUED_SECONDS(queued * 0.001)
                if self.queue_only:
                    if queued is not None:
                        extension["queued_ms"] = queued
                else:
                    extension.update(figures)
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]  # uvicorn's TypedDict types extensions narrowly
        extensions = scope.get("extensions")
        if extensions is None:
            scope["extensions"] = {SCOPE_EXTENSION: extension}
        else:
            extensions[SCOPE_EXTENSION] = extension

    def on_body(self, body: bytes) -> None:
        self._body_in_feed += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        # uvicorn's on_message_complete, inlined:
        if (self.parser.should_upgrade() and self._should_upgrade()) or self.cycle.response_complete:
            return
        self.cycle.more_body = False
        self.cycle.message_event.set()


def protocol_class(
    limits: ConnectionLimits, *, tcp_info: bool = False, queue_only: bool = False, fast_path: FastPath | None = None
) -> type[EdgeHttpProtocol]:
    """A protocol class for one listener: its own limits, its own table of open connections, whether
    each request's scope carries the connection's TCP_INFO figures (or, ``queue_only``, only the wait in
    edge's receive buffer), and the fast path it runs (if any)."""
    members = {"limits": limits, "open_connections": OrderedDict(), "tcp_info": tcp_info, "queue_only": queue_only}
    return type("EdgeHttpProtocol", (EdgeHttpProtocol,), {**members, "fast_path": fast_path, "__module__": __name__})
