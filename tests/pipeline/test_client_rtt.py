"""The server-side round trip: struct tcp_info parsing (captured bytes), the proxy header, the trusted-peer rule."""

from __future__ import annotations

import contextlib
import gc
import select
import socket
import struct
import sys
import time
from collections.abc import Iterator

import pytest

from edge.learning.model import RuleModel
from edge.learning.model.river import EdgeFeatures
from edge.learning.model.rules import tcp_rtt_class
from edge.pipeline.client_rtt import MAX_QUEUED_MS, FdSocket, TrustedPeers, parse_tcp_info, read_tcp_info, rtt_header_ms, server_rtt
from edge.pipeline.features import to_features
from edge.pipeline.signals import Signals, server_rtt_signals


def _tcp_info(
    size: int = 232, *, rtt: int = 0, rttvar: int = 0, min_rtt: int = 0, rate: int = 0, flags: int = 0, acked: int = 0, busy: int = 0,
    last_data_recv: int = 0,
) -> bytes:  # fmt: skip
    """A ``struct tcp_info`` as the kernel returns it (``size`` bytes), with the fields edge reads set."""
    raw = bytearray(max(size, 232))
    raw[7] = flags
    struct.pack_into("=I", raw, 52, last_data_recv)
    struct.pack_into("=II", raw, 68, rtt, rttvar)
    struct.pack_into("=Q", raw, 120, acked)
    struct.pack_into("=I", raw, 148, min_rtt)
    struct.pack_into("=QQ", raw, 160, rate, busy)
    return bytes(raw[:size])


def test_goodput_is_bytes_acked_over_busy_time_once_busy_long_enough() -> None:
    # 500 kB acknowledged over 4 s busy: 1000 kbit/s; tcpi_busy_time is at offset 168 (Linux 4.10).
    figures = parse_tcp_info(_tcp_info(rtt=40_000, acked=500_000, busy=4_000_000))
    assert figures is not None and figures["goodput_kbps"] == pytest.approx(1000.0)
    assert "goodput_kbps" not in (parse_tcp_info(_tcp_info(rtt=40_000, acked=5_000, busy=8_000)) or {})  # a few jiffies: too coarse
    assert "goodput_kbps" not in (parse_tcp_info(_tcp_info(175, rtt=40_000, acked=500_000, busy=4_000_000)) or {})  # pre-4.10


# Captured from a loopback connection after a 5 MB send (Linux 6.18, 232 bytes); `ss -tin` on the same socket
# said: rtt:0.14/0.171 minrtt:0.014 delivery_rate 14580707752bps.
_CAPTURED = bytes.fromhex(
    "010000000007aa00e01c030000000000cbff0000180200000000000000000000000000000000000000000000c800000000000000"
    "d4000000c8000000ffff0000cbff00008c000000ab0000000c0000001c000000cbff00000300000000000000cbff000001000000"
    "5319030e03000000ffffffffffffffff404b4c000000000000000000000000006100000026000000000000000e00000000000000"
    "61000000357ea26c00000000401f000000000000401f0000000000000000000000000000620000000000000040854c0000000000"
    "003a00000000000001000000000000000000000000440f00"
)


def test_captured_bytes_match_ss() -> None:
    assert len(_CAPTURED) == 232
    # (That socket had sent for a while and received nothing for 212 ms: tcpi_last_data_recv, "lastrcv:212" in ss.)
    assert parse_tcp_info(_CAPTURED) == {
        "rtt_ms": 0.14,
        "rttvar_ms": 0.171,
        "min_rtt_ms": 0.014,
        "delivery_kbps": pytest.approx(14_580_707.752),
        "app_limited": 0.0,
        "queued_ms": 212.0,
    }
    # Every kernel returns a prefix of the same layout: the first 104 bytes (Linux 3.x) still give the RTT.
    assert parse_tcp_info(_CAPTURED[:104]) == {"rtt_ms": 0.14, "rttvar_ms": 0.171, "queued_ms": 212.0}


