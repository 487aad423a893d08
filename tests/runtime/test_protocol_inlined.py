"""edge's protocol inlines uvicorn's ``on_message_begin`` and ``on_header`` (edge.runtime.protocol): these
properties hold them to the installed uvicorn's, so an upgrade that changes what uvicorn does with a field
(0.55 began stripping a value's trailing whitespace) fails here instead of drifting unseen."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from edge.runtime.protocol import ConnectionLimits, EdgeHttpProtocol

_NAMES = st.sampled_from([b"Host", b"expect", b"EXPECT", b"X-Basket", b"cookie", b"Accept-Encoding", b"te"])
_VALUES = st.one_of(
    st.sampled_from([b"100-continue", b"100-Continue ", b" 100-continue", b"gzip\t", b"a  b", b"", b" ", b"\t \t"]),
    st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.tuples(st.sampled_from([b"", b" ", b"\t", b" \t "]), st.binary(max_size=6), st.sampled_from([b"", b" ", b"\t", b"\t "])).map(b"".join),
)


def _uvicorn(fields: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], bool]:
    proto = SimpleNamespace(headers=[], expect_100_continue=False)
    for name, value in fields:
        HttpToolsProtocol.on_header(proto, name, value)  # type: ignore[arg-type]
    return proto.headers, proto.expect_100_continue


def _edge(fields: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], bool]:
    proto = SimpleNamespace(headers=[], expect_100_continue=False, _in_head=True, _fields=0, limits=ConnectionLimits())
    for name, value in fields:
        EdgeHttpProtocol.on_header(proto, name, value)  # type: ignore[arg-type]
    return proto.headers, proto.expect_100_continue


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
def test_on_header_keeps_what_uvicorns_keeps(fields):
    assert _edge(fields) == _uvicorn(fields)


def test_on_message_begin_makes_uvicorns_scope():
    def fresh() -> SimpleNamespace:
        return SimpleNamespace(asgi_version="3.0", server=("127.0.0.1", 8000), client=("127.0.0.1", 5555), scheme="http",
                               root_path="", app_state={"k": 1})  # fmt: skip

    theirs, ours = fresh(), fresh()
    HttpToolsProtocol.on_message_begin(theirs)  # type: ignore[arg-type]
    EdgeHttpProtocol.on_message_begin(ours)  # type: ignore[arg-type]
    for name in ("url", "expect_100_continue", "headers", "scope"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.scope["headers"] is ours.headers and ours.scope["state"] is not ours.app_state
