"""The shopper's round-trip time as the server sees it: the kernel's ``TCP_INFO``, or a trusted proxy's header.

Every browser has a TCP connection, so the kernel's view of it is a network signal for Safari and
Firefox too (they send no ``RTT``/``ECT`` hints). Two sources, chosen by ``EDGE_CLIENT_SOCKET``:

- ``direct`` (edge terminates the shopper's TCP connection): edge's server protocol
  (:mod:`edge.runtime.protocol`) reads ``getsockopt(IPPROTO_TCP, TCP_INFO)`` once per request, when
  the request head is complete, and hands the figures to the ASGI app as a scope extension:
  ``scope["extensions"]["edge.tcp_info"]`` (see :data:`SCOPE_EXTENSION`);
- ``behind-proxy`` (a balancer terminates it, so the socket describes the balancer): the round trip
  comes from a header the balancer sets (``EDGE_CLIENT_RTT_HEADER``, nginx's ``$tcpinfo_rtt`` in
  microseconds), believed only when the socket's peer is one of ``EDGE_FORWARDED_ALLOW_IPS``.

The extension is a plain dict, so any ASGI server can provide it::

    {"peer": "203.0.113.9",       # the socket's peer address (before any X-Forwarded-For rewriting)
     "rtt_ms": 41.2, "rttvar_ms": 3.1, "min_rtt_ms": 40.0,    # direct only, each when the kernel has it
     "delivery_kbps": 8120.0, "app_limited": 0.0, "goodput_kbps": 7900.0,
     "queued_ms": 12.0,           # how long the request's last bytes waited unread (when > 0; behind a proxy too)
     "head_at": 5021.337}         # edge's server only: time.perf_counter() when the request head was complete

``queued_ms`` is not a network figure and never a model input (:func:`edge.pipeline.signals.server_rtt_signals`
reads only the six above): it is edge's own queue, the time the request waited in the socket's receive
buffer before edge's event loop read it, and it is added to the server time a page's token carries
(docs/feedback.md, "Time spent in edge's queue"), so a busy sidecar's wait is not taken for the shopper's
round trip. Behind a proxy it is read too (the socket's round trip is then the balancer's and left out, but
the wait in edge's receive buffer is still edge's). ``head_at`` is not a network figure either: the time
from it to the request's start (a task's turn of the event loop, or a pipelined request's wait for the one
before it) is added to the token's server time as well.

``struct tcp_info`` is read by byte offsets (``include/uapi/linux/tcp.h``; every field this module
uses has been at the same offset since it was added, and the kernel copies ``min(asked, its size)``
bytes, so a field past the returned length is simply absent)::

    offset  field                              used as
       7    u8  tcpi_delivery_rate_app_limited:1  app_limited (the last rate sample was app-limited)
      52    u32 tcpi_last_data_recv (ms)          queued_ms: read when the head is complete, how long the
                                                  request's last bytes have sat unread (the kernel counts it
                                                  in jiffies, so to a tick of 1-10 ms)
      68    u32 tcpi_rtt      (µs, smoothed)      rtt_ms
      72    u32 tcpi_rttvar   (µs)                rttvar_ms
     120    u64 tcpi_bytes_acked                  goodput_kbps, with tcpi_busy_time
     148    u32 tcpi_min_rtt  (µs, Linux 4.6)     min_rtt_ms
     160    u64 tcpi_delivery_rate (bytes/s, 4.9) delivery_kbps
     168    u64 tcpi_busy_time (µs, 4.10)         goodput_kbps = bytes_acked·8 / busy_time

``delivery_kbps`` is the kernel's *last* rate sample: one ACK's worth, so it jumps with ACK timing (a
token bucket's burst, delayed ACKs). ``goodput_kbps`` is the connection's average while it had data in
flight (busy time counts in jiffies, so it is only given from :data:`MIN_BUSY_US` of busy time): steadier,
and slower to follow a change.

    >>> raw = bytearray(232); raw[68:72] = (412_000).to_bytes(4, "little"); raw[72:76] = (20_000).to_bytes(4, "little")
    >>> parse_tcp_info(bytes(raw[:104]))       # an old kernel: no min_rtt, no delivery rate
    {'rtt_ms': 412.0, 'rttvar_ms': 20.0}
    >>> raw[52:56] = (640).to_bytes(4, "little"); parse_tcp_info(bytes(raw))   # read 640 ms after the bytes came
    {'rtt_ms': 412.0, 'rttvar_ms': 20.0, 'queued_ms': 640.0}
    >>> parse_tcp_info(b"short") is None
    True
    >>> rtt_header_ms(b"412000"), rtt_header_ms(b"-1"), rtt_header_ms(b"12ms")
    (412.0, None, None)
"""

