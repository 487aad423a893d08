"""Request framing: smuggling shapes refused before a byte goes upstream (these held when the issue
was filed and must stay held), pipelining, Host validation (issue 12 item 11) and request trailers
(item 9)."""

from __future__ import annotations

import uuid

import pytest

from tests.adversarial.harness import Conn, assert_only_whole, exchange, request

pytestmark = pytest.mark.integration


def _tok() -> str:
    return "t" + uuid.uuid4().hex[:12]


H = "Host: shop.example\r\n"

#: name → request bytes with ``{t}`` where the test's token goes; every one must be a 400 with
#: nothing sent upstream (RFC 9112 §6.1, §6.3, §5: a server MUST reject these or MAY, and a proxy
#: forwarding them is how request smuggling works).
REFUSED = {
    "CL.TE": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo/{t}-smuggled HTTP/1.1\r\n" + H + "\r\n",
    "TE.CL": "POST /echo/{t} HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2c\r\nGET /echo/{t}-smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
    "TE xchunked": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello",
    "TE xchunked alone": "POST /echo/{t} HTTP/1.1\r\n" + H + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "TE space before colon": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "TE obs-fold ' chunked'": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n",
    "TE 'chunked, identity'": "POST /echo/{t} HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "TE duplicated": "POST /echo/{t} HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "TE duplicated with CL": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
    "bare LF line ends": "GET /echo/{t} HTTP/1.1\n" + "Host: shop.example\n\n",
    "bare LF inside the head": "GET /echo/{t} HTTP/1.1\r\n" + H + "X-A: 1\nX-B: 2\r\n\r\n",
    "NUL in a header value": "GET /echo/{t} HTTP/1.1\r\n" + H + "X-A: a\x00b\r\n\r\n",
    "SOH in a header value": "GET /echo/{t} HTTP/1.1\r\n" + H + "X-A: a\x01b\r\n\r\n",
    "CR in a header value": "GET /echo/{t} HTTP/1.1\r\n" + H + "X-A: a\rb\r\n\r\n",
    "DEL in a header name": "GET /echo/{t} HTTP/1.1\r\n" + H + "X-\x7fA: 1\r\n\r\n",
    "space in Content-Length": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 1 0\r\n\r\n0123456789",
    "two Content-Lengths": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 40\r\n\r\nhelloGET /echo/{t}-smuggled HTTP/1.1\r\n\r\n",
    "Content-Length list": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: 5, 40\r\n\r\nhello",
    "negative Content-Length": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\nhello",
    "Content-Length with a plus": "POST /echo/{t} HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello",
    "space before the header colon": "GET /echo/{t} HTTP/1.1\r\n" + H + "Content-Length : 0\r\n\r\n",
    "bad chunk size": "POST /echo/{t} HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_smuggling_shapes_get_400_and_nothing_upstream(edge, up, name):
    e = edge()
    t = _tok()
    result = exchange(e.port, REFUSED[name].replace("{t}", t).encode("latin-1"), n=2, timeout=10)
    assert result.responses, f"no response to {name}: {result.data[:300]!r}"
    assert result.first.status == 400, result.responses
    assert len(result.responses) == 1, f"a second response after the 400: {result.responses}"
    assert not up.saw(t), f"bytes of a refused request reached the upstream:\n{up.summary()}"
    assert e.alive()


def test_three_pipelined_gets_get_three_responses_in_order(edge, up):
    e = edge()
    t = _tok()
    data = b"".join(request("GET", f"/echo/{t}-{i}") for i in range(3))
    with Conn(e.port) as conn:
        assert conn.send(data)
        result = conn.read(3, timeout=10)
    assert result.statuses() == [200, 200, 200], result.responses
    assert [r.body for r in result.responses] == [f"GET /echo/{t}-{i} 0".encode() for i in range(3)]
    assert sorted(r.target for r in up.complete()) == [f"/echo/{t}-{i}" for i in range(3)]
    assert_only_whole(up, [("GET", f"/echo/{t}-{i}", b"") for i in range(3)])


def test_pipelined_posts_keep_their_own_bodies(edge, up):
    e = edge()
    t = _tok()
    sent = [("POST", f"/echo/{t}-{i}", b"body %d " % i * (i + 1)) for i in range(3)]
    data = b"".join(request(m, target, body=body, chunked=i == 1) for i, (m, target, body) in enumerate(sent))
    with Conn(e.port) as conn:
        assert conn.send(data)
        result = conn.read(3, timeout=10)
    assert [r.body for r in result.responses] == [f"POST {t_} {len(b)}".encode() for _, t_, b in sent]
    assert sorted(r.key for r in up.complete()) == sorted(sent)


# --- item 11: Host validation --------------------------------------------------------------


HOST_CASES = {
    "HTTP/1.1 without Host": "GET /echo/{t} HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "two Host fields": "GET /echo/{t} HTTP/1.1\r\nHost: shop.example\r\nHost: evil.example\r\n\r\n",
    "two Host fields, same value": "GET /echo/{t} HTTP/1.1\r\nHost: shop.example\r\nHost: shop.example\r\n\r\n",
    "Host with a path and markup": "GET /echo/{t} HTTP/1.1\r\nHost: evil.example/<script>\r\n\r\n",
    "Host with a space": "GET /echo/{t} HTTP/1.1\r\nHost: shop.example evil.example\r\n\r\n",
    "Host with userinfo": "GET /echo/{t} HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
    "Host with a bad port": "GET /echo/{t} HTTP/1.1\r\nHost: shop.example:80x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(HOST_CASES))
def test_invalid_host_gets_400_and_nothing_upstream(edge, up, name):
    """Item 11: duplicate, missing or malformed Host → 400, nothing forwarded (nginx does the same)."""
    e = edge()
    t = _tok()
    result = exchange(e.port, HOST_CASES[name].replace("{t}", t).encode(), n=1, timeout=10)
    assert result.first.status == 400, result.responses
    assert not up.saw(t), f"a request with an invalid Host reached the upstream:\n{up.summary()}"


@pytest.mark.parametrize("host", ["shop.example", "shop.example:8080", "127.0.0.1:80", "[::1]:8080", "xn--bcher-kva.example"])
def test_valid_host_is_forwarded(edge, up, host):
    """The control for item 11: a valid host[:port] passes and reaches the upstream unchanged."""
    e = edge()
    t = _tok()
    result = exchange(e.port, request("GET", f"/echo/{t}", host=host, close=True), timeout=10)
    assert result.first.status == 200, result.responses
    (got,) = up.complete()
    assert got.header("host") == [host]


@pytest.mark.parametrize("method", ["GET", "POST"])  # a page GET takes the fast path; a POST the ASGI path
def test_trailing_whitespace_of_a_header_value_never_reaches_the_upstream(edge, up, method):
    """A field value's trailing spaces and tabs are not part of it (RFC 9110 §5.5; llhttp keeps them): the
    storefront gets the value without them, and a Host with them is still one valid Host."""
    e = edge()
    t = _tok()
    body = "" if method == "GET" else "Content-Length: 2\r\n"
    data = (
        f"{method} /echo/{t} HTTP/1.1\r\nHost: shop.example \t\r\nX-Basket: 3 items \t \r\nX-Inner: a  b\r\n"
        f"{body}Connection: close\r\n\r\n{'ok' if body else ''}"
    ).encode()
    result = exchange(e.port, data, timeout=10)
    assert result.first.status == 200, result.responses
    (got,) = up.complete()
    assert got.header("host") == ["shop.example"]
    assert got.header("x-basket") == ["3 items"]
    assert got.header("x-inner") == ["a  b"]  # (whitespace inside a value is the value's)


def test_http10_without_host_is_served(edge, up):
    """HTTP/1.0 has no Host requirement: the control for the HTTP/1.1 rule."""
    e = edge()
    t = _tok()
    result = exchange(e.port, f"GET /echo/{t} HTTP/1.0\r\n\r\n".encode(), timeout=10)
    assert result.first.status == 200, result.responses
    assert [r.target for r in up.complete()] == [f"/echo/{t}"]


# --- item 9: request trailers --------------------------------------------------------------


def test_request_trailers_never_reach_the_upstream(edge, up):
    """Item 9: a trailer ``X-Auth-User: admin`` must not arrive upstream as a header; the body is intact."""
    e = edge()
    t = _tok()
    data = (
        f"POST /echo/{t} HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\nTrailer: X-Auth-User\r\n"
        "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Auth-User: admin\r\nX-Role: root\r\n\r\n"
    ).encode()
    result = exchange(e.port, data, timeout=10)
    assert result.first.status == 200, result.responses
    (got,) = up.complete()
    assert got.body == b"hello world"
    names = {n.lower() for n, _ in got.headers} | {n.lower() for n, _ in got.trailers}
    assert "x-auth-user" not in names and "x-role" not in names, f"trailers forwarded: {got.headers} / {got.trailers}"
    assert result.first.body == f"POST /echo/{t} 11".encode()
