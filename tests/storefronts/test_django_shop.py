"""A real Django shop behind edge, driven by a real browser: the same shopping works as direct.

Headless Chromium (DevTools protocol) adds two products to the basket, changes a quantity and logs
in, against Django direct, then through ``edge serve`` and through ``AdaptiveMiddleware`` in-process,
each at the full tier (``ECT: 4g``) and the lite tier (``ECT: 2g``). Every form post (CSRF token,
browser ``Origin``), redirect, session cookie and login must come out as direct: the same statuses
(no 403), the same basket, the same user shown. The lite pages are really lite (widgets dropped and
collapsed by ``shop_policy.toml``) and keep every form.

What Django needs behind edge is tested too: with edge's default (the browser's ``Host`` forwarded)
only ``ALLOWED_HOSTS`` naming the host shoppers use; with ``--no-preserve-host``, stock settings
refuse every browser POST (Origin check), and ``USE_X_FORWARDED_HOST = True`` fixes it. Behind a
TLS-terminating balancer, edge (told to trust it) passes its ``X-Forwarded-Proto: https`` on, and
uvicorn (which trusts ``X-Forwarded-*`` from 127.0.0.1 by default) makes Django see HTTPS, so an
``Origin: https://…`` passes without ``SECURE_PROXY_SSL_HEADER``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.storefronts.browsing import PASSWORD, USERNAME, Shopper

pytestmark = pytest.mark.integration

#: What the browser says about its network (Chromium's ECT client hint) for each tier.
ECT = {"full": "4g", "lite": "2g"}
PRODUCTS = 4
BASKET_AFTER_FLOW = {"Rain jacket": 3, "Wool socks": 1}


@dataclass
class Outcome:
    """What a shopper saw: every document hop (method, path, status), the pages' tiers and facts."""

    hops: list[tuple[str, str, int]] = field(default_factory=list)
    tiers: list[str | None] = field(default_factory=list)  # Edge-Tier of every page shown
    timings: list[str | None] = field(default_factory=list)  # their Server-Timing (edge's tier/source/reason)
    basket: dict[str, int] = field(default_factory=dict)
    username: str | None = None
    product_page: dict[str, Any] = field(default_factory=dict)
    basket_page: dict[str, Any] = field(default_factory=dict)


def _page_facts(shopper: Shopper) -> dict[str, Any]:
    return {
        "recommendations": shopper.count('[data-edge-widget="recommendations"]'),
        "promo": shopper.count('[data-edge-widget="promo"]'),
        "reviews": shopper.count("article.review"),
        "collapsed": sorted(shopper.js("[...document.querySelectorAll('.edge-collapsed')].map(e => e.dataset.edgeCollapsed)")),
        "add_forms_with_token": shopper.count('form.add-to-basket input[name="csrfmiddlewaretoken"]'),
        "quantity_forms_with_token": shopper.count('form.update-quantity input[name="csrfmiddlewaretoken"]'),
        # The stylesheet (whitenoise) was served and applied: body { max-width: 60rem }.
        "css_max_width": shopper.js("getComputedStyle(document.body).maxWidth"),
    }


def shop(browser: Any, base_url: str, ect: str) -> Outcome:
    """Add two products, change a quantity, log in, look at the basket: the whole flow in one tab."""
    shopper = Shopper(browser, base_url, {"ECT": ect})
    try:
        shopper.goto("/")
        facts = _page_facts(shopper)
        shopper.submit("#product-1 form.add-to-basket button")  # POST → 302 → the basket
        shopper.goto("/")
        shopper.submit("#product-3 form.add-to-basket button")
        basket_facts = _page_facts(shopper)
        shopper.submit('tr[data-product="1"] form.update-quantity button', {'tr[data-product="1"] input.quantity': "3"})
        shopper.goto("/accounts/login/")
        shopper.submit("#login-form button[type=submit]", {"#id_username": USERNAME, "#id_password": PASSWORD})
        username = shopper.text("#username")  # the page after the login redirect shows who is logged in
        shopper.goto("/basket/")  # the basket survives the login (Django keeps the session's data)
        basket = shopper.js(
            "Object.fromEntries([...document.querySelectorAll('#basket tr.line')]"
            ".map(r => [r.querySelector('.name').textContent, +r.querySelector('input.quantity').value]))"
        )
        return Outcome(
            hops=[(hop.method, hop.path, hop.status) for visit in shopper.visits for hop in visit.hops],
            tiers=[visit.final.headers.get("edge-tier") for visit in shopper.visits],
            timings=[visit.final.headers.get("server-timing") for visit in shopper.visits],
            basket=basket,
            username=username,
            product_page=facts,
            basket_page=basket_facts,
        )
    finally:
        shopper.close()


EXPECTED_HOPS = [
    ("GET", "/", 200),
    ("POST", "/basket/add/1/", 302), ("GET", "/basket/", 200),
    ("GET", "/", 200),
    ("POST", "/basket/add/3/", 302), ("GET", "/basket/", 200),
    ("POST", "/basket/update/1/", 302), ("GET", "/basket/", 200),
    ("GET", "/accounts/login/", 200),
    ("POST", "/accounts/login/", 302), ("GET", "/", 200),
    ("GET", "/basket/", 200),
]  # fmt: skip


@pytest.fixture(scope="module")
def direct(django_shop, chromium) -> Outcome:
    return shop(chromium, django_shop.direct.url, ECT["full"])


