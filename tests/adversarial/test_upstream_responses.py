"""Bad and odd upstream responses: issue 12 items 8, 10, 14, 15 and 16, plus garbage, a body cut
short and a compression bomb (which held when the issue was filed and must stay held)."""

from __future__ import annotations

import gzip
import threading
import time
import uuid
import zlib

import pytest

from tests.adversarial.harness import PAGE, TEGZIP_TEXT, Conn, bomb, exchange, request

pytestmark = pytest.mark.integration

RSS_GROWTH_BOUND_KIB = 64 * 1024
LITE = [("ECT", "2g"), ("Accept", "text/html")]


def _tok() -> str:
    return "t" + uuid.uuid4().hex[:12]


class RssPeak:
    """Samples a process's VmRSS every 20 ms in a thread; ``growth_kib`` = peak − baseline."""

    def __init__(self, e) -> None:  # noqa: ANN001
        self.e = e
        self.baseline = e.rss_kib()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.e.rss_kib())
            except (OSError, RuntimeError):
                return
            time.sleep(0.02)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    @property
    def growth_kib(self) -> int:
        return self.peak - self.baseline


def _no_traceback(e) -> None:  # noqa: ANN001
    log = e.log()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, f"edge logged a traceback:\n{log[-4000:]}"


# --- item 15 and garbage --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["status99", "status600", "status999", "101", "garbage"])
def test_impossible_upstream_status_or_garbage_gives_502(edge, up, name):
    """Item 15: status < 100 or ≥ 600, or a 101 to a GET that asked for no upgrade, is a broken
    upstream: 502, no traceback (garbage already gave 502 and must keep doing so)."""
    e = edge()
    t = _tok()
    result = exchange(e.port, request("GET", f"/raw/{t}?r={name}", close=True), timeout=20)
    assert result.responses, f"no response: {result.data[:300]!r} (eof={result.eof}, reset={result.reset})"
    assert result.first.status == 502, result.responses
    assert result.first.complete
    assert e.alive()
    _no_traceback(e)


# --- item 8 ---------------------------------------------------------------------------------------


def test_one_huge_upstream_header_line_gives_502_with_bounded_memory(edge, up):
    """Item 8: a single 1 MB response header line is refused (502, not a 504 after the read timeout)
    while memory stays bounded and other requests are served meanwhile."""
    e = edge()
    t = _tok()
    exchange(e.port, request("GET", f"/echo/{t}-warm", close=True))
    results: list = [None] * 4
    normal: list = []

    def big(i: int) -> None:
        results[i] = exchange(e.port, request("GET", f"/raw/{t}-{i}?r=bighead", close=True), timeout=30)

    with RssPeak(e) as rss:
        threads = [threading.Thread(target=big, args=(i,)) for i in range(4)]
        for th in threads:
            th.start()
        for i in range(5):
            normal.append(exchange(e.port, request("GET", f"/echo/{t}-n{i}", close=True), timeout=30))
        for th in threads:
            th.join(40)
    for r in results:
        assert r is not None and r.responses, f"no response to a huge-header request: {r}"
        assert r.first.status == 502, r.responses
    assert [r.first.status for r in normal] == [200] * 5
    assert rss.growth_kib < RSS_GROWTH_BOUND_KIB, f"RSS grew {rss.growth_kib} KiB"


# --- item 10 --------------------------------------------------------------------------------------


def test_page_held_for_rewriting_cut_mid_body_gives_502_without_traceback(edge, up):
    """Item 10: a lite page (held whole for rewriting) whose upstream closes mid-body → 502, no traceback."""
    e = edge()
    t = _tok()
    result = exchange(e.port, request("GET", f"/html/{t}?mode=cut", LITE, close=True), timeout=20)
    assert result.responses, f"no response: {result.data[:300]!r}"
    assert result.first.status == 502, result.responses
    _no_traceback(e)


def test_page_held_for_rewriting_stalled_mid_body_gives_504_without_traceback(edge, up):
    """Item 10: the same page stalling mid-body → 504 after ``--read-timeout``, no traceback."""
    e = edge("--read-timeout", "2")
    t = _tok()
    result = exchange(e.port, request("GET", f"/html/{t}?mode=stall", LITE, close=True), timeout=20)
    assert result.responses, f"no response: {result.data[:300]!r}"
    assert result.first.status == 504, result.responses
    _no_traceback(e)


