"""edge.runtime.fast_path: the bytes the shopper and the storefront see are the ASGI path's.

Two ``edge serve`` processes, one with the fast path (the default) and one without
(``EDGE_FAST_PATH=0``), sit in front of one scripted storefront that records the bytes of every
request it gets and answers each path in its own way (a page of declared length, chunked, gzip, a
304, an image, a page arriving in two pieces, one cut short...). Each case sends the same request
bytes to both edges over a raw socket; the storefront must get the same bytes from both, and the
shopper the same bytes back, once the parts that differ on every response are set aside: the token
(a nonce and a time), ``Server-Timing`` (durations), ``Date``, and the lengths that count the token.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.readiness import poll_ready

ROOT = Path(__file__).resolve().parents[2]
PAGE = b"<!doctype html><html><head><title>t</title></head><body><h1>Tea</h1>" + b"<p>leaf</p>" * 9000 + b"</body></html>"
HINTS = b"ECT: 4g\r\nRTT: 50\r\nDownlink: 10\r\n"


def _answer(path: bytes) -> list[bytes | float]:
    """What the storefront writes for a request of ``path``: byte strings, and pauses (seconds) between them."""
    html = b"content-type: text/html; charset=utf-8\r\n"
    if path.startswith(b"/chunked"):
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (PAGE[:5000], PAGE[5000:])) + b"0\r\n\r\n"
        return [b"HTTP/1.1 200 OK\r\n" + html + b"transfer-encoding: chunked\r\n\r\n" + body]
    if path.startswith(b"/gzip"):
        packed = gzip.compress(PAGE)
        return [b"HTTP/1.1 200 OK\r\n" + html + b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed) + packed]
    if path.startswith(b"/304"):
        return [b'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\ncache-control: max-age=60\r\n\r\n']
    if path.startswith(b"/image"):
        return [b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 5\r\n\r\n\x89PNG\n"]
    if path.startswith(b"/missing"):
        return [b"HTTP/1.1 404 Not Found\r\n" + html + b"content-length: 9\r\n\r\nnot here\n"]
    if path.startswith(b"/redirect"):
        return [b"HTTP/1.1 302 Found\r\nlocation: /shop\r\ncontent-length: 0\r\n\r\n"]
    if path.startswith(b"/slow"):  # the head and half the page, then the rest: the page streams through
        head = b"HTTP/1.1 200 OK\r\n" + html + b"content-length: %d\r\n\r\n" % len(PAGE)
        return [head + PAGE[:50000], 0.2, PAGE[50000:]]
    if path.startswith(b"/cut"):  # a page that breaks off: the storefront closes mid-body
        return [b"HTTP/1.1 200 OK\r\n" + html + b"content-length: %d\r\n\r\n" % len(PAGE) + PAGE[:1000], None]
    if path.startswith(b"/fragment"):  # no </body>: the snippet goes at the end
        return [b"HTTP/1.1 200 OK\r\n" + html + b"content-length: 12\r\n\r\n<p>hello</p>"]
    if path.startswith(b"/small"):  # fits one loopback segment: it reaches edge whole however busy the machine
        small = PAGE[:1500] + b"</body></html>"
        return [b"HTTP/1.1 200 OK\r\n" + html + b"content-length: %d\r\n\r\n" % len(small) + small]
    if path.startswith(b"/widgets"):  # a page lite lays out, the request's value in a form and the text: a template's holes
        value = path.partition(b"=")[2] or b"none"
        page = (b"<!doctype html><html><head><title>t</title></head><body><form><input name=csrf value=" + value + b"></form>"
                b'<div data-edge-widget="reviews"><p>great</p></div>' + b"<p>leaf</p>" * 3000 + b"<p>" + value + b"</p></body></html>")  # fmt: skip
        return [b"HTTP/1.1 200 OK\r\n" + html + b"content-length: %d\r\n\r\n" % len(page) + page]
    if path.startswith(b"/stall"):  # nothing until past edge's read timeout (2 s): a 504
        return [2.6, b"HTTP/1.1 200 OK\r\n" + html + b"content-length: %d\r\n\r\n" % len(PAGE) + PAGE]
    if path.startswith(b"/halt"):  # the head and a part, then nothing past the read timeout
        return [b"HTTP/1.1 200 OK\r\n" + html + b"content-length: %d\r\n\r\n" % len(PAGE) + PAGE[:3000], 2.6, PAGE[3000:]]
    if path.startswith(b"/notransform"):
        return [b"HTTP/1.1 200 OK\r\n" + html + b"cache-control: no-transform\r\ncontent-length: %d\r\n\r\n" % len(PAGE) + PAGE]
    extra = b"set-cookie: a=1; Path=/\r\nset-cookie: b=2; Path=/\r\nkeep-alive: timeout=5\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\n"
    extra += b'etag: "v1"\r\nvary: Accept-Encoding\r\ncache-control: public, max-age=60\r\n'
    return [b"HTTP/1.1 200 OK\r\n" + html + extra + b"content-length: %d\r\n\r\n" % len(PAGE) + PAGE]


class Storefront:
    """A scripted HTTP/1.1 upstream on loopback that records each request's bytes, by the edge that sent it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        drop_next = False  # after a /stale page, the next request on this connection is not answered
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                with self.lock:
                    self.requests.append(head + b"\r\n\r\n")
                if drop_next:
                    return  # closed on a request it took, unanswered: a reused connection gone stale
                path = head.split(b" ", 2)[1]
                drop_next = path.startswith(b"/stale")
                for part in _answer(path):
                    if part is None:
                        return  # close mid-body
                    if isinstance(part, float):
                        time.sleep(part)
                    else:
                        try:
                            conn.sendall(part)
                        except OSError:
                            return  # edge gave up on it (a read timeout)

    def take(self) -> list[bytes]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def edges() -> Iterator[tuple[Storefront, int, int]]:
    """The storefront, then the public ports of an edge with the fast path and of one without."""
    shop = Storefront()
    procs: list[subprocess.Popen] = []
    ports = []
    try:
        for fast in ("1", "0"):
            port, admin = _free_port(), _free_port()
            env = {**os.environ, "EDGE_FEEDBACK_KEY": "fast-path-test-key-0123456789", "EDGE_FAST_PATH": fast,
                   "EDGE_CLIENT_SOCKET": "behind-proxy", "EDGE_TIER_DWELL_S": "0"}  # fmt: skip
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edge.runtime.cli", "serve", "--upstream", f"http://127.0.0.1:{shop.port}",
                 "--port", str(port), "--admin-port", str(admin), "--log-level", "error", "--read-timeout", "2"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            ready, last = poll_ready(f"http://127.0.0.1:{admin}/readyz", lambda p=procs[-1]: p.poll() is None, time.monotonic() + 20)
            assert ready, f"edge did not start: {last}"
            ports.append((port, admin))
        yield shop, ports[0], ports[1]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        shop.sock.close()


