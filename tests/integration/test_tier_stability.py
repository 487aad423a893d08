"""A stable tier per client, and the opt-out as feedback, through a real ``edge serve`` in front of the demo storefront.

An app reports its last request's duration (``Edge-Last-Request: ms=…, bytes=…``): throughput
around 700 kbit/s, the label threshold, so the rules' p(degraded) = 700/(700+kbps) hovers around
the demo policy's lite threshold (0.5). A client that sends back edge's ``edge_t`` cookie keeps
its tier; the same requests without it flip between full and lite.
"""

from __future__ import annotations

import random
import re

import httpx
import pytest

from edge.core.settings import DEFAULT_POLICY
from edge.pipeline.policy import holdback_draw, load_policy

pytestmark = pytest.mark.integration

COOKIE = "edge_t"
BYTES = 70_000  # at 800 ms: 700 kbit/s, p = 0.5


def _outside_holdback(name: str) -> str:
    holdback = load_policy(DEFAULT_POLICY).holdback
    for i in range(100):
        ua = f"Mozilla/5.0 (Linux; Android 14) {name}/{i}"
        if holdback_draw(f"127.0.0.1 {ua}") >= holdback:
            return ua
    raise AssertionError("no User-Agent outside the holdback")


UA = _outside_holdback("stable-tier")


@pytest.fixture(scope="module")
def stable_edge(stack, start_edge):  # noqa: ANN001, ANN201
    """An edge with the rules deciding (no learned model can change p under the test) and the rule's defaults spelled out."""
    return start_edge(
        stack.storefront_url, "--model", "rules", "--tier-margin", "0.5", "--tier-dwell-s", "600", "--fail-mode", "open",
        name="edge-stable",
    )  # fmt: skip


@pytest.fixture(scope="module")
def edge_url(stable_edge) -> str:  # noqa: ANN001
    return stable_edge.url


def noisy_reports(seed: int, n: int = 20) -> list[str]:
    """``Edge-Last-Request`` values whose throughput is 700 kbit/s ± 20% (p 0.45–0.55: both sides of 0.5)."""
    rng = random.Random(seed)
    return [f"ms={round(800 * rng.uniform(0.8, 1.2))}, bytes={BYTES}" for _ in range(n)]


def browse(client: httpx.Client, url: str, reports: list[str], keep_cookie: bool) -> tuple[list[str], list[str]]:
    """The tiers served for ``reports``, and every tier cookie edge set, carrying the cookie back if asked."""
    jar: str | None = None
    tiers, set_cookies = [], []
    for report in reports:
        headers = {"User-Agent": UA, "Edge-Last-Request": report, "Accept-Encoding": "identity"}
        if keep_cookie and jar:
            headers["Cookie"] = f"{COOKIE}={jar}"
        response = client.get(url + "/", headers=headers)
        assert response.status_code == 200
        tiers.append(response.headers["edge-tier"])
        for value in response.headers.get_list("set-cookie"):
            if value.startswith(COOKIE + "="):
                set_cookies.append(value)
                jar = value.split(";", 1)[0].split("=", 1)[1]
    return tiers, set_cookies


def switches(tiers: list[str]) -> int:
    return sum(a != b for a, b in zip(tiers, tiers[1:], strict=False))


def test_a_client_with_the_cookie_keeps_its_tier_across_noisy_requests(client: httpx.Client, edge_url: str) -> None:
    reports = noisy_reports(seed=16)
    without, _ = browse(client, edge_url, reports, keep_cookie=False)
    kept, set_cookies = browse(client, edge_url, reports, keep_cookie=True)
    assert switches(without) >= 5, without  # the noise crosses the threshold: the page flips
    assert switches(kept) <= 1, kept
    assert len(set(kept)) == 1  # in fact: one tier, chosen on the first page, for all 20
    assert set_cookies and "Max-Age=600" in set_cookies[0] and "HttpOnly" in set_cookies[0]


def test_a_real_change_of_network_switches_at_once(client: httpx.Client, edge_url: str) -> None:
    """2G (the browser's ECT hint), then 4G: the first 4G page is full, with a new cookie."""
    two_g, four_g = {"ECT": "2g"}, {"ECT": "4g", "RTT": "50", "Downlink": "10"}
    jar = None
    served = []
    for hints in [two_g, two_g, four_g, four_g]:
        headers = {"User-Agent": UA, "Accept-Encoding": "identity", **hints, **({"Cookie": f"{COOKIE}={jar}"} if jar else {})}
        response = client.get(edge_url + "/", headers=headers)
        served.append(response.headers["edge-tier"])
        for value in response.headers.get_list("set-cookie"):
            if value.startswith(COOKIE + "="):
                jar = value.split(";", 1)[0].split("=", 1)[1]
    assert served == ["lite", "lite", "full", "full"]


@pytest.mark.parametrize("value", ["forged.value", "x" * 3000, "eyJkIjoibGl0ZSJ9.AAAAAAAAAAAAAAAAAAAAAA"])
def test_a_forged_tier_cookie_is_ignored(client: httpx.Client, edge_url: str, value: str) -> None:
    response = client.get(edge_url + "/", headers={"User-Agent": UA, "ECT": "4g", "RTT": "50", "Downlink": "10", "Cookie": f"{COOKIE}={value}"})
    assert response.status_code == 200 and response.headers["edge-tier"] == "full"


def test_a_refused_lite_page_is_counted_shown_in_admin_and_keeps_the_client_on_full(
    client: httpx.Client, edge_url: str, stable_edge  # noqa: ANN001
) -> None:
    """The opt-out as feedback, on the real sidecar: the lite page's "Full page" link, followed."""
    edge = stable_edge
    page = client.get(edge_url + "/product/3", headers={"User-Agent": UA, "ECT": "2g", "Accept-Encoding": "identity"})
    assert page.headers["edge-tier"] == "lite"
    href = re.search(r'<p class="edge-switch"[^>]*><a href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert href.startswith("/__edge/tier/full?next=/product/3")
    switch = client.get(edge_url + href)
    assert switch.status_code == 303 and switch.headers["location"] == "/product/3"
    metrics = client.get(edge.admin_url + "/metrics").text
    assert 'edge_tier_refusals_total{policy="demo",route="product",tier="lite"} 1.0' in metrics
    state = client.get(edge.admin_url + "/admin/model").json()["tier_refusals"]["demo"]["product"]["lite"]
    assert state["refused"] == 1 and state["served"] >= 1
    preference = switch.headers["set-cookie"].split(";", 1)[0]
    again = client.get(edge_url + "/product/3", headers={"User-Agent": UA, "ECT": "2g", "Cookie": preference})
    assert again.headers["edge-tier"] == "full"
