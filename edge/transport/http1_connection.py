"""One upstream HTTP/1.1 connection of :mod:`edge.transport.http1`: an asyncio protocol whose responses httptools parses.

:class:`_Connection` writes a request (with write flow control), parses its response as the
bytes arrive (interim ``1xx`` skipped, ``HEAD`` and ``204``/``304`` without body, framed or read
until close), holds at most ``max_buffer`` body bytes before pausing reading, refuses a head
over ``max_head`` bytes, and says whether it may go back to its pool. A reused connection the
server closed before any byte of the response raises :class:`_StaleConnection`, which the
transport retries once when it may.

A connection is read either by awaiting it (:meth:`_Connection.wait_headers`, :meth:`_Connection.read`,
one future per wait) or, on the fast path's callback exchange (:mod:`edge.runtime.callback_exchange`),
by a *listener* it calls back when its response moves on (:meth:`_Connection.listen`): after the bytes
of a read are parsed (never inside a parser callback), when the server closes, or at the read deadline.

    >>> calls = []
    >>> connection = _Connection.__new__(_Connection)  # (the pool makes them)
    >>> connection.waiter, connection.woken, connection._listen_timeout = None, False, None
    >>> connection.listener = lambda: calls.append("moved")
    >>> connection._wake(); calls, connection.woken  # inside a parse: noted, not called
    ([], True)
    >>> connection._notify(); calls
    ['moved']
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools
import httpx

if TYPE_CHECKING:
    from edge.transport.http1 import _Pool

__all__ = ["_Connection", "_StaleConnection"]


class _StaleConnection(Exception):
    """A reused connection was closed before any byte of the response arrived."""


class _Connection(asyncio.Protocol):
    """One upstream connection: writes a request, parses its response, then goes back to the pool."""

    def __init__(self, pool: _Pool, max_buffer: int, max_head: int) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.max_buffer = max_buffer
        self.max_head = max_head
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the read deadline's (see _wait)
        self._deadline = self._timer_at = 0.0
        self._reset(head_request=False)
        self.in_use = False
        self.counted = True  # in its pool's count; False once the pool has let it go
        #: Called back (no argument) when the response moves on, in place of waking a waiter (see listen).
        self.listener: Callable[[], None] | None = None
        self.woken = False  # the response moved on since the listener was last called
        self._listen_timeout: float | None = None

    def _reset(self, head_request: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_request = head_request
        self.got_bytes = False
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.headers_done = False
        self.interim = False
        self.until_close = False
        self.complete = False
        self.keep_alive = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.reading_paused = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.answered_early = False  # the response began before the request was written whole

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parse(data)
        if self.woken:
            self._notify()

    def _parse(self, data: bytes) -> None:
        if not self.in_use or self.complete:
            # Bytes nobody asked for (or after a response's end): this connection is out of sync.
            self._fail(httpx.RemoteProtocolError("upstream sent data outside a response"))
            self.close()
            return
        self.got_bytes = True
        if not self.headers_done:
            # Count before parsing: httptools joins a header line's pieces as they arrive, so one endless
            # line must be refused before it is fed, not after it has been built.
            end = data.find(b"\r\n\r\n")
            self.head_size += len(data) if end < 0 else end + 4  # (_count_head, inline)
            if self.head_size > self.max_head:
                self._fail(httpx.RemoteProtocolError(f"upstream response head over {self.max_head} bytes"))
                self.close()
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # A 101 (or a CONNECT answer): what follows is not HTTP. The head is out to the proxy (which
            # relays no upgrade: 502); the connection is never reused.
            self.keep_alive = False
            self.answered_early = True
            self._wake()
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed upstream response: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        self._ended()
        self._notify()
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ended()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(httpx.WriteError("upstream connection lost while sending the request"))
        self.pool.lost(self)
        self._notify()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise httptools.HttpParserError("upstream sent more than one response to one request")
        self.headers = []
        self.reason = b""
        self.interim = False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:  # after the head: a trailer, not relayed
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 100 Continue, 103 Early Hints: the real response follows
            return
        self.status = status
        self.headers_done = True
        if self.head_request:
            self.complete = True  # a HEAD response has no body, whatever its Content-Length says
            self.keep_alive = self.parser.should_keep_alive()
        elif status not in (204, 304):
            # Read until close unless framed: a Content-Length, or a Transfer-Encoding ending in chunked
            # (RFC 9112 §6.3: any other transfer coding runs to the end of the connection).
            framed = False
            for n, v in self.headers:
                name = n.lower()
                if name == b"content-length":
                    framed = True
                elif name == b"transfer-encoding":
                    framed = v.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
            self.until_close = not framed
        if self.waiter is None:  # (_wake, inline here and in on_body and on_message_complete: once per response each)
            if self.listener is not None:
                self.woken = True
        else:
            self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > self.max_buffer and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        if self.waiter is None:
            if self.listener is not None:
                self.woken = True
        else:
            self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        # Asked now: once this callback returns, llhttp resets its flags for the next message.
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is None:
            if self.listener is not None:
                self.woken = True
        else:
            self._wake()

    # --- used by the transport --------------------------------------------------------------

    def _ended(self) -> None:
        """The server closed the connection: the end of a read-until-close body, or an error."""
        if self.in_use and not self.complete and self.error is None:
            if self.headers_done and self.until_close:
                self.complete = True
            elif not self.got_bytes:
                self.error = _StaleConnection()
            else:
                self.error = httpx.ReadError("upstream closed the connection mid-response")
        self._wake()

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif self.listener is not None:
            self.woken = True  # called once the parse (or the close) is over: see _notify

    def _notify(self) -> None:
        """Call the listener if the response moved on; outside the parser, so it may release this
        connection and a request it starts may take it (httptools is not re-entered)."""
        listener = self.listener
        if self.woken and listener is not None:
            self.woken = False
            if self._listen_timeout is not None:
                # A new wait starts, as each await of _wait does: the read deadline is an idle time.
                self._deadline = self.loop.time() + self._listen_timeout
            listener()

    def listen(self, listener: Callable[[], None], timeout: float | None) -> None:
        """Call ``listener`` back as the response moves on (instead of awaiting it); at the read deadline
        (``timeout`` s with nothing new) the connection fails with ``httpx.ReadTimeout``, is closed, and
        the listener is called. The listener clears :attr:`listener` when it is done listening."""
        self.listener = listener
        self.woken = False
        self._listen_timeout = timeout
        if timeout is None:
            self._deadline = math.inf  # (a timer left from an earlier wait finds nothing due)
        else:
            self._deadline = self.loop.time() + timeout
            if self._timer is None or self._deadline < self._timer_at:
                self._arm()

    async def _wait(self, timeout: float | None) -> None:
        """Until the parser has something new (or the connection failed), at most ``timeout`` s.

        One timer per connection serves every wait: each wait sets its own deadline, and the timer,
        when it fires, times out the wait in progress if that wait's deadline has passed, or waits on
        to it (a timer made and cancelled per wait cost ~5 us, two or three times a request).
        """
        waiter = self.waiter = self.loop.create_future()
        if timeout is not None:
            self._deadline = self.loop.time() + timeout
            if self._timer is None or self._deadline < self._timer_at:  # (a shorter timeout than the last)
                self._arm()
        try:
            await waiter
        finally:
            self.waiter = None

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self.waiter
        if self.closed or (self.listener is None if waiter is None else waiter.done()):
            return  # no wait in progress: the next one arms the timer again
        if self._deadline == math.inf:
            return  # a listener without a read timeout
        if self.loop.time() < self._deadline:
            self._arm()
        elif waiter is not None:
            self._time_out(waiter)
        else:
            # A listener's wait: the error its reader meets next, as an awaiting reader would.
            self._fail(httpx.ReadTimeout("upstream did not answer in time"))
            self.close()
            self._notify()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = self._deadline
        self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(httpx.ReadTimeout("upstream did not answer in time"))
        self.close()  # a response may still be on its way: this connection cannot be reused

    def start(self, head_request: bool) -> None:
        self._reset(head_request)
        self.in_use = True

    async def write(self, data: bytes, timeout: float | None) -> None:
        self.write_now(data)
        await self.drained(timeout)

    def write_now(self, data: bytes) -> None:
        """Hand ``data`` to the transport (raises :class:`_StaleConnection` on a closed connection); see :meth:`drained`."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise _StaleConnection()
        self.transport.write(data)

    async def drained(self, timeout: float | None) -> None:
        """Until the transport has taken what was written (at once unless writing is paused)."""
        if self._write_paused:
            self._drain = self.loop.create_future()
            try:
                await asyncio.wait_for(self._drain, timeout)
            except TimeoutError:
                self.close()
                raise httpx.WriteTimeout("upstream did not take the request body in time") from None
            finally:
                self._drain = None

    async def wait_headers(self, timeout: float | None) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait(timeout)

    async def read(self, timeout: float | None) -> bytes:
        """The body bytes that have arrived, in one chunk; b"" at the end of the body."""
        while True:
            if self.chunks:
                chunks = self.chunks
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self.chunks = []
                self.buffered = 0
                if self.reading_paused and not self.closed and self.transport is not None:
                    self.reading_paused = False
                    self.transport.resume_reading()
                return data
            if self.complete:
                return b""
            if self.error is not None:
                error = self.error
                raise error if not isinstance(error, _StaleConnection) else httpx.ReadError("upstream closed the connection")
            await self._wait(timeout)

    def reusable(self) -> bool:
        return (
            not self.answered_early
            and self.complete
            and not self.closed
            and not self.until_close
            and self.error is None
            and not self.chunks
            and self.keep_alive
        )

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()
