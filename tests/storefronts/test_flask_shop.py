"""A Flask shop (WSGI, served by waitress) behind ``edge serve``: its form posts work as direct.

The reverse proxy must not care what is behind it. The shop keeps a CSRF token in Flask's signed
session cookie and checks the browser's ``Origin`` against ``Host`` (as Django and Rails do); an
order is a POST answered by a 303 to the orders page. Through edge at the full and the lite tier,
the same requests give the same statuses and the same orders as direct, and the lite page is
lighter but keeps the form and its token. One flow runs in headless Chromium too.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.storefronts.browsing import Shopper

pytestmark = pytest.mark.integration

ECT = {"full": "4g", "lite": "2g"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def order_flow(base_url: str, ect: str | None) -> dict:
    """GET the shop, POST two orders (as a browser would: its Origin, the session cookie, the token), list them."""
    headers = {"ECT": ect} if ect else {}
    seen: dict = {"statuses": [], "tiers": []}
    with httpx.Client(trust_env=False, timeout=10, follow_redirects=False, headers=headers) as client:
        page = client.get(base_url + "/")
        seen["statuses"].append(page.status_code)
        seen["tiers"].append(page.headers.get("edge-tier"))
        seen["index"] = page.text
        token = TOKEN.search(page.text).group(1)
        for item, quantity in (("tent", "1"), ("lamp", "3")):
            posted = client.post(
                base_url + "/order", data={"csrf_token": token, "item": item, "quantity": quantity}, headers={"Origin": base_url}
            )
            seen["statuses"].append(posted.status_code)
            seen.setdefault("locations", []).append(posted.headers.get("location"))
        listed = client.get(base_url + "/orders")
        seen["statuses"].append(listed.status_code)
        seen["tiers"].append(listed.headers.get("edge-tier"))
        seen["orders"] = re.findall(r'<td class="item">([^<]+)</td><td class="quantity">(\d+)</td>', listed.text)
        # The shop's CSRF protection still bites through edge: no token, or a foreign Origin → 403.
        seen["no_token"] = client.post(base_url + "/order", data={"item": "tent"}, headers={"Origin": base_url}).status_code
        seen["foreign_origin"] = client.post(
            base_url + "/order", data={"csrf_token": token, "item": "tent"}, headers={"Origin": "http://evil.example"}
        ).status_code
    return seen


@pytest.fixture(scope="module")
def direct(flask_shop) -> dict:
    return order_flow(flask_shop.direct.url, None)


def test_direct_flow(direct: dict) -> None:
    assert direct["statuses"] == [200, 303, 303, 200]
    assert direct["locations"] == ["/orders", "/orders"]
    assert direct["orders"] == [("Two-person tent", "1"), ("Head lamp", "3")]
    assert direct["no_token"] == direct["foreign_origin"] == 403
    assert direct["tiers"] == [None, None]


@pytest.mark.parametrize("tier", ["full", "lite"])
def test_form_posts_through_edge_as_direct(flask_shop, direct: dict, tier: str) -> None:
    seen = order_flow(flask_shop.serve.url, ECT[tier])
    assert seen["statuses"] == direct["statuses"]
    assert seen["locations"] == direct["locations"]
    assert seen["orders"] == direct["orders"]
    assert (seen["no_token"], seen["foreign_origin"]) == (403, 403)
    assert seen["tiers"] == [tier, tier]
    index = seen["index"]
    assert 'id="order-form"' in index and TOKEN.search(index)
    if tier == "lite":
        assert index.count("<li>Offer") == 1  # trimmed to one offer
        assert 'data-edge-widget="recommendations"' not in index
        assert 'data-edge-collapsed="promo"' in index
        assert len(index.encode()) < len(direct["index"].encode())
    else:
        assert index.count("<li>Offer") == 12 and 'data-edge-widget="recommendations"' in index


def test_static_file_through_edge_byte_for_byte(flask_shop) -> None:
    with httpx.Client(trust_env=False, timeout=10) as client:
        direct = client.get(flask_shop.direct.url + "/static/shop.css")
        through = client.get(flask_shop.serve.url + "/static/shop.css", headers={"ECT": "2g"})
    assert direct.status_code == through.status_code == 200
    assert through.content == direct.content
    assert through.headers["etag"] == direct.headers["etag"]


def test_browser_orders_through_edge_at_lite(flask_shop, chromium) -> None:
    """Chromium submits the order form of a lite page (its own Origin, cookie and token): 303, then the orders."""
    shopper = Shopper(chromium, flask_shop.serve.url, {"ECT": ECT["lite"]})
    try:
        first = shopper.goto("/")
        assert first.final.headers.get("edge-tier") == "lite"
        assert shopper.count("ul.offers li") == 1
        visit = shopper.submit("#order-form button", {"#order-form select": "stove", "#order-form input[name=quantity]": "2"})
        assert [(h.method, h.path, h.status) for h in visit.hops] == [("POST", "/order", 303), ("GET", "/orders", 200)]
        assert visit.final.headers.get("edge-tier") == "lite"
        assert shopper.js("[...document.querySelectorAll('#orders tr')].map(r => r.innerText.trim())") == ["Camping stove\t2"]
    finally:
        shopper.close()