def test_lite_page_control_is_rewritten(edge, up):
    """The control for item 10: the whole page, for the same client, is served lite (so the tests
    above do exercise the held-for-rewriting path)."""
    e = edge()
    t = _tok()
    result = exchange(e.port, request("GET", f"/html/{t}", LITE, close=True), timeout=20)
    assert result.first.status == 200 and result.first.get("edge-tier") == "lite", result.responses
    assert len(result.first.body) < len(PAGE)


# --- item 14 --------------------------------------------------------------------------------------


def test_non_chunked_transfer_encoding_read_until_close_is_delivered_whole(edge, up):
    """Item 14: ``Transfer-Encoding: gzip`` without Content-Length, body until close: the client gets
    the whole body (as sent, or decoded) and a cleanly terminated response."""
    e = edge()
    t = _tok()
    result = exchange(e.port, request("GET", f"/raw/{t}?r=tegzip", close=True), timeout=20)
    assert result.responses, f"no response: {result.data[:300]!r}"
    r = result.first
    assert r.status == 200, r
    assert r.complete and not result.reset, f"the response was cut off (eof={result.eof}, reset={result.reset}): {r}"
    sent = gzip.compress(TEGZIP_TEXT, mtime=0)
    body = r.body
    if "gzip" in (r.get("transfer-encoding") or "") or "gzip" in (r.get("content-encoding") or ""):
        body = zlib.decompress(body, 16 + zlib.MAX_WBITS) if body[:2] == b"\x1f\x8b" else body
    assert body in (sent, TEGZIP_TEXT), f"body differs ({len(r.body)} bytes)"


# --- item 16 --------------------------------------------------------------------------------------


def test_304_for_a_lite_page_is_private(edge, up):
    """Item 16: the 200 of a lite page says ``private``; its 304 must too, never the upstream's ``public``."""
    e = edge()
    t = _tok()
    first = exchange(e.port, request("GET", f"/cond/{t}", LITE, close=True), timeout=20).first
    assert first.status == 200 and first.get("edge-tier") == "lite", first
    assert "private" in first.get("cache-control"), first
    etag = first.get("etag")
    assert etag, first
    again = exchange(e.port, request("GET", f"/cond/{t}", [*LITE, ("If-None-Match", etag)], close=True), timeout=20).first
    assert again.status == 304, again
    cache_control = ", ".join(again.get_list("cache-control")).lower()
    assert "private" in cache_control and "public" not in cache_control, f"304 Cache-Control: {cache_control!r}"


# --- held: a body cut short, a compression bomb ---------------------------------------------------


def test_upstream_body_cut_short_aborts_the_client_connection(edge, up):
    """Content-Length 10000, 1000 bytes, close: the client must see an aborted response, never a
    clean short one."""
    e = edge()
    t = _tok()
    result = exchange(e.port, request("GET", f"/raw/{t}?r=cutcl", close=True), timeout=20)
    assert result.responses, f"no response: {result.data[:300]!r}"
    r = result.first
    assert r.status == 200
    assert not r.complete, f"a body cut short reached the client as a complete response: {r}"
    assert len(r.body) < 10000


def test_gzip_bomb_page_for_a_lite_client_is_passed_through_or_502_with_bounded_memory(edge, up):
    e = edge()
    t = _tok()
    with RssPeak(e) as rss:
        with Conn(e.port, timeout=60) as conn:
            conn.send(request("GET", f"/html/{t}?mode=bomb", [*LITE, ("Accept-Encoding", "gzip")], close=True))
            result = conn.read(1, timeout=60)
    r = result.first
    assert r.status in (200, 502), r
    if r.status == 200:
        assert r.complete and r.body == bomb(), f"the bomb was not passed through as is ({len(r.body)} bytes)"
    assert rss.growth_kib < RSS_GROWTH_BOUND_KIB, f"RSS grew {rss.growth_kib} KiB"