@pytest.mark.parametrize(
    ("size", "last_data_recv", "queued_ms"),
    [
        (232, 640, 640.0),  # read 640 ms after the request's last bytes came: edge's queue
        (232, 1, 1.0),
        (232, 0, None),  # read at once (within the kernel's tick): no wait, no key
        (232, MAX_QUEUED_MS, float(MAX_QUEUED_MS)),
        (232, MAX_QUEUED_MS + 1, None),  # past the cap: a misread, not a wait
        (232, 0xFFFFFFFF, None),
        (104, 640, 640.0),  # Linux 3.x's shorter struct has it too (it is at offset 52)
        (76, 640, 640.0),
        (56, 640, None),  # too short for the round trip: nothing at all, as before
    ],
)
def test_the_wait_is_tcpi_last_data_recv(size: int, last_data_recv: int, queued_ms: float | None) -> None:
    figures = parse_tcp_info(_tcp_info(size, rtt=40_000, rttvar=2_000, last_data_recv=last_data_recv))
    if size < 76:
        assert figures is None
        return
    assert figures is not None and figures.get("queued_ms") == queued_ms
    assert figures["rtt_ms"] == 40.0 and figures["rttvar_ms"] == 2.0  # the fields around it are read as before
    # A connection with no round-trip sample yet still tells its wait.
    alone = parse_tcp_info(_tcp_info(size, last_data_recv=last_data_recv))
    assert alone == (None if queued_ms is None else {"queued_ms": queued_ms})


def test_the_wait_is_never_a_model_input() -> None:
    figures = parse_tcp_info(_tcp_info(rtt=412_000, rttvar=20_000, last_data_recv=900))
    assert figures is not None and figures["queued_ms"] == 900.0
    extension = {"peer": "203.0.113.9", **figures}
    with_wait, without = Signals(os="ios"), Signals(os="ios")
    server_rtt_signals(with_wait, server_rtt(extension, False, None, TrustedPeers(""))[0])
    server_rtt_signals(without, {k: v for k, v in figures.items() if k != "queued_ms"})
    assert with_wait == without
    x = to_features(with_wait)
    assert x == to_features(without) and not any("queue" in key for key in x)
    assert EdgeFeatures().transform_one(x) == EdgeFeatures().transform_one(to_features(without))


def test_app_limited_flag_is_bit_0_of_byte_7() -> None:
    figures = parse_tcp_info(_tcp_info(rtt=400_000, rate=125_000, flags=0b0000_0111))
    assert figures is not None and figures["app_limited"] == 1.0
    assert figures["delivery_kbps"] == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("size", "keys"),
    [
        (0, None),
        (75, None),  # too short for tcpi_rtt/tcpi_rttvar
        (76, {"rtt_ms", "rttvar_ms"}),
        (104, {"rtt_ms", "rttvar_ms"}),  # Linux 3.x: no min_rtt, no delivery rate
        (152, {"rtt_ms", "rttvar_ms", "min_rtt_ms"}),
        (167, {"rtt_ms", "rttvar_ms", "min_rtt_ms"}),  # delivery rate cut in half: absent
        (168, {"rtt_ms", "rttvar_ms", "min_rtt_ms", "delivery_kbps", "app_limited"}),
        (175, {"rtt_ms", "rttvar_ms", "min_rtt_ms", "delivery_kbps", "app_limited"}),  # busy time cut: no goodput
        (176, {"rtt_ms", "rttvar_ms", "min_rtt_ms", "delivery_kbps", "app_limited", "goodput_kbps"}),
        (232, {"rtt_ms", "rttvar_ms", "min_rtt_ms", "delivery_kbps", "app_limited", "goodput_kbps"}),
    ],
)
def test_fields_past_the_returned_length_are_absent(size: int, keys: set[str] | None) -> None:
    figures = parse_tcp_info(
        _tcp_info(size, rtt=412_000, rttvar=20_000, min_rtt=400_000, rate=1_000_000, acked=1_000_000, busy=2_000_000)
    )
    assert (None if figures is None else set(figures)) == keys


def test_no_sample_yet_is_absent_not_zero() -> None:
    # A fresh connection: tcpi_rtt 0, tcpi_min_rtt ~0U (the kernel's "no sample"), no delivery rate.
    assert parse_tcp_info(_tcp_info(rtt=0, min_rtt=0xFFFFFFFF, rate=0)) is None
    assert parse_tcp_info(_tcp_info(rtt=412_000, min_rtt=0xFFFFFFFF)) == {"rtt_ms": 412.0, "rttvar_ms": 0.0}


