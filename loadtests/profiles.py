"""Network profiles for the load tests, and the emulated link a phone on one of them sees.

Two parts:

- :data:`PROFILES`: published throttling presets (downlink, uplink, RTT, each with
  its source), plus a congested cell whose bandwidth drops and recovers over time,
  and :func:`ect` / :func:`browser_hints`: what a Chromium browser on that network
  would send as client hints (Chromium's effective-connection-type table).
- :class:`Link` and :class:`HttpConnection`: a raw-socket HTTP/1.1 client that
  *feels* the profile. It pays the RTT per request (and per TCP handshake), sends
  no faster than the uplink and reads the body from the socket in small chunks no
  faster than the downlink, with a small ``SO_RCVBUF`` so TCP flow control makes
  the *server* see a slow client (its sends block), not a fast read and a sleep.
  Several connections of one phone share one :class:`Link`, so parallel image
  downloads split the downlink instead of multiplying it.

    >>> [p.name for p in PROFILES.values()]
    ['regular2g', 'good2g', 'slow3g', 'lighthouse3g', '4g', 'congested']
    >>> ect(rtt_ms=300, downlink_kbps=250), ect(rtt_ms=170, downlink_kbps=9000), ect(rtt_ms=1500, downlink_kbps=9000)
    ('3g', '4g', '2g')
    >>> browser_hints(PROFILES["regular2g"], 0.0)
    {'ECT': '3g', 'RTT': '300', 'Downlink': '0.25'}
    >>> c = PROFILES["congested"]
    >>> c.downlink_at(0) > 5000 > 500 > c.downlink_at(c.period_s / 2)
    True

Only loopback or addresses inside network namespaces this project creates are
ever dialled (the callers pass host and port).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

# The profiles are defined once, in the package: edge preview emulates the same networks in Chromium.
from edge.core.networks import FAST_PROFILES, PROFILES, SLOW_PROFILES, Profile
from edge.learning.model import ect_class

__all__ = [
    "PROFILES",
    "SLOW_PROFILES",
    "FAST_PROFILES",
    "Profile",
    "Link",
    "HttpConnection",
    "HttpResponse",
    "ect",
    "browser_hints",
]


def ect(rtt_ms: float, downlink_kbps: float) -> str:
    """Chromium's effective connection type (net/nqe/network_quality_estimator_params.cc), as edge reads it."""
    return ect_class(rtt_ms, downlink_kbps) or "4g"


def browser_hints(profile: Profile, elapsed_s: float) -> dict[str, str]:
    """The network client hints Chromium would send on ``profile`` at ``elapsed_s``.

    RTT is rounded to 25 ms, Downlink to 25 kbit/s and given in Mbit/s (WICG Network
    Information: both are rounded to limit fingerprinting).
    """
    rtt = profile.rtt_at(elapsed_s)
    down = profile.downlink_at(elapsed_s)
    rtt_hint = int(round(rtt / 25.0) * 25)
    down_hint = max(25, round(down / 25.0) * 25) / 1000.0
    return {"ECT": ect(rtt, down), "RTT": str(rtt_hint), "Downlink": f"{down_hint:g}"}


class Link:
    """One phone's radio link: RTT and two token-bucket-like pacers (down, up) shared by its sockets.

    Each pacer keeps the time its link is busy until; a transfer of ``n`` bytes books
    ``n·8/rate`` seconds after that (never earlier than now, so idle time builds no
    burst) and the caller sleeps until its booking ends. ``scale`` shrinks the
    profile's bandwidth (a congested cell). ``pace=False`` leaves bandwidth to the
    kernel (tbf in a network namespace, ``netns.sh``); ``delay=False`` leaves RTT to it.
    """

    def __init__(self, profile: Profile, *, scale: float = 1.0, pace: bool = True, delay: bool = True,
                 clock_start: float | None = None) -> None:
        self.profile = profile
        self.scale = scale
        self.pace = pace
        self.delay = delay
        self.t0 = time.monotonic() if clock_start is None else clock_start
        self._busy = {"down": 0.0, "up": 0.0}
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def downlink_kbps(self) -> float:
        return self.profile.downlink_at(self.elapsed()) * self.scale

    def uplink_kbps(self) -> float:
        return self.profile.uplink_at(self.elapsed()) * self.scale

    def rtt_s(self) -> float:
        return self.profile.rtt_at(self.elapsed()) / 1000.0

    def wait_rtt(self, fraction: float = 1.0) -> None:
        if self.delay:
            time.sleep(self.rtt_s() * fraction)

    def book(self, direction: str, nbytes: int) -> float:
        """Reserve the link for ``nbytes``; returns the monotonic time the transfer may finish."""
        rate = self.downlink_kbps() if direction == "down" else self.uplink_kbps()
        with self._lock:
            start = max(time.monotonic(), self._busy[direction])
            self._busy[direction] = start + nbytes * 8 / (rate * 1000.0)
            return self._busy[direction]

    def refund(self, direction: str, nbytes: int) -> None:
        """Give back a booking that moved fewer bytes than reserved."""
        rate = self.downlink_kbps() if direction == "down" else self.uplink_kbps()
        with self._lock:
            self._busy[direction] -= nbytes * 8 / (rate * 1000.0)

    def chunk_bytes(self) -> int:
        """Read size: about 20 ms of downlink, at least 512 bytes (fine-grained pacing)."""
        return max(512, int(self.downlink_kbps() * 1000 / 8 * 0.02))

    def until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)


