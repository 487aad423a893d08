"""Slow and idle clients: slowloris (issue 12 item 4), slow uploads that starve the upstream pool
and the body timeout (item 5). Each test passes the flags it needs with short values; deadlines are
asserted generously (the timeout plus 3 s), never tight timings."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.adversarial.harness import Conn, exchange, request

pytestmark = pytest.mark.integration

TIMEOUTS = ("--header-timeout", "2", "--keepalive-timeout", "2", "--body-timeout", "2")
DEADLINE = 2 + 3  # a timeout of 2 s, asserted with 3 s to spare
POOL = ("--pool-size", "10", "--max-streaming-uploads", "2", "--request-buffer-bytes", "1024", "--pool-timeout", "3")


def _tok() -> str:
    return "t" + uuid.uuid4().hex[:12]


# --- item 4: slowloris ----------------------------------------------------------------------------


def test_idle_connection_without_a_request_is_closed_silently(edge, up):
    e = edge(*TIMEOUTS)
    with Conn(e.port) as conn:
        closed, data = conn.wait_closed(DEADLINE)
    assert closed, f"an idle connection was still open after {DEADLINE} s (--header-timeout 2)"
    assert data == b"", f"a connection that sent nothing got bytes back: {data[:200]!r}"


def test_partial_head_gets_408_at_the_header_deadline(edge, up):
    e = edge(*TIMEOUTS)
    t = _tok()
    with Conn(e.port) as conn:
        conn.send(f"GET /echo/{t} HTTP/1.1\r\nHost: shop.example\r\nX-Slow: ".encode())
        closed, data = conn.wait_closed(DEADLINE)
    assert closed, f"a partial head was still open after {DEADLINE} s (--header-timeout 2)"
    assert data.startswith(b"HTTP/1.1 408"), f"expected a 408, got {data[:200]!r}"
    assert not up.saw(t)


def test_trickling_head_is_not_kept_alive_by_each_byte(edge, up):
    """One byte every 0.25 s: the header deadline runs from the first byte, it is not refreshed."""
    e = edge(*TIMEOUTS)
    t = _tok()
    head = f"GET /echo/{t} HTTP/1.1\r\nHost: shop.example\r\n".encode() + b"X-Trickle: " + b"a" * 200
    started = time.monotonic()
    with Conn(e.port) as conn:
        for i in range(len(head)):
            if not conn.send(head[i : i + 1]) or conn.is_closed_now():
                break
            if time.monotonic() - started > DEADLINE + 3:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        closed, data = conn.wait_closed(0.5)
    assert closed and elapsed < DEADLINE, f"a trickling head was still open after {elapsed:.1f} s (--header-timeout 2)"
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
    assert not up.saw(t)


def test_keep_alive_connection_idle_after_a_request_is_closed(edge, up):
    e = edge(*TIMEOUTS)
    t = _tok()
    with Conn(e.port) as conn:
        conn.send(request("GET", f"/echo/{t}"))
        result = conn.read(1, timeout=10)
        assert result.first.status == 200, result.responses
        closed, _ = conn.wait_closed(DEADLINE)
    assert closed, f"an idle keep-alive connection was still open after {DEADLINE} s (--keepalive-timeout 2)"


def test_idle_connections_beyond_max_connections_are_evicted_for_a_new_client(edge, up):
    """With ``--max-connections 50``, 60 idle connections: the oldest idle ones are closed to make
    room, and a new client is still served."""
    e = edge("--max-connections", "50")
    t = _tok()
    idle = []
    try:
        for _ in range(60):
            idle.append(Conn(e.port, timeout=10))
            time.sleep(0.01)
        time.sleep(0.5)
        result = exchange(e.port, request("GET", f"/echo/{t}", close=True), timeout=20)
        assert result.responses and result.first.status == 200, f"a new client was refused: {result.responses} {result.data[:200]!r}"
        time.sleep(0.5)
        still_open = sum(1 for c in idle if not c.is_closed_now())
        assert still_open <= 50, f"{still_open} of 60 idle connections still open with --max-connections 50"
        closed_first = [i for i, c in enumerate(idle) if c.is_closed_now()]
        assert closed_first and min(closed_first) < 15, f"not the oldest idle connections were closed: {closed_first}"
    finally:
        for c in idle:
            c.close()


# --- item 5: slow uploads and the upstream pool ---------------------------------------------------


def _gets_meanwhile(port: int, t: str, stop: threading.Event, out: list) -> None:
    i = 0
    while not stop.is_set():
        result = exchange(port, request("GET", f"/echo/{t}-get{i}", close=True), timeout=20)
        out.append(result.first.status if result.responses else f"none ({result.data[:60]!r})")
        i += 1
        time.sleep(0.1)


def test_110_trickling_small_uploads_do_not_starve_other_requests(edge, up):
    """110 POSTs (Content-Length 100) trickling a byte every 0.5 s with ``--pool-size 10``: small
    bodies are read whole before the upstream is asked, so other requests get 200 meanwhile, and
    no trickling upload reaches the upstream as a complete request."""
    e = edge(*POOL)
    t = _tok()
    conns = []
    statuses: list = []
    stop = threading.Event()
    getter = threading.Thread(target=_gets_meanwhile, args=(e.port, t, stop, statuses), daemon=True)
    try:
        for i in range(110):
            c = Conn(e.port, timeout=10)
            c.send(request("POST", f"/echo/{t}-slow{i}", length=100) + b"x")
            conns.append(c)
        getter.start()
        for _ in range(12):  # 6 s of trickling
            time.sleep(0.5)
            for c in conns:
                c.send(b"x")
    finally:
        stop.set()
        getter.join(30)
        for c in conns:
            c.close()
    assert statuses and all(s == 200 for s in statuses), f"requests failed while uploads trickled: {statuses}"
    time.sleep(0.5)
    assert not [r for r in up.complete() if f"{t}-slow" in r.target], up.summary()


def test_large_trickling_uploads_are_limited_by_max_streaming_uploads(edge, up):
    """Bodies over ``--request-buffer-bytes`` stream upstream, at most ``--max-streaming-uploads``
    (2) at once; the others wait for a slot up to ``--pool-timeout`` (3 s), then get 503; other
    requests are served meanwhile."""
    e = edge(*POOL)
    t = _tok()
    conns = []
    statuses: list = []
    stop = threading.Event()
    getter = threading.Thread(target=_gets_meanwhile, args=(e.port, t, stop, statuses), daemon=True)
    try:
        for i in range(6):
            c = Conn(e.port, timeout=10)
            c.send(request("POST", f"/upload/{t}-{i}", length=200_000) + b"y" * 2048)
            conns.append(c)
        getter.start()
        deadline = time.monotonic() + 3 + 4
        while time.monotonic() < deadline:
            time.sleep(0.3)
            for c in conns:
                c.send(b"y" * 512)
        answers = [c.read(1, timeout=0.5) for c in conns]
    finally:
        stop.set()
        getter.join(30)
        for c in conns:
            c.close()
    assert statuses and all(s == 200 for s in statuses), f"requests failed while uploads streamed: {statuses}"
    assert up.max_inflight["upload"] <= 2, f"{up.max_inflight['upload']} uploads streamed upstream at once (limit 2)"
    refused = [a.first.status for a in answers if a.responses]
    assert refused.count(503) >= 4, f"uploads waiting past --pool-timeout should get 503: {[a.statuses() for a in answers]}"
    assert not [r for r in up.complete() if "/upload/" in r.target], up.summary()


def test_stalled_small_body_gets_408_and_nothing_upstream(edge, up):
    """``--body-timeout 2``: 10 of 100 bytes, then nothing → 408; the upstream never runs it."""
    e = edge(*TIMEOUTS)
    t = _tok()
    with Conn(e.port) as conn:
        conn.send(request("POST", f"/echo/{t}", length=100) + b"0123456789")
        result = conn.read(1, timeout=DEADLINE)
    assert result.responses and result.first.status == 408, f"{result.responses} {result.data[:200]!r} (timed out={result.timed_out})"
    assert not [r for r in up.complete() if t in r.target], up.summary()


def test_stalled_large_body_gets_408_and_the_upstream_request_is_aborted(edge, up):
    """``--body-timeout 2`` on a streamed upload (200 KB announced, 100 KB sent): 408 to the client,
    and the upstream connection carrying the partial request is closed, never completed."""
    e = edge(*TIMEOUTS)
    t = _tok()
    with Conn(e.port) as conn:
        conn.send(request("POST", f"/echo/{t}", length=200_000) + b"z" * 100_000)
        result = conn.read(1, timeout=DEADLINE)
    assert result.responses and result.first.status == 408, f"{result.responses} {result.data[:200]!r} (timed out={result.timed_out})"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(not c.closed for c in up.snapshot() if t.encode() in c.raw):
        time.sleep(0.1)
    carrying = [c for c in up.snapshot() if t.encode() in c.raw]
    assert all(c.closed for c in carrying), f"the upstream connection of an aborted upload is still open:\n{up.summary()}"
    assert not [r for r in up.complete() if t in r.target], up.summary()