@contextlib.contextmanager
def _loopback() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (the client's socket, the server's accepted one)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as client:
            conn, _ = server.accept()
            with conn:
                yield client, conn


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is Linux's")
def test_a_real_loopback_socket_is_small_and_present() -> None:
    with _loopback() as (client, conn):
        conn.sendall(b"x" * 200_000)
        got = 0
        while got < 200_000:
            got += len(client.recv(65536))
        figures = read_tcp_info(conn)
    assert figures is not None
    assert 0.0 < figures["rtt_ms"] < 50.0 and 0.0 < figures["min_rtt_ms"] < 50.0
    assert figures["delivery_kbps"] > 10_000.0  # loopback: far above any phone's link


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is Linux's")
def test_a_real_socket_tells_how_long_its_bytes_sat_unread() -> None:
    with _loopback() as (client, conn):
        client.sendall(b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
        time.sleep(0.3)  # the bytes wait in conn's receive buffer, as behind a busy event loop
        waited = read_tcp_info(conn)
        conn.recv(65536)
        client.sendall(b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
        while not select.select([conn], [], [], 5.0)[0]:
            pass
        prompt = read_tcp_info(conn)
    assert waited is not None and 280.0 <= waited["queued_ms"] < 5_000.0
    assert prompt is not None and prompt.get("queued_ms", 0.0) < 100.0  # read as they came: (at most a few ticks)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is Linux's")
def test_an_fd_socket_reads_every_request_and_never_closes_the_descriptor() -> None:
    # One FdSocket per connection (edge.runtime.protocol), read once per request: the descriptor is the
    # transport's, so neither reading nor collecting the FdSocket may close it.
    with _loopback() as (client, conn):
        borrowed = FdSocket(conn)
        readings = [read_tcp_info(borrowed) for _ in range(3)]
        del borrowed
        gc.collect()
        conn.sendall(b"still open")
        assert client.recv(64) == b"still open"
        assert read_tcp_info(FdSocket(conn)) is not None
    assert all(r is not None and "rtt_ms" in r for r in readings)


def test_a_unix_socket_fails_like_getsockopt() -> None:
    left, right = socket.socketpair()
    with left, right, pytest.raises(OSError):
        read_tcp_info(left)


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        (b"412000", 412.0),
        (b" 35000 ", 35.0),
        ("1500", 1.5),
        (b"0", None),  # nginx's "no figure"
        (b"", None),
        (b"-5", None),
        (b"12ms", None),
        (b"1e6", None),
        (b"\xd9\xa1\xd9\xa2", None),  # Arabic-Indic digits: not ASCII
        (b"99999999999", None),  # too long
        (b"60000001", None),  # over a minute
        (None, None),
    ],
)
def test_rtt_header(raw: bytes | str | None, ms: float | None) -> None:
    assert rtt_header_ms(raw) == ms


def test_trusted_peers_follow_forwarded_allow_ips() -> None:
    peers = TrustedPeers("10.0.0.0/8, 192.168.1.4, ::1, /run/lb.sock")
    assert "10.200.0.1" in peers and "192.168.1.4" in peers and "::1" in peers and "/run/lb.sock" in peers
    assert "192.168.1.5" not in peers and "11.0.0.1" not in peers and "" not in peers and "junk" not in peers
    assert "8.8.8.8" in TrustedPeers("*")
    assert "127.0.0.1" not in TrustedPeers("")


def test_an_untrusted_senders_header_is_ignored() -> None:
    trusted = TrustedPeers("10.0.0.5")
    assert server_rtt({"peer": "10.0.0.5"}, True, b"412000", trusted) == ({"rtt_ms": 412.0}, None)
    assert server_rtt({"peer": "203.0.113.9"}, True, b"412000", trusted) == (None, "header_untrusted")
    assert server_rtt({"peer": None}, True, b"412000", trusted) == (None, "header_untrusted")
    assert server_rtt({"peer": "10.0.0.5"}, True, b"fast", trusted) == (None, "header_malformed")
    assert server_rtt({"peer": "10.0.0.5"}, True, None, trusted) == (None, "header_missing")
    # Behind a proxy the socket's own figures describe the balancer: never used.
    assert server_rtt({"peer": "10.0.0.5", "rtt_ms": 0.05}, True, None, trusted) == (None, "header_missing")


