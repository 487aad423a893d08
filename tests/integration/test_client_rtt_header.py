"""``--client-socket behind-proxy`` on real processes: the RTT header is believed from a trusted balancer only.

Two ``edge serve`` processes in front of the demo storefront, both behind a "balancer" that is this test
on 127.0.0.1: one trusts 127.0.0.1 (``--forwarded-allow-ips``), one trusts only an address the test is
not. A hint-less Safari's first page with a 412 ms round trip in the header is lite from the first and
full from the second, whose token carries no server-side round trip (the socket's own figures, the
balancer's, are never used behind a proxy) and whose metrics count the untrusted header.
"""

from __future__ import annotations

import base64
import json

import httpx

from tests.integration.conftest import EdgeFactory, Stack

SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"


def _page(url: str, rtt_us: str) -> tuple[str, dict]:
    response = httpx.get(url + "/", headers={"User-Agent": SAFARI, "X-Shopper-RTT": rtt_us}, timeout=10)
    response.raise_for_status()
    body = response.headers["edge-token"].partition(".")[0]
    return response.headers["edge-tier"], json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["x"]


def _counted(admin_url: str, reason: str) -> float:
    for line in httpx.get(admin_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(f'edge_client_rtt_missing_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_rtt_header_counts_only_from_a_trusted_balancer(stack: Stack, start_edge: EdgeFactory) -> None:
    flags = ("--client-socket", "behind-proxy", "--client-rtt-header", "X-Shopper-RTT", "--fail-mode", "open")
    trusting = start_edge(stack.storefront_url, *flags, "--forwarded-allow-ips", "127.0.0.1", name="edge-behind-lb")
    wary = start_edge(stack.storefront_url, *flags, "--forwarded-allow-ips", "10.9.9.9", name="edge-behind-other-lb")

    tier, x = _page(trusting.url, "412000")
    assert x["tcp_rtt_ms"] == 412.0 and "tcp_min_rtt_ms" not in x and "rtt_ms" not in x
    assert tier == "lite"
    tier, x = _page(trusting.url, "35000")  # a fast shopper through the same balancer
    assert x["tcp_rtt_ms"] == 35.0 and tier == "full"

    before = _counted(wary.admin_url, "header_untrusted")
    tier, x = _page(wary.url, "412000")
    assert not any(key.startswith("tcp_") for key in x), x  # neither the header nor the balancer's socket
    assert tier == "full"
    assert _counted(wary.admin_url, "header_untrusted") == before + 1
