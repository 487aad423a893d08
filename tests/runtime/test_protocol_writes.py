"""edge.runtime.protocol._Cycle: uvicorn's response writing, with the head and the first body piece in one write.

Each case runs the same ASGI messages through uvicorn's own ``RequestResponseCycle`` (with edge's
204/304 rule) and through
``_Cycle`` over a transport that records its writes: the bytes on the wire must be the same, only
cut into fewer writes (and a head whose body does not come in the same loop step goes out alone).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from edge.runtime.protocol import _Cycle


class Recorder:
    """A transport that keeps what is written, one entry per write call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: list[bytes]) -> None:
        self.writes.append(b"".join(parts))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class UvicornCycle(RequestResponseCycle):
    """uvicorn's cycle with only edge's earlier change: a 204/304 with ``Content-Length`` ends without a body."""

    async def send(self, message: dict) -> None:  # type: ignore[override]
        starting = not self.response_started
        await super().send(message)  # type: ignore[arg-type]
        if starting and message.get("status") in (204, 304):
            self.expected_content_length = 0
            self.chunked_encoding = False


def cycle(kind: type[RequestResponseCycle], method: str = "GET", keep_alive: bool = True) -> tuple[RequestResponseCycle, Recorder]:
    transport = Recorder()
    log = logging.getLogger("test")
    scope = {"type": "http", "method": method, "headers": []}
    made = kind(scope, transport, FlowControl(transport), log, log, False, [], asyncio.Event(), False, keep_alive, lambda: None)  # type: ignore[arg-type]
    return made, transport


def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http.response.start", "status": status, "headers": headers if headers is not None else [(b"content-length", b"10")]}


def body(data: bytes, more: bool = False) -> dict:
    return {"type": "http.response.body", "body": data, "more_body": more}


CASES = {
    "one piece": ("GET", [start(), body(b"helloworld")]),
    "two pieces": ("GET", [start(), body(b"hello", True), body(b"world")]),
    "an empty end": ("GET", [start(), body(b"helloworld", True), body(b"")]),
    "chunked": ("GET", [start(headers=[(b"Content-Type", b"text/html")]), body(b"hello", True), body(b"world")]),
    "head": ("HEAD", [start(), body(b"")]),
    "204 with a length": ("GET", [start(204, [(b"content-length", b"3")]), body(b"")]),
    "connection close": ("GET", [start(headers=[(b"content-length", b"2"), (b"connection", b"close")]), body(b"ok")]),
}


@pytest.mark.parametrize("case", CASES)
def test_the_same_bytes_as_uvicorn_in_fewer_writes(case):
    method, messages = CASES[case]

    async def go(kind):
        made, transport = cycle(kind, method)
        for message in messages:
            await made.send(message)
        await asyncio.sleep(0)
        return made, transport

    theirs, their_wire = asyncio.run(go(UvicornCycle))
    ours, our_wire = asyncio.run(go(_Cycle))
    assert b"".join(our_wire.writes) == b"".join(their_wire.writes)
    their_writes = [w for w in their_wire.writes if w]
    if len(their_writes) == 1:  # a head alone (HEAD, 204)
        assert our_wire.writes == their_writes
    else:  # the head went out with the first body piece
        assert len(our_wire.writes) == len(their_writes) - 1 and our_wire.writes[0] == their_writes[0] + their_writes[1]
    assert ours.response_complete and theirs.response_complete and our_wire.closed == their_wire.closed


def test_a_head_whose_body_is_late_goes_out_alone_on_the_next_loop_step():
    async def go():
        made, transport = cycle(_Cycle)
        await made.send(start())
        assert transport.writes == []  # held for the body...
        await asyncio.sleep(0)
        assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n")  # ...but not longer
        await made.send(body(b"helloworld"))
        assert transport.writes[1] == b"helloworld" and made.response_complete

    asyncio.run(go())


@pytest.mark.parametrize("header", [(b"bad name", b"v"), (b"x-ok", b"line\r\nbreak"), (b"x-ok", b"nul\x00")])
def test_invalid_fields_are_refused_before_anything_is_written(header):
    async def go():
        made, transport = cycle(_Cycle)
        with pytest.raises(RuntimeError, match="Invalid HTTP header"):
            await made.send(start(headers=[(b"content-length", b"1"), header]))
        await asyncio.sleep(0)
        assert transport.writes == []

    asyncio.run(go())


def test_a_disconnected_client_gets_nothing():
    async def go():
        made, transport = cycle(_Cycle)
        await made.send(start())
        made.disconnected = True
        await asyncio.sleep(0)
        await made.send(body(b"helloworld"))
        assert transport.writes == []

    asyncio.run(go())


# Fields a response head may carry, edge's own (lower-case, one Content-Length) and anything a storefront's
# app may send through the ASGI path: whatever the mix, _Cycle._head's bytes and what it sets are uvicorn's.
_FIELDS = st.sampled_from(
    [
        (b"content-length", b"10"),
        (b"content-length", b"7"),
        (b"Content-Length", b"12"),
        (b"content-type", b"text/html; charset=utf-8"),
        (b"Content-Type", b"text/html"),
        (b"transfer-encoding", b"chunked"),
        (b"transfer-encoding", b"gzip"),
        (b"connection", b"close"),
        (b"Connection", b"keep-alive, Close"),
        (b"connection", b"keep-alive"),
        (b"edge-tier", b"full"),
        (b"server-timing", b"upstream;dur=1.5"),
        (b"x-content-length", b"5"),
        (b"set-cookie", b"a=b; Path=/"),
        (b"", b"empty name"),
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    headers=st.lists(_FIELDS, max_size=8),
    status=st.sampled_from([200, 204, 304, 404]),
    method=st.sampled_from(["GET", "HEAD"]),
    keep_alive=st.booleans(),
    as_lists=st.booleans(),
)
def test_a_head_is_uvicorns_whatever_its_fields(headers, status, method, keep_alive, as_lists):
    fields = [list(field) for field in headers] if as_lists else headers

    async def theirs():
        made, transport = cycle(UvicornCycle, method, keep_alive)
        await made.send(start(status, fields))
        return made, transport.writes[0]

    their_cycle, their_head = asyncio.run(theirs())
    our_cycle, _ = cycle(_Cycle, method, keep_alive)
    assert our_cycle._head(status, fields) == their_head
    for state in ("expected_content_length", "chunked_encoding", "keep_alive"):
        assert getattr(our_cycle, state) == getattr(their_cycle, state), state
