"""The request/response cycle of edge's HTTP/1.1 protocol (:mod:`edge.runtime.protocol`): uvicorn's, with
its response head held for the first body message and checked with one ``bytes.translate``, and a whole
response in one write for the fast path (``send_whole``, ``write_whole``).
"""

from __future__ import annotations

import asyncio
from operator import itemgetter
from typing import Any

from uvicorn.protocols.http.httptools_impl import HEADER_RE as _HEADER_NAME
from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE as _HEADER_VALUE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

__all__ = ["_Cycle"]

#: The bytes uvicorn's header name and value patterns do not match (each matches one byte): deleting these
#: from the joined names (values) leaves a byte exactly when a field has one the pattern refuses. One
#: ``translate`` is ~7x faster than the pattern's search over a response's ~1 KB of values (~10 us here).
_NAME_BYTES = bytes(b for b in range(256) if not _HEADER_NAME.match(bytes([b])))
_VALUE_BYTES = bytes(b for b in range(256) if not _HEADER_VALUE.match(bytes([b])))
_FIRST, _SECOND = itemgetter(0), itemgetter(1)


class _Cycle(RequestResponseCycle):
    """uvicorn's request/response cycle (its ``send``, for uvicorn's httptools protocol), with three changes:

    - a 204/304 with ``Content-Length`` ends without a body;
    - the response head is held until the first body message and goes out with it in one write
      (``writelines``): one system call, and one wake-up of the client, fewer per response. A head
      whose body does not follow within the same loop step goes out on the next step by itself, so
      a streamed response (a storefront that sends its head and then thinks) is not held back;
    - header names and values are checked with one ``translate`` over all of them (deleting the bytes
      uvicorn's patterns accept: the joined bytes keep one exactly when a field has a byte they refuse),
      not two regex searches per field.

    An access log (edge runs without one) takes uvicorn's own path for the head.
    """

    _held: bytes | None = None  # the response head, not yet written

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if self.access_log or message["type"] != "http.response.start":
                await super().send(message)  # logs, or raises for a body before the start
                self._no_body_for(message.get("status"))
                return
            self._hold_head(message)
            return
        if self.response_complete or message["type"] != "http.response.body":
            self._flush_head()
            await super().send(message)  # raises: a message after the end, or of the wrong type
            return
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            data = b""
        elif self.chunked_encoding:
            data = b"".join([b"%x\r\n" % len(body), body, b"\r\n"]) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            data = body
        held = self._held
        if held is not None:
            self._held = None
            if data:
                self.transport.writelines([held, data])
            else:
                self.transport.write(held)
        elif data:
            self.transport.write(data)
        if not more_body:
            self._complete_response()

    def _complete_response(self) -> None:
        """The response's last bytes are written: check its length, end it, and let the connection go on (or close)."""
        if self.expected_content_length != 0:
            raise RuntimeError("Response content shorter than Content-Length")
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()

    def _hold_head(self, message: Any) -> None:
        """uvicorn's status line and header fields for ``message``, held for the first body message."""
        self._held = self._head(message["status"], message.get("headers", []))
        asyncio.get_running_loop().call_soon(self._flush_head)

    async def send_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: list[bytes | memoryview]) -> None:
        """A whole response in one write: what ``send`` does with its start message and one final body
        message whose bytes are ``body``'s pieces joined (they are written as they are, never joined).

        The fast path's (:mod:`edge.runtime.fast_path`) one call for a page it has whole; the same
        checks, the same bytes and the same end of the response as the two messages through ``send``.
        """
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        self.write_whole(status, headers, body)

    def write_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: list[bytes | memoryview]) -> None:
        """:meth:`send_whole` once the client takes writes (the callback exchange's: it checked ``flow``)."""
        if self.disconnected:
            return
        if self.response_started or self.access_log:
            raise RuntimeError("send_whole starts a response (without an access log)")
        head = self._head(status, headers)
        size = sum(map(len, body))
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            pieces: list[bytes | memoryview] = []
        elif self.chunked_encoding:
            pieces = [b"%x\r\n" % size, *body, b"\r\n0\r\n\r\n"] if size else [b"0\r\n\r\n"]
        else:
            if size > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= size
            pieces = body if size else []
        self.transport.writelines([head, *pieces])
        self._complete_response()

    def _head(self, status_code: int, message_headers: Any) -> bytes:
        """The response head uvicorn would write for this status and these headers; the response has started."""
        self.response_started = True
        self.waiting_for_100_continue = False
        headers = self.default_headers + list(message_headers)
        if b"".join(map(_FIRST, headers)).translate(None, _NAME_BYTES):  # (map, not a comprehension: no call)
            raise RuntimeError("Invalid HTTP header name.")
        if b"".join(map(_SECOND, headers)).translate(None, _VALUE_BYTES):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend([name, b": ", value, b"\r\n"])
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        if status_code in (204, 304):  # (_no_body_for, inline)
            self.expected_content_length, self.chunked_encoding = 0, False
        return b"".join(content)

    def _no_body_for(self, status: int | None) -> None:
        if status in (204, 304):
            self.expected_content_length = 0
            self.chunked_encoding = False

    def _flush_head(self) -> None:
        """The head alone (no body message came in the loop step that started the response)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self.disconnected and not self.transport.is_closing():
                self.transport.write(held)
