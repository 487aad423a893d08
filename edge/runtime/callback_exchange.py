"""The callback exchange: a fast-path page served with no task and no future.

:class:`~edge.runtime.fast_path.FastPath` as an ASGI app runs in a uvicorn task per request that awaits
a future at each step (a pooled connection, the write, the response head, the body, the write to the
shopper). For the common case none of those waits is needed: a connection is idle in the pool, the
request head is small, and the page arrives in a read or two. So, when the protocol has a request the
fast path takes (:meth:`~edge.runtime.fast_path.FastPath.takes`: a ``GET`` with no body, whole once its
head is parsed), :func:`start_callback_exchange` runs it from the protocol's own callback, without a task:

1. the request head the proxy would write (:meth:`~edge.transport.proxy.ReverseProxy.upstream_head`) goes
   out on an idle pooled connection (:meth:`~edge.transport.http1.Http1Transport.start_idle`), now;
2. the tier is decided (:meth:`~edge.adapt.responder.Responder.decide_early`, as the fast path does in the
   next loop step) while the storefront works;
3. the connection calls :meth:`CallbackExchange.moved` back as its response arrives (``_Connection.listen``,
   after each read is parsed): a ``200`` uncompressed HTML page of declared length under
   ``max_rewrite_bytes`` is waited for whole, then spliced (full) or laid out (lite, minimal) and written
   with its head in one ``writelines`` (``_Cycle.write_whole``), with the fast path's own steps and
   counters (:meth:`~edge.runtime.fast_path.FastPath.splice_head`, ``hold``, ``spliced``, ``laid_out``).

Everything else goes to a task running the fast path's code from where the request stands
(:meth:`CallbackExchange.hand_off`, before anything was sent to the shopper): no idle connection, or a
closed one (the task starts from the beginning, as today); writing paused; any answer that is not such a
page (at its head, so a redirect or an image streams as before); a body that fills the connection's
buffer (reading paused); an error, a read timeout (the connection fails with ``ReadTimeout``, so the
task answers 504 as an awaiting reader would), or a reused connection the storefront closed before
answering (the task retries it once on a new connection, as :meth:`~edge.transport.http1.Http1Transport.exchange`
does); a client whose writes are paused. A client that leaves changes nothing here, as for the task: the
answer is read to its end (or its deadline) and never written, and only a connection whose response ended
goes back to the pool. Pipelined requests wait in uvicorn's queue until this response is complete
(``on_response_complete`` starts the next), as they wait for a task.

    >>> CallbackExchange.__slots__
    ('fast', 'transport', 'protocol', 'cycle', 'responder', 'connection', 'head', 'headers', 'page')
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from edge.adapt.responder import Responder
from edge.transport.http1 import Http1Transport, RawResponse
from edge.transport.proxy import response_headers

if TYPE_CHECKING:
    from edge.runtime.fast_path import FastPath
    from edge.runtime.protocol import EdgeHttpProtocol, _Cycle
    from edge.transport.http1_connection import _Connection

__all__ = ["CallbackExchange", "start_callback_exchange"]

log = logging.getLogger("edge.adapt")


def start_callback_exchange(fast: FastPath, protocol: EdgeHttpProtocol, cycle: _Cycle) -> bool:
    """Send this request (the fast path takes it) upstream now and serve its answer from callbacks: True.
    False, with nothing done (nothing sent anywhere), when no idle upstream connection is ready."""
    proxy = fast.proxy
    transport = proxy.transport
    if not isinstance(transport, Http1Transport):
        return False
    scope: Any = cycle.scope
    try:
        head = proxy.upstream_head(scope)
    except Exception:
        return False  # the task's exchange meets it again, and answers it
    responder = Responder(fast.mw, scope, cycle.send)
    connection = transport.start_idle(proxy._origin, "GET", head)
    if connection is None:
        return False
    exchange = CallbackExchange(fast, transport, protocol, cycle, responder, connection, head)
    try:
        responder.decide_early()  # (the task decides in a loop callback: an error there is only logged)
    except Exception:
        log.exception("deciding the tier failed")
    if connection._write_paused:
        exchange.hand_off(drain=True)
    else:
        connection.listen(exchange.moved, proxy._timeout.get("read"))
    return True


class CallbackExchange:
    """One request on the callback path (module docstring): what it has sent, and what it waits for."""

    __slots__ = ("fast", "transport", "protocol", "cycle", "responder", "connection", "head", "headers", "page")

    def __init__(
        self, fast: FastPath, transport: Http1Transport, protocol: EdgeHttpProtocol, cycle: _Cycle, responder: Responder,
        connection: _Connection, head: bytes,
    ) -> None:  # fmt: skip
        self.fast = fast
        self.transport = transport
        self.protocol = protocol
        self.cycle = cycle
        self.responder = responder
        self.connection = connection
        self.head = head
        #: The answer's lower-case header list and (declared length, content type), once its head is in.
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.page: tuple[int, bytes] | None = None

    def moved(self) -> None:
        """The connection's callback: its response moved on (a head, body bytes, its end, an error)."""
        try:
            whole = self._whole()
        except Exception as exc:  # (a bug): never left waiting; the task reports it as uvicorn does
            self.connection.listener = None
            self.connection.close()
            self._then(_raise(exc))
            return
        if whole is not None:
            self._serve(whole)

    def _whole(self) -> RawResponse | None:
        """The page, once it is whole and served here (the connection no longer listened to); else None."""
        connection = self.connection
        if connection.error is not None or connection.answered_early:
            self.hand_off()
            return None
        if not connection.headers_done:
            return None  # an interim (1xx) answer
        if self.headers is None:
            headers = response_headers(connection.headers)
            page = self.fast._page(headers) if connection.status == 200 and self.responder.verdict is not None else None
            if page is None:
                self.hand_off()  # not a page served here: relayed (streamed) by the task, as today
                return None
            self.headers, self.page = headers, page
        if not connection.complete:
            if connection.reading_paused:
                self.hand_off()  # more than the connection buffers: the task streams (full) or reads it
            return None
        if self.cycle.flow.write_paused and not self.cycle.disconnected:
            self.hand_off()  # the task waits for the shopper to take writes, as send_whole does
            return None
        connection.listener = None
        return RawResponse(connection, None)

    def _serve(self, response: RawResponse) -> None:
        """The page is whole: spliced or laid out, written with its head in one ``writelines``."""
        fast, responder, cycle = self.fast, self.responder, self.cycle
        headers, page = self.headers, self.page
        assert headers is not None and page is not None and responder.verdict is not None
        try:
            if responder.verdict.decision.tier == "full":
                spliced = fast.splice_head(responder, headers, page)
                if spliced is None:
                    self._then(lambda: fast.proxy.relay_body(response.next_chunk, responder.send))
                    return
                out, splicer = spliced
                body = response.whole()
                assert body is not None
                responder.mode = "done"
                cycle.write_whole(200, out, splicer.finish_pieces(body))
                fast.spliced(responder, body, splicer)
            else:
                fast.hold(responder, headers, page[1])
                body = response.whole()
                assert body is not None
                responder.mode = "done"
                tier, laid_out, served = responder.laid_out(body)
                cycle.write_whole(200, headers if laid_out is None else laid_out, [served])
                fast.laid_out(responder, tier, body, served)
        except Exception as exc:
            response.close()
            self._then(_raise(exc))  # as the task: uvicorn logs it, and answers 500 or closes

    def hand_off(self, drain: bool = False) -> None:
        """Give the request to a task running the fast path's code from here (``drain``: writing paused)."""
        self.connection.listener = None
        fast, transport, responder, cycle, connection, head = (
            self.fast,
            self.transport,
            self.responder,
            self.cycle,
            self.connection,
            self.head,
        )

        async def resume() -> None:
            proxy = fast.proxy
            try:
                response = await transport.resume(connection, "GET", head, proxy._timeout, drain)
            except Exception as exc:
                await proxy.exchange_failed(exc, responder.send)
                return
            await fast.answer(response, responder, cycle.send)

        self._then(resume)

    def _then(self, step: Any) -> None:
        """Run ``step`` (an async callable) in a task of the protocol's, as uvicorn runs an app."""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await step()

        HttpToolsProtocol._start_asgi_task(self.protocol, self.cycle, app)


def _raise(exc: Exception) -> Any:
    async def step() -> None:
        raise exc

    return step