def _exchange(port: int, requests: list[bytes], quiet: float = 0.6) -> bytes:
    """Send ``requests`` on one connection, one after the other's answer; everything received until the
    connection closes or goes ``quiet`` seconds."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for request in requests:
            sock.sendall(request)
            sock.settimeout(quiet)
            try:
                while True:
                    data = sock.recv(262144)
                    if not data:
                        return out
                    out += data
            except TimeoutError:
                pass
    return out


_TOKEN = re.compile(rb"(?im)^edge-token: ([A-Za-z0-9_.-]+)\r\n")


def _normalized(raw: bytes, head_request: bool = False) -> list[bytes]:
    """The responses in ``raw`` with what differs on every answer set aside (module docstring). A
    response with a token must declare its body's length exactly (unless it is the last, cut short),
    which is checked before it is set aside."""
    out = []
    while raw:
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            out.append(raw)  # a head cut short
            break
        head, raw = raw[: end + 4], raw[end + 4 :]
        length = re.search(rb"(?im)^content-length: (\d+)\r\n", head)
        if head_request or head.startswith((b"HTTP/1.1 304", b"HTTP/1.1 204")):
            body = b""
        elif length is not None:
            body, raw = raw[: int(length.group(1))], raw[int(length.group(1)) :]
        else:
            body, raw = raw, b""  # chunked or until close: the rest (these cases send one request)
        token = _TOKEN.search(head)
        if token is not None:
            assert length is not None
            declared = int(length.group(1))
            assert declared == len(body) or (declared > len(body) and not raw)  # exact, or the last answer cut short
            if re.search(rb"(?im)^content-encoding: gzip\r\n", head):
                body = gzip.decompress(body)  # (the token is inside, compressed)
            head = re.sub(rb"(?im)^content-length: \d+\r\n", b"content-length: N\r\n", head)
            head, body = head.replace(token.group(1), b"TOKEN"), body.replace(token.group(1), b"TOKEN")
        out.append(re.sub(rb"(?im)^(server-timing|date): [^\r]*\r\n", rb"\1: X\r\n", head) + body)
    return out


def _get(path: str, extra: bytes = b"", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: shop.test\r\n".encode() + HINTS + extra + b"\r\n"


def _lite(path: str, extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: shop.test\r\n".encode() + b"ECT: 2g\r\n" + extra + b"\r\n"


CASES = {
    "page": [_get("/")],
    "page, two on one connection": [_get("/"), _get("/?again=1")],
    "page with proxy headers": [
        _get(
            "/p?q=a%20b&x=1",
            b"X-Forwarded-For: 10.0.0.9\r\nVia: 1.0 cdn\r\nCookie: c=1; d=2\r\n"
            b"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\nKeep-Alive: 5\r\n",
        )
    ],
    "page, connection close": [_get("/", b"Connection: close\r\n")],
    "HEAD": [_get("/", method="HEAD")],
    "conditional": [_get("/", b'If-None-Match: "v1"\r\n')],
    "304": [_get("/304")],
    "chunked page": [_get("/chunked")],
    "gzip page": [_get("/gzip", b"Accept-Encoding: gzip\r\n")],
    "image": [_get("/image")],
    "404": [_get("/missing")],
    "redirect": [_get("/redirect")],
    "page in two pieces": [_get("/slow")],
    "page cut short": [_get("/cut")],
    "fragment": [_get("/fragment")],
    "no-transform page": [_get("/notransform")],
    "no-transform request": [_get("/", b"Cache-Control: no-transform\r\n")],
    "lite": [b"GET / HTTP/1.1\r\nHost: shop.test\r\nECT: 2g\r\n\r\n"],
    "lite, pages that change (a layout template)": [_lite(f"/widgets?v={v}") for v in ("A1", "B2", "C3", "D4")],
    "lite, a page that changes elsewhere": [_lite("/widgets?v=A1"), _lite("/widgets?v=x.y"), _lite("/small")],
    "lite, gzip asked": [_lite("/widgets?v=A1", b"Accept-Encoding: gzip\r\n"), _lite("/widgets?v=B2", b"Accept-Encoding: gzip\r\n")],
    "lite, connection close": [_lite("/widgets?v=A1", b"Connection: close\r\n")],
    "lite, page in two pieces": [_lite("/slow")],
    "lite, page cut short": [_lite("/cut")],
    "lite, gzip page": [_lite("/gzip", b"Accept-Encoding: gzip\r\n")],
    "lite, chunked page": [_lite("/chunked")],
    "minimal": [_get("/widgets?v=A1", b"Cookie: edge_tier=minimal\r\n"), _get("/widgets?v=B2", b"Cookie: edge_tier=minimal\r\n")],
    "upstream read timeout (504)": [_get("/"), _get("/stall")],
    "upstream read timeout mid-page": [_get("/"), _get("/halt")],
    "lite, upstream read timeout mid-page": [_lite("/small"), _lite("/halt")],
    "stale reused connection (retried)": [_get("/stale"), _get("/?after=stale")],
    "lite, stale reused connection": [_lite("/stale"), _lite("/small?after=stale")],
    "pipelined pages": [_get("/") + _get("/?2") + _get("/small")],
    "pipelined: lite, an image, a 304, full": [_lite("/small") + _get("/image") + _get("/304") + _get("/?x") + _lite("/widgets?v=Q")],
    "pipelined behind a slow page": [_get("/small") + _get("/slow") + _get("/small?2")],
    "pipelined, the last cut short": [_get("/small") + _get("/small?2") + b"GET /small?3 HTTP/1.1\r\nHost: shop"],
    "asset path": [_get("/static/app.js")],
    "edge's own path": [_get("/__edge/nothing-here")],
    "HTTP/1.0": [b"GET / HTTP/1.0\r\nHost: shop.test\r\n" + HINTS + b"\r\n"],
}


def _fast_pages(admin: int) -> float:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
    found = re.search(r"^edge_fast_path_pages_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("case", list(CASES))
def test_same_bytes_as_the_asgi_path(edges: tuple[Storefront, tuple[int, int], tuple[int, int]], case: str) -> None:
    shop, (fast, fast_admin), (asgi, _) = edges
    requests = CASES[case]
    quiet = 3.0 if "timeout" in case else 0.6
    shop.take()
    via_fast = _exchange(fast, requests, quiet)
    time.sleep(0.05)
    upstream_fast = shop.take()
    via_asgi = _exchange(asgi, requests, quiet)
    time.sleep(0.05)
    upstream_asgi = shop.take()
    assert upstream_fast == upstream_asgi
    assert via_fast, "no answer"
    if case.startswith(("lite, pages", "minimal")):  # (so the case tests what it is named after)
        tier = case.split(",")[0].encode()
        assert via_fast.count(b"edge-tier: " + tier + b"\r\n") == len(requests)
    head_request = case == "HEAD"
    assert _normalized(via_fast, head_request) == _normalized(via_asgi, head_request)


def test_the_page_takes_the_fast_path(edges: tuple[Storefront, tuple[int, int], tuple[int, int]]) -> None:
    _, (fast, fast_admin), (asgi, asgi_admin) = edges
    before = _fast_pages(fast_admin)
    # A small page: a 99 KB one may reach edge in pieces on a busy machine, and a page still arriving
    # streams through the responder (by design), so it would not count here.
    answer = _exchange(fast, [_get("/small"), _get("/small?2")])
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2 and answer.count(b"edge-tier: full\r\n") == 2
    assert _fast_pages(fast_admin) == before + 2
    _exchange(fast, [_get("/gzip", b"Accept-Encoding: gzip\r\n"), _get("/304"), _get("/", b"Content-Length: 0\r\n")])
    assert _fast_pages(fast_admin) == before + 2
    answer = _exchange(fast, [_lite("/small"), _lite("/small?2")])  # laid out for lite (its page held whole)
    assert answer.count(b"edge-tier: lite\r\n") == 2
    assert _fast_pages(fast_admin) == before + 4
    _exchange(asgi, [_get("/")])
    assert _fast_pages(asgi_admin) == 0


def test_a_shopper_gone_mid_page(edges: tuple[Storefront, tuple[int, int], tuple[int, int]]) -> None:
    """A shopper who leaves while the page is on its way: the storefront's connection is not reused
    mid-answer (the next shopper's page comes whole, from the request it sent), on either path."""
    shop, (fast, _), (asgi, _) = edges
    answers, upstream = [], []
    for port in (fast, asgi):
        shop.take()
        _exchange(port, [_get("/small")])  # a pooled connection for the callback exchange to take
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(_get("/slow?gone=1"))
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(_lite("/halt?gone=2"))
            time.sleep(0.05)
        answers.append(_normalized(_exchange(port, [_get("/small?next=1"), _lite("/widgets?v=N")])))
        time.sleep(0.3)  # the first page's rest arrives
        answers.append(_normalized(_exchange(port, [_get("/small?next=2")])))
        time.sleep(0.05)
        upstream.append(sorted(shop.take()))
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert len(answers[0]) == 2 and len(answers[1]) == 1
    assert upstream[0] == upstream[1]