def test_direct_flow_is_what_the_shop_does(direct: Outcome) -> None:
    """The reference: the flow against Django itself, no edge."""
    assert direct.hops == EXPECTED_HOPS
    assert direct.basket == BASKET_AFTER_FLOW
    assert direct.username == USERNAME
    assert direct.product_page["add_forms_with_token"] == PRODUCTS
    assert direct.product_page["recommendations"] == 1 and direct.product_page["collapsed"] == []
    assert direct.product_page["css_max_width"] == "960px"
    assert set(direct.tiers) == {None}


@pytest.mark.parametrize("tier", ["full", "lite"])
@pytest.mark.parametrize("deployment", ["serve", "inprocess"])
def test_browser_shops_through_edge_as_direct(django_shop, chromium, direct: Outcome, deployment: str, tier: str) -> None:
    outcome = shop(chromium, getattr(django_shop, deployment).url, ECT[tier])

    # The same shopping, the same result: every POST accepted (no 403), every redirect followed.
    assert outcome.hops == direct.hops
    assert outcome.basket == direct.basket == BASKET_AFTER_FLOW
    assert outcome.username == direct.username == USERNAME
    assert outcome.product_page["add_forms_with_token"] == direct.product_page["add_forms_with_token"]
    assert outcome.basket_page["quantity_forms_with_token"] == direct.basket_page["quantity_forms_with_token"] == 2
    assert outcome.product_page["css_max_width"] == direct.product_page["css_max_width"]

    # Every page the shopper saw was decided by edge, at the tier the browser's network asks for.
    assert outcome.tiers == [tier] * len(outcome.tiers), outcome.timings
    if tier == "lite":
        for facts in (outcome.product_page, outcome.basket_page):
            assert facts["recommendations"] == 0 and facts["promo"] == 0
        assert outcome.product_page["collapsed"] == ["promo", "reviews"]
        assert outcome.product_page["reviews"] == 0
    else:
        assert outcome.product_page["collapsed"] == [] and outcome.product_page["recommendations"] == 1
        assert outcome.product_page["reviews"] == direct.product_page["reviews"] == 6


def _first_add_to_basket(browser: Any, base_url: str) -> tuple[int, str]:
    shopper = Shopper(browser, base_url, {"ECT": ECT["lite"]})
    try:
        shopper.goto("/")
        visit = shopper.submit("#product-2 form.add-to-basket button")
        return visit.hops[0].status, shopper.js("document.body.innerText")
    finally:
        shopper.close()


def test_no_preserve_host_needs_use_x_forwarded_host(django_shop, chromium) -> None:
    """With ``--no-preserve-host`` Django sees its own host while the browser's Origin names edge's:
    stock settings refuse the POST; ``USE_X_FORWARDED_HOST = True`` (edge sets X-Forwarded-Host) passes."""
    status, text = _first_add_to_basket(chromium, django_shop.no_preserve_plain.url)
    assert status == 403 and f"Origin checking failed - {django_shop.no_preserve_plain.url} does not match" in text, text[:500]
    status, text = _first_add_to_basket(chromium, django_shop.no_preserve.url)
    assert status == 302, text[:500]


@pytest.mark.parametrize("deployment", ["serve", "inprocess"])
def test_static_files_pass_through_byte_for_byte(django_shop, deployment: str) -> None:
    path = "/static/shop/shop.css"
    with httpx.Client(trust_env=False, timeout=10) as client:
        direct = client.get(django_shop.direct.url + path, headers={"ECT": "2g"})
        through = client.get(getattr(django_shop, deployment).url + path, headers={"ECT": "2g"})
    assert direct.status_code == through.status_code == 200
    assert through.content == direct.content and b"max-width: 60rem" in through.content
    assert through.headers["content-type"] == direct.headers["content-type"]
    assert "edge-tier" not in through.headers


@pytest.mark.parametrize("deployment", ["serve", "inprocess"])
@pytest.mark.parametrize("tier", ["full", "lite"])
def test_edge_tier_header_on_django_pages(django_shop, deployment: str, tier: str) -> None:
    """Without a browser: ``Edge-Tier`` follows ``ECT`` on Django's pages, in both deployments."""
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.get(getattr(django_shop, deployment).url + "/", headers={"ECT": ECT[tier]})
    assert response.status_code == 200
    assert response.headers.get("edge-tier") == tier, dict(response.headers)


def _post_behind_tls(base_url: str, forwarded_proto: str | None) -> int:
    """A browser's add-to-basket on https://<edge host>, through a balancer that terminated TLS."""
    origin = base_url.replace("http://", "https://")
    balancer = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
    with httpx.Client(trust_env=False, timeout=10, headers=balancer) as client:
        page = client.get(base_url + "/")
        token = page.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        posted = client.post(base_url + "/basket/add/4/", data={"csrfmiddlewaretoken": token}, headers={"Origin": origin})
    return posted.status_code


def test_tls_terminated_before_edge_needs_edge_to_trust_the_balancer(django_shop) -> None:
    """Origin ``https://…`` passes when the balancer's ``X-Forwarded-Proto: https`` reaches Django
    (edge ``--forwarded-allow-ips``; uvicorn trusts edge on 127.0.0.1); without it Django sees http: 403."""
    assert _post_behind_tls(django_shop.behind_tls.url, "https") == 302
    assert _post_behind_tls(django_shop.behind_tls.url, None) == 403
