"""A request that waits in edge's queue: the wait is server time in its token, not the shopper's round trip.

A real ``edge serve`` (``launch_edge``: a process of its own) in front of the demo storefront. A shopper's
keep-alive connection fetches a first page (edge has accepted the connection, and its upstream pool holds
an idle connection, so the next page takes the fast path's callback exchange); then edge is frozen with
``SIGSTOP``, the next page request is sent and sits unread in the kernel's receive buffer for
:data:`STOP_S`, as behind an event loop busy with other pages, and edge is let go with ``SIGCONT``.

The page's token must carry that wait in its server time (``u``: what the beacon subtracts from
responseStart − requestStart), read from the kernel (``tcpi_last_data_recv``) when the head is complete;
``Server-Timing``'s ``upstream`` stays the storefront's own time. A beacon built as the browser's (its
requestStart and responseStart are what this client measured, the wait included) must then not read a
slow round trip: :data:`STOP_S` is above the label rule's 1000 ms, so without the wait in ``u`` the page
view would be labelled degraded. ``edge_request_queue_seconds_total`` counts the wait. A full page (4G
hints: spliced) and a lite one (``ECT: 2g``: laid out) on the fast path, and a full page on the ASGI path
(a conditional request, which the fast path does not take) are checked.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import orjson
import pytest

from tests.integration.conftest import HOST
from tests.integration.test_learning_loop import metric, post_beacon, set_cookie_value, shopper, token_payload

pytestmark = pytest.mark.integration

#: How long edge is frozen with the request in its socket's buffer: above the label rule's rtt_ms (1000).
STOP_S = 1.3
GOOD_4G = {"ECT": "4g", "RTT": "50", "Downlink": "10"}
TWO_G = {"ECT": "2g"}


class _Responses:
    """Responses (each with a Content-Length) read one after another off one socket, bytes kept between them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"edge closed the connection: {self.buffer[:300]!r}"
        self.buffer += data

    def next(self) -> tuple[int, dict[str, str], bytes, float, float]:
        """(status, headers with lower-case names, body, ``time.perf_counter()`` of its first byte seen, of its last)."""
        if not self.buffer:
            self._more()
        first_byte = time.perf_counter()
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body, first_byte, time.perf_counter()


def _upstream_ms(server_timing: str) -> float:
    match = re.search(r"upstream;dur=([0-9.]+)", server_timing)
    assert match, f"no upstream in Server-Timing: {server_timing!r}"
    return float(match.group(1))


@pytest.mark.parametrize(
    ("hints", "tier", "fast", "flags"),
    [
        (GOOD_4G, "full", True, ()),
        (TWO_G, "lite", True, ()),
        # A conditional request is not the fast path's: the ASGI app (the middleware's responder) serves it.
        ({**GOOD_4G, "If-None-Match": '"not-this-page"'}, "full", False, ()),
        # Behind a balancer the socket's round trip is the balancer's, but the wait in edge's buffer is edge's.
        (GOOD_4G, "full", True, ("--client-socket", "behind-proxy")),
    ],
    ids=["full-4g", "lite-2g", "asgi-full-4g", "behind-proxy-full-4g"],
)
def test_a_wait_in_edges_queue_is_server_time_not_the_shoppers_round_trip(stack, launch_edge, client, hints, tier, fast, flags):
    name = f"{tier}-{'fast' if fast else 'asgi'}{'-behind-proxy' if flags else ''}"
    edge = launch_edge(stack.storefront_url, "--log-level", "warning", *flags, name=f"edge-queue-{name}")
    ua = shopper(f"queue-{name}")
    fields = "".join(f"{name}: {value}\r\n" for name, value in hints.items())
    head = f"GET / HTTP/1.1\r\nHost: {HOST}:{edge.port}\r\nUser-Agent: {ua}\r\n{fields}\r\n".encode()
    with socket.create_connection((HOST, edge.port), timeout=15.0) as sock:
        responses = _Responses(sock)
        sock.sendall(head)
        status, headers, _, _, _ = responses.next()
        assert status == 200 and headers["edge-tier"] == tier, headers
        fast_pages = metric(edge.admin_url, "edge_fast_path_pages_total")
        queued_s = metric(edge.admin_url, "edge_request_queue_seconds_total")

        os.kill(edge.pid, signal.SIGSTOP)
        try:
            sent = time.perf_counter()
            sock.sendall(head)
            time.sleep(STOP_S)  # the request sits in edge's socket buffer, unread
        finally:
            os.kill(edge.pid, signal.SIGCONT)
        status, headers, body, first_byte, last_byte = responses.next()

    assert status == 200 and headers["edge-tier"] == tier, headers
    assert metric(edge.admin_url, "edge_fast_path_pages_total") == fast_pages + fast  # the fast path served it, or not
    ttfb_ms = (first_byte - sent) * 1000.0
    assert ttfb_ms >= STOP_S * 1000.0
    # The token's server time holds the wait (the kernel counts it in ticks of 1-10 ms); Server-Timing's
    # upstream is still the storefront's own few milliseconds.
    u = token_payload(headers["edge-token"])["u"]
    upstream = _upstream_ms(headers["server-timing"])
    print(f"{name}: client's time to first byte {ttfb_ms:.1f} ms, token u {u} ms, Server-Timing upstream {upstream} ms")
    assert STOP_S * 1000.0 - 20.0 <= u <= ttfb_ms + 20.0, (u, ttfb_ms)
    assert upstream < STOP_S * 1000.0 / 2, upstream
    waited = metric(edge.admin_url, "edge_request_queue_seconds_total") - queued_s
    assert STOP_S - 0.02 <= waited < STOP_S + 1.0, waited

    # The browser's beacon for that page: its own clock, the wait included in responseStart − requestStart.
    request_start = 5.0
    nav = [request_start, request_start + ttfb_ms, request_start + (last_byte - sent) * 1000.0, len(body)]
    answer = post_beacon(client, edge.url, orjson.dumps({"t": headers["edge-token"], "nav": nav, "res": []}))
    assert answer.status_code == 204, answer.text
    measured = token_payload(set_cookie_value(answer, "edge_m") or "")
    assert measured["r"] < 300.0, measured  # the round trip: the client's time less the server's, wait and all
    # (Without the wait in u it read 1302 ms here: a 2G-like round trip, and the page view labelled degraded.)
    assert metric(edge.admin_url, "edge_labels_total", source="beacon", label="degraded") == 0
    assert metric(edge.admin_url, "edge_labels_total", source="beacon", label="ok") == (1 if "k" in measured else 0)


