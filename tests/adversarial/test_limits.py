"""Request head limits (issue 12 item 6) and a burst bigger than the upstream pool (item 7)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from tests.adversarial.harness import Conn, Resp, async_exchange, exchange, request
from tests.adversarial.test_upstream_responses import RSS_GROWTH_BOUND_KIB, RssPeak

pytestmark = pytest.mark.integration


def _tok() -> str:
    return "t" + uuid.uuid4().hex[:12]


def _head_case(name: str, t: str) -> bytes:
    if name == "100 KB header line":
        return request("GET", f"/echo/{t}", [("X-Big", "a" * 100_000)], close=True)
    if name == "10,000 headers":
        return request("GET", f"/echo/{t}", [(f"X-H{i}", "v") for i in range(10_000)], close=True)
    if name == "16 KB URL":
        return request("GET", f"/echo/{t}?q=" + "u" * 16_384, close=True)
    raise KeyError(name)


@pytest.mark.parametrize("name,status", [("100 KB header line", 431), ("10,000 headers", 431), ("16 KB URL", 414)])
def test_oversized_request_heads_are_refused_and_nothing_goes_upstream(edge, up, name, status):
    """Item 6: the default limits (request line 8 KB → 414; a field 8 KB, 100 fields, a 32 KB head → 431)."""
    e = edge()
    t = _tok()
    with Conn(e.port, timeout=20) as conn:
        conn.send(_head_case(name, t))
        result = conn.read(1, timeout=20)
    assert result.responses, f"no response (eof={result.eof}, reset={result.reset}): {result.data[:200]!r}"
    assert result.first.status == status, result.responses
    assert not up.saw(t), f"an oversized head reached the upstream:\n{up.summary()}"


def test_four_20_mb_headers_keep_memory_bounded_and_others_served(edge, up):
    """Item 6: four clients each sending a 20 MB header line: refused early (431 or cut off, never
    forwarded), edge's RSS grows little and normal requests keep being served meanwhile."""
    e = edge()
    t = _tok()
    exchange(e.port, request("GET", f"/echo/{t}-warm", close=True))
    outcomes: list = [None] * 4
    normal: list = []

    def abuse(i: int) -> None:
        with Conn(e.port, timeout=30) as conn:
            conn.send(f"GET /echo/{t}-abuse{i} HTTP/1.1\r\nHost: shop.example\r\nX-Big: ".encode())
            piece = b"b" * (1 << 20)
            for _ in range(20):
                if not conn.send(piece):
                    break
            conn.send(b"\r\n\r\n")
            outcomes[i] = conn.read(1, timeout=30)

    with RssPeak(e) as rss:
        threads = [threading.Thread(target=abuse, args=(i,)) for i in range(4)]
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads) and len(normal) < 200:
            normal.append(exchange(e.port, request("GET", f"/echo/{t}-n{len(normal)}", close=True), timeout=30))
        for th in threads:
            th.join(60)
    for i, result in enumerate(outcomes):
        assert result is not None, f"abusive client {i} never finished"
        statuses = result.statuses()
        assert not statuses or statuses[0] in (400, 413, 431), f"abusive client {i}: {result.responses}"
    bad = [r.responses or r.data[:100] for r in normal if not r.responses or r.first.status != 200]
    assert not bad, f"normal requests failed during the abuse: {bad[:5]}"
    assert not up.saw(f"{t}-abuse"), "an abusive head reached the upstream"
    assert rss.growth_kib < RSS_GROWTH_BOUND_KIB, f"RSS grew {rss.growth_kib} KiB"


def test_600_concurrent_requests_to_a_500_ms_page_all_succeed(edge, up):
    """Item 7: a burst larger than the pool waits for a free connection (pool timeout, not the 2 s
    connect timeout): with default settings 600 concurrent requests to a 500 ms page all get 200."""
    e = edge()
    t = _tok()

    async def burst() -> list[Resp | str]:
        return await asyncio.gather(
            *(async_exchange(e.port, request("GET", f"/slow/{t}-{i}?ms=500", close=True), timeout=60) for i in range(600))
        )

    started = time.monotonic()
    results = asyncio.run(burst())
    elapsed = time.monotonic() - started
    statuses = [r.status if isinstance(r, Resp) else r for r in results]
    failed = [s for s in statuses if s != 200]
    assert not failed, f"{len(failed)} of 600 failed in {elapsed:.1f} s: {sorted(set(map(str, failed)))}"
    bodies_ok = all(r.body == f"GET /slow/{t}-{i}?ms=500 0".encode() for i, r in enumerate(results))
    assert bodies_ok, "a burst request got another request's answer"