from __future__ import annotations

import _socket
import ipaddress
import socket
import struct
import sys
from typing import Any

__all__ = [
    "SCOPE_EXTENSION",
    "TCP_INFO_SIZE",
    "MAX_QUEUED_MS",
    "parse_tcp_info",
    "read_tcp_info",
    "rtt_header_ms",
    "TrustedPeers",
    "server_rtt",
]

#: The ASGI scope extension edge's server protocol fills (``scope["extensions"][SCOPE_EXTENSION]``).
SCOPE_EXTENSION = "edge.tcp_info"
#: Bytes asked of the kernel: up to ``tcpi_snd_wnd`` (Linux 5.4+); older kernels return fewer.
TCP_INFO_SIZE = 232
_TCP_INFO = getattr(socket, "TCP_INFO", 11 if sys.platform.startswith("linux") else None)
# The kernel's own byte order, no padding (the struct is copied as the kernel holds it; offsets in the
# module docstring): flags byte at 7, last_data_recv at 52, rtt and rttvar at 68, bytes_acked at 120,
# min_rtt at 148, delivery_rate at 160, busy_time at 168.
_FULL = struct.Struct("=7xB44xI12xII44xQ20xI8xQQ")
_RTT = struct.Struct("=7xB44xI12xII")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
#: Busy time below this (µs) gives no goodput: the kernel counts it in jiffies (1–10 ms each).
MIN_BUSY_US = 100_000
#: A round trip above this (µs) is not a round trip: a garbled header or a kernel value we misread.
_MAX_RTT_US = 60_000_000
#: A queue wait above this (ms) is a misread: edge's own header timeout ends a request long before.
MAX_QUEUED_MS = 60_000


def parse_tcp_info(raw: bytes) -> dict[str, float] | None:
    """The figures edge uses from a ``struct tcp_info``'s bytes (layout in the module docstring), or None.

    Zero is "no sample" for the kernel (a connection that has not measured a round trip), so a zero
    field is absent, as is a field past the end of ``raw``; ``queued_ms`` is absent at zero (no wait)
    and above :data:`MAX_QUEUED_MS`.
    """
    size = len(raw)
    if size >= _FULL.size:  # every kernel since 4.10: one unpack
        flags, recv, rtt, rttvar, acked, min_rtt, rate, busy = _FULL.unpack_from(raw)
    elif size >= _RTT.size:
        flags, recv, rtt, rttvar = _RTT.unpack_from(raw)
        acked = busy = 0
        min_rtt = _U32.unpack_from(raw, 148)[0] if size >= 152 else 0
        rate = _U64.unpack_from(raw, 160)[0] if size >= 168 else 0
    else:
        return None
    out: dict[str, float] = {}
    if 0 < rtt <= _MAX_RTT_US:
        out["rtt_ms"] = rtt / 1000.0
        out["rttvar_ms"] = rttvar / 1000.0
    if 0 < min_rtt <= _MAX_RTT_US:  # ~0U when the kernel has no sample yet
        out["min_rtt_ms"] = min_rtt / 1000.0
    if rate > 0:
        out["delivery_kbps"] = rate * 0.008
        out["app_limited"] = float(flags & 1)
    if busy >= MIN_BUSY_US and acked > 0:
        out["goodput_kbps"] = acked * 8000.0 / busy
    if 0 < recv <= MAX_QUEUED_MS:
        out["queued_ms"] = float(recv)
    return out or None


def read_tcp_info(sock: Any) -> dict[str, float] | None:
    """One ``getsockopt(TCP_INFO)`` on ``sock`` (a socket, or uvloop's pseudo-socket), parsed; None when
    the platform or the socket has none (not Linux, a Unix socket). Raises ``OSError`` as getsockopt does."""
    if _TCP_INFO is None:
        return None
    return parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, TCP_INFO_SIZE))


