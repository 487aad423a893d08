"""Upstream connection state after broken uploads and odd answers: issue 12 items 1, 2, 12 and 13.

The property throughout: the upstream only ever runs a request some client sent WHOLE, and every
client gets its own response, whatever the previous user of the upstream connection did.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.adversarial.harness import Conn, assert_only_whole, exchange, request

pytestmark = pytest.mark.integration


def _tok() -> str:
    return "t" + uuid.uuid4().hex[:12]


def _innocent_requests_get_their_own_answers(e, t: str, n: int = 3) -> list[tuple[str, str, bytes]]:
    sent = []
    for i in range(n):
        target = f"/echo/{t}-innocent{i}"
        result = exchange(e.port, request("GET", target, [("X-Forwarded-For", "203.0.113.9")], close=True), timeout=20)
        assert result.responses and result.first.status == 200, f"innocent request {i}: {result.responses} {result.data[:300]!r}"
        assert result.first.body == f"GET {target} 0".encode(), f"innocent request {i} got someone else's response: {result.first}"
        sent.append(("GET", target, b""))
    return sent


# --- item 1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 401, 405])
def test_abandoned_upload_after_an_early_answer_does_not_desync_the_upstream(edge, up, status):
    """Item 1. The storefront answers a POST early; the client closes before its body is complete.
    The attacker then sends a POST whose body is a request (``GET .../smuggled``), sized so that the
    upstream, still waiting for the first body, would take the second head as the rest of it and
    run the smuggled GET. Nothing but whole requests may run, and everyone gets their own answer."""
    e = edge()
    t = _tok()
    smuggled = f"/echo/{t}-smuggled"
    payload = f"GET {smuggled} HTTP/1.1\r\nHost: attacker.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n".encode()

    def second(i: int) -> bytes:  # the same length for i < 10
        return request("POST", f"/echo/{t}-b{i}", [("Content-Type", "text/plain")], payload)

    sent = []
    # How long is the second request's head once edge has forwarded it? (It forwards this one whole.)
    probe = exchange(e.port, second(0), timeout=20)
    assert probe.first.status == 200 and probe.first.body == f"POST /echo/{t}-b0 {len(payload)}".encode(), probe.responses
    sent.append(("POST", f"/echo/{t}-b0", payload))
    raw = up.raw_bytes()
    start = raw.find(f"POST /echo/{t}-b0 ".encode())
    assert start >= 0, up.summary()
    head_len = raw.find(b"\r\n\r\n", start) + 4 - start

    # The abandoned upload: Content-Length promises 10 bytes plus exactly the second head.
    attack = request("POST", f"/early/{t}-a?s={status}", [("Content-Type", "text/plain")], length=10 + head_len)
    conn = Conn(e.port)
    conn.send(attack + b"0123456789")
    time.sleep(0.6)  # the storefront has answered early by now
    conn.close()
    time.sleep(0.6)  # edge has finished with that request

    result = exchange(e.port, second(1), timeout=20)
    assert result.responses, f"no answer to the second POST: {result.data[:300]!r}"
    assert result.first.status == 200 and result.first.body == f"POST /echo/{t}-b1 {len(payload)}".encode(), (
        f"the second POST got another request's answer: {result.first}"
    )
    sent.append(("POST", f"/echo/{t}-b1", payload))
    sent += _innocent_requests_get_their_own_answers(e, t)
    time.sleep(0.3)
    assert not any(r.target == smuggled for r in up.complete()), f"the smuggled request ran upstream:\n{up.summary()}"
    assert_only_whole(up, sent)


def test_early_answer_then_the_whole_body_keeps_the_connection_usable(edge, up):
    """The control for item 1: when the client does send its whole body after an early 404, the
    upstream sees exactly that request and the next requests are answered correctly."""
    e = edge()
    t = _tok()
    body = b"k" * 5000
    with Conn(e.port) as conn:
        conn.send(request("POST", f"/early/{t}-a?s=404", body=b"", length=len(body)))
        time.sleep(0.3)
        conn.send(body)
        result = conn.read(1, timeout=20)
    assert result.first.status == 404, result.responses
    sent = [("POST", f"/early/{t}-a?s=404", body)]
    sent += _innocent_requests_get_their_own_answers(e, t)
    assert_only_whole(up, sent)


# --- item 2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["small", "large"])
def test_chunked_upload_closed_mid_body_never_completes_upstream(edge, up, size):
    """Item 2: a chunked POST whose client closes after ``5\\r\\nhello\\r\\n`` (or after 200 KB of a
    larger body) must not reach the storefront as a complete request (edge must not add ``0\\r\\n\\r\\n``)."""
    e = edge()
    t = _tok()
    target = f"/echo/{t}-chunked"
    head = f"POST {target} HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    body = b"5\r\nhello\r\n" if size == "small" else b"".join(b"4000\r\n" + b"z" * 0x4000 + b"\r\n" for _ in range(13))
    conn = Conn(e.port)
    conn.send(head + body)
    time.sleep(0.8)
    conn.close()
    time.sleep(1.0)
    assert not [r for r in up.complete() if r.target == target], f"an incomplete upload ran upstream:\n{up.summary()}"
    _innocent_requests_get_their_own_answers(e, t, 2)
    assert not [r for r in up.complete() if r.target == target], f"an incomplete upload ran upstream:\n{up.summary()}"


def test_content_length_upload_closed_mid_body_never_completes_upstream(edge, up):
    """Item 2 with Content-Length: 10 of 100 bytes, then the client closes."""
    e = edge()
    t = _tok()
    target = f"/echo/{t}-cl"
    conn = Conn(e.port)
    conn.send(request("POST", target, length=100) + b"0123456789")
    time.sleep(0.8)
    conn.close()
    time.sleep(0.8)
    sent = _innocent_requests_get_their_own_answers(e, t, 2)
    assert_only_whole(up, sent)


@pytest.mark.parametrize(
    "bad",
    [b"5\r\nhello\r\nZZ\r\nworld\r\n0\r\n\r\n", b"5\r\nhelloXX\r\n0\r\n\r\n", b"5\r\nhello\r\n-1\r\n\r\n"],
    ids=["bad-size", "bad-chunk-end", "negative-size"],
)
def test_malformed_chunked_upload_gets_400_and_nothing_completes_upstream(edge, up, bad):
    """Item 2: the client gets 400 for a malformed chunk, and the storefront must not run the POST
    (not even with an empty or partial body)."""
    e = edge()
    t = _tok()
    target = f"/echo/{t}-malformed"
    head = f"POST {target} HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    result = exchange(e.port, head + bad, timeout=20)
    assert result.first.status == 400, result.responses
    time.sleep(0.5)
    sent = _innocent_requests_get_their_own_answers(e, t, 2)
    assert_only_whole(up, sent)


# --- item 12 ------------------------------------------------------------------------------------


def test_304_with_content_length_keeps_the_next_pipelined_response(edge, up):
    """Item 12: a 304 carrying ``Content-Length: 1234`` (allowed, RFC 9110 §8.6) has no body; the
    next pipelined request on the same client connection gets its own response."""
    e = edge()
    t = _tok()
    with Conn(e.port) as conn:
        conn.send(request("GET", f"/raw/{t}?r=304cl", [("If-None-Match", '"x1"')]) + request("GET", f"/echo/{t}-next"))
        result = conn.read(2, timeout=20)
    assert [r.status for r in result.responses][:2] == [304, 200], f"{result.responses} {result.data[:500]!r}"
    assert result.responses[0].body == b""
    assert result.responses[1].body == f"GET /echo/{t}-next 0".encode()
    assert e.alive()


# --- item 13 ------------------------------------------------------------------------------------


def test_early_413_during_an_upload_reaches_the_client(edge, up):
    """Item 13: the storefront answers 413 (and closes, lingering) while the client is still sending
    1 MB: the client gets the 413, not a 502."""
    e = edge()
    t = _tok()
    total = 1 << 20
    conn = Conn(e.port, timeout=30)
    conn.send(request("POST", f"/early/{t}?s=413&close=1", [("Content-Type", "application/octet-stream")], length=total))
    stop = threading.Event()

    def upload() -> None:
        piece = b"u" * 65536
        for _ in range(total // len(piece)):
            if stop.is_set() or not conn.send(piece):
                return
            time.sleep(0.2)  # 1 MB in ~3 s: still uploading when the storefront has closed

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    try:
        result = conn.read(1, timeout=15)
    finally:
        stop.set()
        sender.join(5)
        conn.close()
    assert result.responses, f"no response (eof={result.eof}, reset={result.reset}): {result.data[:300]!r}"
    assert result.first.status == 413, result.responses