@dataclass
class HttpResponse:
    """One response and the client's own timings (monotonic seconds)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    request_start: float
    response_start: float
    response_end: float
    wire_bytes: int  # header + body bytes received
    reused: bool = False
    extra: dict = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class ProtocolError(Exception):
    """The server's response could not be parsed, or the connection closed mid-response."""


class HttpConnection:
    """A keep-alive HTTP/1.1 connection over a :class:`Link` (one host, GET/POST, no TLS).

    ``rcvbuf`` caps the socket's receive buffer (the kernel doubles it) so the TCP window
    stays small and a slowly read body backs up into the server's send buffer.
    ``source`` binds the local address (one per profile under ``netns.sh``'s shaping).
    """

    def __init__(self, host: str, port: int, link: Link, *, source: str | None = None,
                 timeout: float = 60.0, rcvbuf: int = 16384) -> None:
        self.host, self.port, self.link = host, port, link
        self.source, self.timeout, self.rcvbuf = source, timeout, rcvbuf
        self.sock: socket.socket | None = None
        self._buf = b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self._buf = b""

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)  # before connect: sets the window
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        if self.source:
            sock.bind((self.source, 0))
        self.link.wait_rtt()  # SYN, SYN-ACK
        sock.connect((self.host, self.port))
        self.sock = sock
        self._buf = b""

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> HttpResponse:
        """Send one request and read the whole response, paced; retry once on a stale keep-alive socket."""
        reused = self.sock is not None
        if not reused:
            self._connect()
        try:
            return self._exchange(method, target, headers, body, reused)
        except (ProtocolError, ConnectionError) as exc:
            self.close()
            # A keep-alive socket the server closed while idle: nothing was answered, so retry once.
            stale = reused and (isinstance(exc, ConnectionError) or "before the status line" in str(exc))
            if not stale:
                raise
        except BaseException:
            self.close()
            raise
        self._connect()
        return self._exchange(method, target, headers, body, False)

    def _exchange(self, method: str, target: str, headers: dict[str, str], body: bytes, reused: bool) -> HttpResponse:
        assert self.sock is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        request_start = time.monotonic()
        if self.link.pace:
            self.link.until(self.link.book("up", len(head) + len(body)))
        self.link.wait_rtt(0.5)  # the request's trip to the server
        self.sock.sendall(head + body)
        status, resp_headers, wire = self._read_head()
        self.link.wait_rtt(0.5)  # the first byte's trip back
        response_start = time.monotonic()
        length = _get(resp_headers, "content-length")
        chunked = (_get(resp_headers, "transfer-encoding") or "").lower() == "chunked"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            payload = b""
        elif chunked:
            payload, extra = self._read_chunked()
            wire += extra
        elif length is not None:
            payload = self._read_exact(int(length))
        else:
            payload = self._read_to_close()
        wire += len(payload)
        connection = (_get(resp_headers, "connection") or "").lower()
        if "close" in connection:
            self.close()
        return HttpResponse(status, resp_headers, payload, request_start, response_start, time.monotonic(), wire, reused)

    # Reading, paced: every recv is booked on the link's downlink first.

    def _recv(self, want: int) -> bytes:
        assert self.sock is not None
        if not self.link.pace:
            return self.sock.recv(max(want, 65536))
        want = min(want, self.link.chunk_bytes())
        self.link.until(self.link.book("down", want))
        data = self.sock.recv(want)
        if len(data) < want:
            self.link.refund("down", want - len(data))
        return data

    def _read_head(self) -> tuple[int, list[tuple[str, str]], int]:
        while b"\r\n\r\n" not in self._buf:
            data = self._recv(4096)
            if not data:
                where = "before the status line" if not self._buf else "in the headers"
                raise ProtocolError(f"connection closed {where}")
            self._buf += data
            if len(self._buf) > 65536:
                raise ProtocolError("response head over 64 KiB")
        head, _, self._buf = self._buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise ProtocolError(f"bad status line {lines[0]!r}") from None
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return status, headers, len(head) + 4

    def _read_exact(self, n: int) -> bytes:
        out = [self._buf[:n]]
        got = len(out[0])
        self._buf = self._buf[n:]
        while got < n:
            data = self._recv(n - got)
            if not data:
                raise ProtocolError(f"connection closed after {got} of {n} body bytes")
            out.append(data)
            got += len(data)
        return b"".join(out)

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            data = self._recv(1024)
            if not data:
                raise ProtocolError("connection closed in a chunk header")
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _read_chunked(self) -> tuple[bytes, int]:
        out, overhead = [], 0
        while True:
            line = self._read_line()
            overhead += len(line) + 2
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while self._read_line():  # trailers up to the blank line
                    overhead += 2
                overhead += 2
                return b"".join(out), overhead
            out.append(self._read_exact(size))
            self._read_exact(2)
            overhead += 2

    def _read_to_close(self) -> bytes:
        out = [self._buf]
        self._buf = b""
        while data := self._recv(65536):
            out.append(data)
        self.close()
        return b"".join(out)


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None