def test_direct_mode_takes_the_sockets_figures_and_ignores_the_header() -> None:
    extension = {"peer": "203.0.113.9", "rtt_ms": 0.05, "min_rtt_ms": 0.02, "bogus": "x"}
    assert server_rtt(extension, False, b"412000", TrustedPeers("*")) == ({"rtt_ms": 0.05, "min_rtt_ms": 0.02}, None)
    assert server_rtt({"peer": "203.0.113.9"}, False, None, TrustedPeers("")) == (None, None)
    assert server_rtt(None, False, None, TrustedPeers("")) == (None, None)  # a server without the hook


def test_features_and_model_inputs() -> None:
    s = Signals(os="ios")
    server_rtt_signals(
        s, {"rtt_ms": 412.0, "rttvar_ms": 30.0, "min_rtt_ms": 400.0, "delivery_kbps": 900.0, "app_limited": 1.0, "goodput_kbps": 800.0}
    )
    x = to_features(s)
    assert {k: x[k] for k in x if k.startswith("tcp_")} == {
        "tcp_rtt_ms": 412.0, "tcp_rttvar_ms": 30.0, "tcp_min_rtt_ms": 400.0, "tcp_delivery_kbps": 900.0, "tcp_app_limited": 1.0,
        "tcp_goodput_kbps": 800.0,
    }  # fmt: skip
    inputs = EdgeFeatures().transform_one(x)
    tcp_inputs = {k: v for k, v in inputs.items() if k.startswith("tcp_")}
    # Bands only (412 ms: at or above 400, below 1170; 800 kbit/s: at or above 700, below 1500).
    assert tcp_inputs == {"tcp_rtt_ms_band=4": 1.0, "tcp_goodput_kbps_band=3": 1.0}
    assert "no_tcp" not in inputs
    near = EdgeFeatures().transform_one(to_features(_with_rtt(0.07))), EdgeFeatures().transform_one(to_features(_with_rtt(0.33)))
    assert near[0] == near[1]  # loopback jitter is not a difference the model sees
    assert EdgeFeatures().transform_one(to_features(Signals(os="ios")))["no_tcp"] == 1.0


def _with_rtt(rtt_ms: float) -> Signals:
    s = Signals(os="ios")
    server_rtt_signals(s, {"rtt_ms": rtt_ms, "rttvar_ms": rtt_ms / 2, "min_rtt_ms": rtt_ms / 3, "delivery_kbps": 3.6e6})
    return s


def test_bad_figures_never_become_signals() -> None:
    s = Signals()
    server_rtt_signals(s, {"rtt_ms": float("nan"), "min_rtt_ms": -1.0, "rttvar_ms": 5, "delivery_kbps": float("inf")})  # type: ignore[dict-item]
    assert (s.tcp_rtt_ms, s.tcp_min_rtt_ms, s.tcp_rttvar_ms, s.tcp_delivery_kbps) == (None, None, None, None)


def test_rules_use_the_tcp_rtt_as_evidence_of_slowness_only() -> None:
    rules = RuleModel()
    assert tcp_rtt_class(209.0) is None and tcp_rtt_class(210.0) == "3g"
    assert rules.predict({"tcp_rtt_ms": 0.05}) is None  # a fast round trip alone says nothing
    assert rules.predict({"tcp_rtt_ms": 412.0, "os": "ios"}) == 0.7  # 3g: lite under a 0.5 threshold
    assert rules.predict({"tcp_rtt_ms": 1300.0}) == 0.88  # 2g
    assert rules.predict({"tcp_rtt_ms": 1800.0}) == 0.97  # slow-2g
    # With other evidence, it is one more piece: a 4g hint and a 2g-like round trip average out.
    assert rules.predict({"ect": "4g", "tcp_rtt_ms": 1300.0}) == pytest.approx((0.1 * 2 + 0.88 * 2) / 4)
    # Without the key, the rules' figures are what they were (replayed traces never have it).
    assert rules.predict({"ect": "3g", "radio": "lte"}) == rules.predict({"ect": "3g", "radio": "lte", "tcp_rtt_ms": 5.0})
