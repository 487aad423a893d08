"""Unit tests of the network profiles and the paced reader (loadtests/profiles.py)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
from profiles import PROFILES, HttpConnection, Link, Profile, browser_hints, ect  # noqa: E402


@pytest.mark.parametrize(
    ("rtt", "down", "expected"),
    [
        (2000, 5000, "slow-2g"), (100, 49, "slow-2g"),
        (1400, 5000, "2g"), (100, 69, "2g"),
        (270, 5000, "3g"), (100, 699, "3g"), (269, 700, "4g"),
    ],
)
def test_ect_follows_chromium_table(rtt: float, down: float, expected: str) -> None:
    assert ect(rtt, down) == expected


def test_profiles_map_to_the_expected_effective_types() -> None:
    got = {name: browser_hints(p, 0.0)["ECT"] for name, p in PROFILES.items()}
    assert got == {"regular2g": "3g", "good2g": "3g", "slow3g": "3g", "lighthouse3g": "4g", "4g": "4g", "congested": "4g"}
    for p in PROFILES.values():
        assert p.downlink_kbps > 0 and p.uplink_kbps > 0 and p.rtt_ms > 0 and p.source


def test_hints_are_rounded_like_a_browser() -> None:
    odd = Profile("odd", "odd", 1612, 700, 163, "test", ("lte",))
    assert browser_hints(odd, 0) == {"ECT": "4g", "RTT": "175", "Downlink": "1.6"}


def test_congested_profile_drops_and_recovers() -> None:
    c = PROFILES["congested"]
    period = c.period_s
    samples = [c.downlink_at(t) for t in range(int(period) + 1)]
    trough = samples.index(min(samples))
    assert samples[0] == pytest.approx(c.downlink_kbps)
    assert min(samples) == pytest.approx(c.low_kbps)
    assert abs(trough - period / 2) <= 1
    assert all(a >= b for a, b in zip(samples[:trough], samples[1 : trough + 1]))  # falls monotonically
    assert all(a <= b for a, b in zip(samples[trough:-1], samples[trough + 1 :]))  # then recovers
    assert c.downlink_at(period) == pytest.approx(c.downlink_kbps)
    assert c.rtt_at(period / 2) == pytest.approx(c.rtt_ms + c.extra_rtt_ms)
    assert ect(c.rtt_at(0), c.downlink_at(0)) == "4g" and ect(c.rtt_at(period / 2), c.downlink_at(period / 2)) == "3g"


def _serve_once(body: bytes, server_done: list) -> tuple[int, threading.Thread]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        with conn, listener:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            server_done.append(time.monotonic())
            conn.recv(1)  # until the client closes

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize(("nbytes", "kbps"), [(50_000, 800), (100_000, 2000)])
def test_paced_reader_reads_at_the_downlink_rate(nbytes: int, kbps: float) -> None:
    """N bytes at R kbit/s take about N·8/R; and the server's send is held back (TCP flow control)."""
    profile = Profile("t", "test", kbps, kbps, 0.0, "test", ("lte",))
    done: list[float] = []
    port, thread = _serve_once(b"x" * nbytes, done)
    conn = HttpConnection("127.0.0.1", port, Link(profile))
    started = time.monotonic()
    response = conn.request("GET", "/", {})
    elapsed = time.monotonic() - started
    conn.close()
    thread.join(5)
    expected = nbytes * 8 / (kbps * 1000)
    assert response.status == 200 and len(response.body) == nbytes
    assert 0.8 * expected <= elapsed <= 2.0 * expected + 0.3, (elapsed, expected)
    # The server could not hand everything to the kernel at once: it was still sending well into the read.
    assert done and done[0] - started >= 0.4 * expected


def test_parallel_connections_share_one_downlink() -> None:
    profile = Profile("t", "test", 1600, 1600, 0.0, "test", ("lte",))
    link = Link(profile)
    ports = [_serve_once(b"y" * 40_000, []) for _ in range(4)]
    results: list[int] = []

    def fetch(port: int) -> None:
        conn = HttpConnection("127.0.0.1", port, link)
        results.append(len(conn.request("GET", "/", {}).body))
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(p,)) for p, _ in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - started
    expected = 4 * 40_000 * 8 / 1_600_000  # 0.8 s for all four together, not 0.2 s
    assert results == [40_000] * 4
    assert 0.8 * expected <= elapsed <= 2.0 * expected + 0.3, (elapsed, expected)


def test_rtt_is_paid_per_request_and_per_handshake() -> None:
    profile = Profile("t", "test", 100_000, 100_000, 200.0, "test", ("lte",))
    port, thread = _serve_once(b"z", [])
    conn = HttpConnection("127.0.0.1", port, Link(profile))
    started = time.monotonic()
    conn.request("GET", "/", {})
    elapsed = time.monotonic() - started
    conn.close()
    assert 0.38 <= elapsed <= 1.0  # handshake RTT + request RTT
