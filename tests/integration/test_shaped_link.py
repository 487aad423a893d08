"""The server-side round trip on a real shaped link: a network namespace, a veth pair, the kernel's ``tbf``.

The shopper runs inside the namespace (``ip netns exec NS python shaped_client.py``); the demo storefront
and a real ``edge serve`` run on the host, edge listening on the veth's host address. The test creates the
namespace, the veth pair and the qdiscs, and removes them (deleting the veth deletes both ends and their
qdiscs). Where the machine cannot (not root, no iproute2, no namespaces, no tbf) every test here is skipped
and says why.

- **delivery rate**: with the host's egress (the shopper's downlink) at 1 and at 8 Mbit/s, a download of
  four seconds' worth of bytes, then a page on the same connection: the goodput edge read for that page
  (bytes acknowledged over busy time) is within a factor of 2 of the configured rate, and the kernel's
  last delivery-rate sample is there too (printed, not asserted: one ACK's sample, 0.7x-18x here);
- **a first page on a slow link**: a hint-less Safari's first request while the same phone's upload fills
  its 256 kbit/s uplink queue (this kernel has no ``netem``, so the round trip comes from queueing, as on a
  busy cell): the handshake's round trip alone is past the 3g line and the page is lite;
- **loopback**: the figures are present and far below any slow threshold, and the page is full.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge.learning.model.rules import TCP_RTT_ECT_MS
from tests.integration.conftest import HOST, START_DEADLINE_S, Proc, Stack, _spawn, _StartFailed, _wait_until, free_port

CLIENT = Path(__file__).with_name("shaped_client.py")
SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
SLOW_TCP_RTT_MS = dict((ect, ms) for ect, ms in TCP_RTT_ECT_MS)["3g"]


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def _cannot_shape() -> str | None:
    """Why this machine cannot run the namespace tests, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "needs root (ip netns, tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"no '{tool}' command (iproute2: scripts/system-deps.sh installs it)"
    probe = f"edgeprobe{os.getpid()}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    try:
        _run("ip", "-n", probe, "link", "set", "lo", "up")
        tbf = _run("ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "16kb", "latency", "100ms", check=False)
        if tbf.returncode != 0:
            return f"the kernel has no tbf qdisc: {tbf.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class Link:
    ns: str
    host_dev: str
    ns_dev: str
    host_addr: str
    edge_port: int
    procs: list[Proc]

    def shape(self, *, downlink_kbit: int | None = None, uplink_kbit: int | None = None, latency_ms: int = 200) -> None:
        """``tbf`` on the host's egress (the shopper's downlink) and/or the namespace's (its uplink); None: unshaped."""
        for dev, prefix, kbit in ((self.host_dev, [], downlink_kbit), (self.ns_dev, ["ip", "netns", "exec", self.ns], uplink_kbit)):
            _run(*prefix, "tc", "qdisc", "del", "dev", dev, "root", check=False)
            if kbit is not None:
                burst = max(4, kbit // 250)  # kB: a few ms of the rate, at least a few packets
                _run(*prefix, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{kbit}kbit",
                     "burst", f"{burst}kb", "latency", f"{latency_ms}ms")  # fmt: skip

    def client(self, *args: str) -> dict:
        """Run the shopper's side in the namespace; its JSON answer."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, str(CLIENT), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            logs = "\n".join(f"----- {p.name} -----\n{p.logs()}" for p in self.procs)
            pytest.fail(f"client failed ({done.returncode}): {done.stderr}\n{logs}", pytrace=False)
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def link(integration_logs: Path) -> Iterator[Link]:
    reason = _cannot_shape()
    if reason is not None:
        pytest.skip(f"cannot shape a real link here: {reason}")
    pid = os.getpid()
    ns, host_dev, ns_dev = f"edgert{pid}", f"erth{pid}", f"ertn{pid}"
    subnet = f"10.201.{pid % 250}"
    host_addr, ns_addr = f"{subnet}.1", f"{subnet}.2"
    procs: list[Proc] = []
    try:
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", host_dev, "type", "veth", "peer", "name", ns_dev)
        _run("ip", "link", "set", ns_dev, "netns", ns)
        _run("ip", "addr", "add", f"{host_addr}/24", "dev", host_dev)
        _run("ip", "link", "set", host_dev, "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "addr", "add", f"{ns_addr}/24", "dev", ns_dev)
        _run("ip", "-n", ns, "link", "set", ns_dev, "up")
        sf_port, edge_port, admin_port = free_port(), free_port(), free_port()
        storefront = _spawn("shaped-storefront", ["storefront", "--host", HOST, "--port", str(sf_port), "--log-level", "warning"], integration_logs)
        procs.append(storefront)
        edge = _spawn(
            "shaped-edge",
            ["serve", "--upstream", f"http://{HOST}:{sf_port}", "--host", host_addr, "--port", str(edge_port),
             "--admin-host", HOST, "--admin-port", str(admin_port), "--log-level", "warning",
             "--read-timeout", "30"],
            integration_logs,
        )  # fmt: skip
        procs.append(edge)
        try:
            _wait_until(f"http://{HOST}:{sf_port}/", [storefront], time.monotonic() + START_DEADLINE_S)
            _wait_until(f"http://{HOST}:{admin_port}/readyz", [edge], time.monotonic() + START_DEADLINE_S)
        except _StartFailed as exc:
            pytest.fail(str(exc), pytrace=False)
        _wait_for(host_addr, edge_port)
        yield Link(ns, host_dev, ns_dev, host_addr, edge_port, procs)
    finally:
        for proc in procs:
            proc.stop()
        _run("ip", "link", "del", host_dev, check=False)  # both ends and their qdiscs
        _run("ip", "netns", "del", ns, check=False)


def _wait_for(host: str, port: int) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"edge never listened on {host}:{port}", pytrace=False)


@pytest.mark.parametrize("rate_kbit", [1000, 8000])
def test_delivery_rate_is_the_shaped_rate(link: Link, rate_kbit: int) -> None:
    link.shape(downlink_kbit=rate_kbit)
    size = rate_kbit * 1000 // 8 * 4  # four seconds' worth: the kernel's estimate settles in a few round trips
    result = link.client("download", link.host_addr, str(link.edge_port), str(size))
    x = result["features"]
    print(f"\ntbf {rate_kbit} kbit/s: download {result['download_bytes']} B at {result['download_kbps']:.0f} kbit/s (client clock); "
          f"edge read {json.dumps({k: v for k, v in x.items() if k.startswith('tcp_')})}")  # fmt: skip
    assert result["download_status"] == 206 and result["download_bytes"] == size
    assert result["status"] == 200 and result["tier"] is not None
    assert "tcp_delivery_kbps" in x and "tcp_goodput_kbps" in x, x
    assert rate_kbit / 2 <= x["tcp_goodput_kbps"] <= rate_kbit * 2, x
    assert x["tcp_rtt_ms"] > 0 and x["tcp_min_rtt_ms"] > 0


def test_a_hintless_first_page_on_a_slow_busy_link_is_lite(link: Link) -> None:
    available = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")
    if "cubic" not in (available.read_text() if available.exists() else ""):
        pytest.skip("needs the cubic congestion control (a loss-based upload that fills the uplink queue)")
    sink = socket.create_server((link.host_addr, 0))
    sink_port = sink.getsockname()[1]
    stop = threading.Event()

    def drain() -> None:
        sink.settimeout(1.0)
        while not stop.is_set():
            try:
                conn, _ = sink.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                while not stop.is_set():
                    try:
                        if not conn.recv(65536):
                            break
                    except OSError:
                        if stop.is_set():
                            break

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        link.shape(downlink_kbit=1000, uplink_kbit=256, latency_ms=1000)
        result = link.client("busy-uplink", link.host_addr, str(link.edge_port), str(sink_port), "4")
    finally:
        stop.set()
        thread.join(timeout=5)
        sink.close()
        link.shape()
    x = result["features"]
    print(f"\nfirst page, 256 kbit/s uplink busy: tier {result['tier']}; edge read {json.dumps({k: v for k, v in x.items() if k.startswith('tcp_')})}")
    assert not ({"ect", "rtt_ms", "downlink_kbps", "last_kbps", "last_ms"} & set(x)), x  # nothing but the server's own view
    assert x.get("os") == "ios"
    assert x["tcp_rtt_ms"] >= SLOW_TCP_RTT_MS, x
    assert result["tier"] == "lite", result


def test_loopback_figures_are_present_and_small(stack: Stack) -> None:
    with httpx.Client(base_url=stack.edge_url, headers={"User-Agent": SAFARI}) as client:
        client.get("/download/1.bin").raise_for_status()  # something sent and acknowledged on this connection
        response = client.get("/")
    body = response.headers["edge-token"].partition(".")[0]
    x = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["x"]
    print(f"\nloopback: edge read {json.dumps({k: v for k, v in x.items() if k.startswith('tcp_')})}")
    assert 0 < x["tcp_rtt_ms"] < SLOW_TCP_RTT_MS / 4 and 0 < x["tcp_min_rtt_ms"] < SLOW_TCP_RTT_MS / 4
    assert x["tcp_delivery_kbps"] > 8000 * 2  # above any rate a phone is shaped to here
    assert response.headers["edge-tier"] == "full"
