"""Unit tests of the network profiles and the paced reader (loadtests/profiles.py)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
from profiles import PROFILES, HttpConnection, HttpResponse, Link, Profile, browser_hints, ect  # noqa: E402


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


class RecordingLink(Link):
    """A :class:`Link` that keeps its ledger: every booking and refund, and every RTT wait asked."""

    def __init__(self, profile: Profile, **kwargs: object) -> None:
        super().__init__(profile, **kwargs)  # type: ignore[arg-type]
        self.events: list[tuple[str, str, int, float]] = []  # (thread, kind, bytes, seconds)
        self.rtt_waits: list[float] = []
        self.bookings: dict[str, list[tuple[float, float]]] = {}  # thread -> (booked at, booked until)
        self._record = threading.Lock()

    def book(self, direction: str, nbytes: int) -> float:
        rate = self.downlink_kbps() if direction == "down" else self.uplink_kbps()
        with self._record:
            self.events.append((threading.current_thread().name, f"book-{direction}", nbytes, nbytes * 8 / (rate * 1000.0)))
        at = time.monotonic()
        until = super().book(direction, nbytes)
        if direction == "down":
            with self._record:
                self.bookings.setdefault(threading.current_thread().name, []).append((at, until))
        return until

    def waited_out_every_booking(self) -> bool:
        """Order, not duration: each reader booked its next read only once its last booking had ended."""
        with self._record:
            return all(
                later[0] >= earlier[1] for marks in self.bookings.values() for earlier, later in zip(marks, marks[1:])
            )

    def refund(self, direction: str, nbytes: int) -> None:
        with self._record:
            self.events.append((threading.current_thread().name, f"refund-{direction}", nbytes, 0.0))
        super().refund(direction, nbytes)

    def wait_rtt(self, fraction: float = 1.0) -> None:
        self.rtt_waits.append(self.rtt_s() * fraction)
        super().wait_rtt(fraction)

    def down_bytes(self) -> int:
        """Bytes booked on the downlink, less the refunds: what the readers took off their sockets."""
        with self._record:
            return sum(n if kind == "book-down" else -n for _, kind, n, _ in self.events if kind.endswith("-down"))

    def down_reads(self, thread: str | None = None) -> list[str]:
        with self._record:
            return [name for name, kind, _, _ in self.events if kind == "book-down" and thread in (None, name)]


def _serve_once(body: bytes, server_done: list, link: RecordingLink | None = None) -> tuple[int, threading.Thread]:
    """One response on one connection; ``server_done`` gets, when the server's send returned, the
    bytes the client had read by then (from ``link``'s ledger; -1 without a link)."""
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
            server_done.append(link.down_bytes() if link is not None else -1)
            conn.recv(1)  # until the client closes

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def _fetch(nbytes: int, link: Link) -> tuple[HttpResponse, list[int]]:
    done: list[int] = []
    port, thread = _serve_once(b"x" * nbytes, done, link if isinstance(link, RecordingLink) else None)
    conn = HttpConnection("127.0.0.1", port, link)
    response = conn.request("GET", "/", {})
    conn.close()
    thread.join(5)  # only a hang guard
    return response, done


def _took(response: HttpResponse) -> float:
    return response.response_end - response.request_start


@pytest.mark.parametrize(("nbytes", "kbps"), [(50_000, 800), (100_000, 2000)])
def test_paced_reader_reads_at_the_downlink_rate(nbytes: int, kbps: float) -> None:
    """Every byte read is booked on the downlink at N·8/R, in many reads, and the server is held back.

    No wall-clock window (shared machines): the link's own ledger, the order of reads and the
    server's send, and a ratio against an unpaced read of the same size in the same run.
    """
    profile = Profile("t", "test", kbps, kbps, 0.0, "test", ("lte",))
    link = RecordingLink(profile)
    response, done = _fetch(nbytes, link)
    assert response.status == 200 and len(response.body) == nbytes
    # Every byte taken off the socket was booked on the downlink first, at the profile's rate.
    assert link.down_bytes() == response.wire_bytes
    booked_s = sum(s for _, kind, n, s in link.events if kind == "book-down")
    refunded_s = sum(n * 8 / (kbps * 1000) for _, kind, n, _ in link.events if kind == "refund-down")
    assert booked_s - refunded_s == pytest.approx(response.wire_bytes * 8 / (kbps * 1000))
    # In many reads of about 20 ms of downlink each, not one gulp, each waiting out the last one's booking.
    assert len(link.down_reads()) >= nbytes // link.chunk_bytes()
    assert link.waited_out_every_booking()
    # The server could not hand everything to the kernel at once: its send returned only after
    # the client had read a good part of the body (TCP flow control against the paced reader).
    assert done and done[0] >= 0.25 * nbytes, (done, nbytes)
    # And it is the pacing that takes the time: an unpaced read of the same size is faster.
    # (A ratio with a wide margin: about 250 expected; the fastest of three baselines.)
    unpaced = [_fetch(nbytes, Link(profile, pace=False))[0] for _ in range(3)]
    assert all(r.status == 200 and len(r.body) == nbytes for r in unpaced)
    baseline = min(_took(r) for r in unpaced)
    assert _took(response) > 5 * baseline, (_took(response), baseline)


def test_parallel_connections_share_one_downlink() -> None:
    """Four connections on one link book one ledger: their reads interleave, and all four together
    take longer than one of them alone on a link of its own (measured in the same run)."""
    profile = Profile("t", "test", 1600, 1600, 0.0, "test", ("lte",))
    link = RecordingLink(profile)
    ports = [_serve_once(b"y" * 40_000, [])[0] for _ in range(4)]
    responses: dict[str, HttpResponse] = {}

    def fetch(port: int) -> None:
        conn = HttpConnection("127.0.0.1", port, link)
        responses[threading.current_thread().name] = conn.request("GET", "/", {})
        conn.close()

    threads = [threading.Thread(target=fetch, args=(p,), name=f"conn{i}") for i, p in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)  # only a hang guard
    assert sorted(len(r.body) for r in responses.values()) == [40_000] * 4
    # All four read through the one link's ledger...
    assert link.down_bytes() == sum(r.wire_bytes for r in responses.values())
    # ...taking turns: before any connection had its last read, every other one had read too.
    reads = link.down_reads()
    first_last = min(len(reads) - 1 - reads[::-1].index(name) for name in responses)
    assert set(reads[:first_last]) == set(responses), "the connections did not share the link"
    assert link.waited_out_every_booking()
    # So the four together take longer than one alone (0.8 s against 0.2 s at this rate).
    alone, _ = _fetch(40_000, Link(profile))
    together = max(r.response_end for r in responses.values()) - min(r.request_start for r in responses.values())
    assert together > 2 * _took(alone), (together, _took(alone))


def test_rtt_is_paid_per_request_and_per_handshake() -> None:
    """A new connection waits one RTT for the handshake and one for the request; a reused one only
    the request's. Asked of the link, and against the same exchange without delay in the same run."""
    profile = Profile("t", "test", 100_000, 100_000, 200.0, "test", ("lte",))
    link = RecordingLink(profile)
    port, thread = _serve_once(b"z", [])
    conn = HttpConnection("127.0.0.1", port, link)
    delayed = conn.request("GET", "/", {})
    conn.close()
    thread.join(5)  # only a hang guard
    assert delayed.status == 200
    assert link.rtt_waits == pytest.approx([0.2, 0.1, 0.1])  # SYN/SYN-ACK, then there and back
    # A second request on the kept-alive connection pays the request's RTT only.
    body = b"k"
    port = _serve_keepalive(body, 2)
    conn = HttpConnection("127.0.0.1", port, link)
    link.rtt_waits.clear()
    conn.request("GET", "/", {})
    conn.request("GET", "/", {})
    conn.close()
    assert link.rtt_waits == pytest.approx([0.2, 0.1, 0.1, 0.1, 0.1])
    # The waits are real: the same exchange on a link that leaves RTT to the kernel is faster.
    # (A ratio with a wide margin: about 100 expected; the fastest of three baselines.)
    baselines = []
    for _ in range(3):
        port, thread = _serve_once(b"z", [])
        conn = HttpConnection("127.0.0.1", port, Link(profile, delay=False))
        baselines.append(_took(conn.request("GET", "/", {})))
        conn.close()
        thread.join(5)  # only a hang guard
    assert _took(delayed) > 5 * min(baselines), (_took(delayed), baselines)


def _serve_keepalive(body: bytes, requests: int) -> int:
    """``requests`` responses on one kept-alive connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            data = b""
            for _ in range(requests):
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                data = data.split(b"\r\n\r\n", 1)[1]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            conn.recv(1)  # until the client closes

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1]