#: How long the storefront takes over the page ahead (the demo's /slow?ms=): above the label rule's 1000 ms.
AHEAD_MS = 1300


def test_a_request_waiting_for_its_turn_in_edge_is_server_time_not_the_shoppers_round_trip(stack, launch_edge, client):
    """Edge reads a request's head and starts it later: a task's turn of a busy event loop, or, made
    certain here, a pipelined request waiting for the response ahead of it (HTTP/1.1 answers in order).
    The wait from the head read to the start is edge's, and goes into the token's server time."""
    edge = launch_edge(stack.storefront_url, "--log-level", "warning", name="edge-queue-pipelined")
    fields = "".join(f"{name}: {value}\r\n" for name, value in GOOD_4G.items())
    host = f"Host: {HOST}:{edge.port}\r\nUser-Agent: {shopper('queue-pipelined')}\r\n{fields}\r\n"
    ahead, page = f"GET /slow?ms={AHEAD_MS} HTTP/1.1\r\n{host}", f"GET / HTTP/1.1\r\n{host}"
    with socket.create_connection((HOST, edge.port), timeout=15.0) as sock:
        sent = time.perf_counter()
        sock.sendall((ahead + page).encode())
        responses = _Responses(sock)
        first_status, first, _, _, _ = responses.next()
        status, headers, body, first_byte, last_byte = responses.next()

    assert first_status == status == 200, (first_status, status)
    assert first["edge-tier"] == "full" and headers["edge-tier"] == "full", (first, headers)
    ttfb_ms = (first_byte - sent) * 1000.0
    u = token_payload(headers["edge-token"])["u"]
    upstream = _upstream_ms(headers["server-timing"])
    print(f"pipelined page: client's time to first byte {ttfb_ms:.1f} ms, token u {u} ms, Server-Timing upstream {upstream} ms")
    assert ttfb_ms >= AHEAD_MS
    assert AHEAD_MS - 50.0 <= u <= ttfb_ms + 20.0, (u, ttfb_ms)  # its wait for the page ahead, in its server time
    assert upstream < AHEAD_MS / 2, upstream  # the storefront's own time for it: small

    request_start = 5.0
    nav = [request_start, request_start + ttfb_ms, request_start + (last_byte - sent) * 1000.0, len(body)]
    answer = post_beacon(client, edge.url, orjson.dumps({"t": headers["edge-token"], "nav": nav, "res": []}))
    assert answer.status_code == 204, answer.text
    measured = token_payload(set_cookie_value(answer, "edge_m") or "")
    assert measured["r"] < 300.0, measured  # (without the wait in u: ~1300 ms, a 2G-like round trip)
    assert metric(edge.admin_url, "edge_labels_total", source="beacon", label="degraded") == 0