class _BorrowedSocket(_socket.socket):
    """A socket object on a descriptor someone else owns: when collected it lets go of the descriptor
    (``detach``) instead of closing it, so it can never close a number the kernel has since given to
    another connection."""

    __slots__ = ()

    def __del__(self) -> None:
        self.detach()


class FdSocket:
    """``getsockopt`` on a connected socket's descriptor, for :func:`read_tcp_info` once per request: one
    C-level socket object per connection, on the transport's own descriptor, never closing it. (uvloop's
    pseudo-socket makes a Python ``socket.socket`` per call, ~2.5 us more here; making a socket object on
    a descriptor costs a ``getsockname`` system call, so it is made once, not per request.) Use it only
    while the transport that owns the descriptor is open.

    >>> server = socket.create_server(("127.0.0.1", 0)); client = socket.create_connection(server.getsockname())
    >>> figures = read_tcp_info(FdSocket(client)); figures is None or "rtt_ms" in figures
    True
    >>> client.send(b"still open") # the FdSocket, collected, did not close the descriptor
    10
    >>> client.close(); server.close()
    """

    __slots__ = ("getsockopt",)

    def __init__(self, sock: Any) -> None:
        self.getsockopt = _BorrowedSocket(sock.family, sock.type, sock.proto, sock.fileno()).getsockopt


def rtt_header_ms(raw: bytes | str | None) -> float | None:
    """A proxy's round-trip header (an integer of microseconds: nginx's ``$tcpinfo_rtt``) in ms, or None.

    Anything but 1–9 digits within a minute is malformed and ignored (nginx sends ``0`` when it has no
    figure, which is no figure here either).
    """
    if raw is None:
        return None
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    text = text.strip()
    if not (0 < len(text) <= 9 and text.isascii() and text.isdigit()):
        return None
    us = int(text)
    if not 0 < us <= _MAX_RTT_US:
        return None
    return us / 1000.0


class TrustedPeers:
    """``EDGE_FORWARDED_ALLOW_IPS`` as uvicorn reads it: addresses and networks, comma-separated, ``*`` for any.

    >>> peers = TrustedPeers("10.0.0.0/8, 192.168.1.4")
    >>> "10.1.2.3" in peers, "192.168.1.4" in peers, "8.8.8.8" in peers, None in peers
    (True, True, False, False)
    >>> "1.2.3.4" in TrustedPeers("*"), "127.0.0.1" in TrustedPeers("")
    (True, False)
    """

    def __init__(self, spec: str) -> None:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.anyone = "*" in items
        self.literals: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in items:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.literals.add(item)  # a Unix socket path, as uvicorn allows

    def __contains__(self, peer: object) -> bool:
        if self.anyone:
            return True
        if not isinstance(peer, str) or not peer:
            return False
        if peer in self.literals:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def server_rtt(
    extension: Any, behind_proxy: bool, header_value: bytes | None, trusted: TrustedPeers
) -> tuple[dict[str, float] | None, str | None]:
    """This request's server-side figures and, when they are missing for a reason worth counting, the reason.

    ``extension`` is the scope's :data:`SCOPE_EXTENSION` (None when the server provides none: then
    nothing is known and nothing is counted). Direct: its TCP figures. Behind a proxy: the header's round
    trip if the peer is trusted (``rtt_ms`` only).

    >>> server_rtt({"peer": "10.0.0.2"}, True, b"412000", TrustedPeers("10.0.0.0/8"))
    ({'rtt_ms': 412.0}, None)
    >>> server_rtt({"peer": "6.6.6.6"}, True, b"412000", TrustedPeers("10.0.0.0/8"))
    (None, 'header_untrusted')
    >>> server_rtt({"peer": "10.0.0.2", "rtt_ms": 0.05}, False, b"412000", TrustedPeers(""))
    ({'rtt_ms': 0.05}, None)
    """
    if not isinstance(extension, dict):
        return None, None
    if not behind_proxy:
        figures = {k: v for k, v in extension.items() if k != "peer" and type(v) is float}
        return (figures or None), None
    if header_value is None:
        return None, "header_missing"
    if extension.get("peer") not in trusted:
        return None, "header_untrusted"
    rtt = rtt_header_ms(header_value)
    if rtt is None:
        return None, "header_malformed"
    return {"rtt_ms": rtt}, None
