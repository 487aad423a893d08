"""The opt-out as feedback (edge.adapt.refusals): switch-link clicks counted against the tier refused."""

from __future__ import annotations

import asyncio
import re

import httpx
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from edge import AdaptiveMiddleware, Policy, Settings
from edge.adapt.refusals import MAX_KEYS, TierRefusals

PAGE = '<!doctype html><html><body><div data-edge-widget="ads">ads</div></body></html>'
STOREFRONT = Starlette(routes=[Route("/{path:path}", lambda r: HTMLResponse(PAGE))])
POLICY = Policy.from_toml(
    'name = "shop"\n[overrides]\nholdback = 0.0\n'
    '[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n'
    '[[routes]]\nname = "product"\npath = "/product/*"\n'
)
LINK = re.compile(r'<p class="edge-switch"[^>]*><a href="([^"]+)"')


def edge() -> AdaptiveMiddleware:
    return AdaptiveMiddleware(STOREFRONT, policy=POLICY, settings=Settings(fail_mode="closed", tier_margin=0))


def get(app: AdaptiveMiddleware, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            return await client.get(path, headers={"Accept-Encoding": "identity", **(headers or {})})

    return asyncio.run(go())


def link(response: httpx.Response) -> str:
    match = LINK.search(response.text)
    assert match, response.text
    return match.group(1).replace("&amp;", "&")


def test_full_page_on_a_lite_page_counts_a_refused_lite_on_its_route(metric) -> None:  # noqa: ANN001
    app = edge()
    before = metric("edge_tier_refusals_total", policy="shop", route="product", tier="lite")
    page = get(app, "/product/7", {"ECT": "2g"})
    assert page.headers["edge-tier"] == "lite"
    switch = get(app, link(page))
    assert switch.status_code == 303 and switch.headers["location"] == "/product/7"
    assert metric("edge_tier_refusals_total", policy="shop", route="product", tier="lite") == before + 1
    assert app.refusals.snapshot()["shop"]["product"]["lite"] == {"served": 1, "refused": 1, "share": 1.0}
    # ...and used by the decision: with the cookie the switch set, the same 2G client gets full.
    cookie = switch.headers["set-cookie"].split(";", 1)[0]
    again = get(app, "/product/7", {"ECT": "2g", "Cookie": cookie})
    assert again.headers["edge-tier"] == "full" and "preference" in again.headers["server-timing"]


def test_light_page_on_a_full_page_counts_a_refused_full(metric) -> None:  # noqa: ANN001
    app = edge()
    before = metric("edge_tier_refusals_total", policy="shop", route="default", tier="full")
    page = get(app, "/about", {"ECT": "4g", "RTT": "50", "Downlink": "10"})
    assert page.headers["edge-tier"] == "full" and "/__edge/tier/lite?next=/about" in link(page)
    get(app, link(page))
    assert metric("edge_tier_refusals_total", policy="shop", route="default", tier="full") == before + 1


def test_a_minimal_page_names_the_tier_it_leaves(metric) -> None:  # noqa: ANN001
    app = edge()
    page = get(app, "/product/1", {"ECT": "slow-2g"})
    assert page.headers["edge-tier"] == "minimal"  # the rules' slow-2g p is 0.97: minimal by the 0.95 threshold
    assert link(page).endswith("&from=minimal")
    before = metric("edge_tier_refusals_total", policy="shop", route="product", tier="minimal")
    get(app, link(page))
    assert metric("edge_tier_refusals_total", policy="shop", route="product", tier="minimal") == before + 1


def test_what_a_client_sends_cannot_grow_the_labels(metric) -> None:  # noqa: ANN001
    """Any next and from: the route is the policy's, the tier one of three."""
    app = edge()
    for i in range(50):
        get(app, f"/__edge/tier/full?next=/x{i}/%2e%2e&from=evil{i}")
        get(app, f"/__edge/tier/full?next=https://evil.example/{i}&from=minimal")
    snapshot = app.refusals.snapshot()
    assert set(snapshot) == {"shop"} and set(snapshot["shop"]) == {"default"}
    assert snapshot["shop"]["default"]["lite"]["refused"] == 50
    assert snapshot["shop"]["default"]["minimal"]["refused"] == 50


def test_the_table_is_bounded() -> None:
    refusals = TierRefusals()
    for i in range(MAX_KEYS + 100):
        refusals.served(f"policy-{i}", "default", "lite")
    assert sum(len(routes) for routes in refusals.snapshot().values()) == MAX_KEYS
