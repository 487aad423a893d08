"""The compiled policy: the bundled policy files, loading, route lookup and the tier decision."""

from pathlib import Path

import pytest

from edge import PolicyError, load_policy
from edge.pipeline.policy import Policy, holdback_draw

POLICIES = sorted(Path(__file__).resolve().parents[3].joinpath("policies").glob("*.toml"))


def test_bundled_policies_exist():
    assert POLICIES


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_bundled_policies_load(path):
    policy = load_policy(path)
    assert policy.lite_threshold <= policy.minimal_threshold
    for route in policy.routes:
        assert route.drop_selectors("full") == ()


def test_demo_policy_keeps_the_essentials():
    policy = load_policy(POLICIES[0].parent / "demo.toml")
    dropped = " ".join(policy.drop_selectors("lite"))
    for essential in ("header", "search", "product-grid", "cart"):
        assert f'"{essential}"' not in dropped
    for extra in ("carousel", "recommendations", "reviews", "video", "ads", "chat"):
        assert f'"{extra}"' in dropped


def test_demo_policy_routes():
    policy = load_policy(POLICIES[0].parent / "demo.toml")
    assert [policy.for_path(p).name for p in ("/", "/search", "/product/3", "/cart", "/api/layout/home", "/checkout")] == [
        "home", "search", "product", "cart", "api", "default",
    ]  # fmt: skip
    product = policy.for_path("/product/3")
    assert product.lite_threshold == 0.4
    reviews = next(w for w in product.widgets if w.name == "reviews")
    assert reviews.actions["lite"] == "collapse" and reviews.label == "Show reviews"
    assert next(w for w in policy.default.widgets if w.name == "reviews").actions["lite"] == "drop"


def test_unreadable_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="missing.toml: cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_decision_order_preference_then_save_data_then_holdback_then_prediction():
    policy = Policy.from_toml("[overrides]\nholdback = 0.1")
    assert policy.decide(0.99, preference="full").tier == "full"
    assert policy.decide(0.99, preference="full").reason == "preference"
    assert policy.decide(0.01, preference="lite", holdback_draw=0.0).tier == "lite"
    assert policy.decide(0.01, save_data=True).tier == "lite"
    assert policy.decide(0.01, save_data=True, holdback_draw=0.0).reason == "save-data"
    assert policy.decide(0.01, save_data=True).source == "override"
    held = policy.decide(0.99, holdback_draw=0.09999)
    assert (held.tier, held.reason, held.source, held.p) == ("full", "holdback", "holdback", 0.99)
    assert policy.decide(0.99, holdback_draw=0.1).tier == "minimal"
    assert policy.decide(None, holdback_draw=0.5).reason == "unknown"
    assert policy.decide(None).reason == "unknown"
    assert policy.decide(0.6, source="model").source == "model"
    assert policy.decide(0.6, preference="bogus").tier == "lite"


def test_no_holdback_share_means_no_holdback():
    assert Policy.from_toml("[overrides]\nholdback = 0").decide(0.99, holdback_draw=0.0).tier == "minimal"
    assert Policy.from_toml("").decide(0.99, holdback_draw=0.0).tier == "full"  # the default holdback is 5%


def test_holdback_draw_is_stable_and_spread():
    draws = [holdback_draw(f"client-{i}") for i in range(2000)]
    assert draws == [holdback_draw(f"client-{i}") for i in range(2000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.03 < sum(d < 0.05 for d in draws) / len(draws) < 0.07


def test_save_data_can_be_ignored_by_policy():
    policy = Policy.from_toml('[overrides]\nsave_data = "full"')
    assert policy.decide(None, save_data=True).tier == "full"


ROUTES = Policy.from_toml(
    """
[tiers]
lite = 0.5
minimal = 0.9
[[widgets]]
widget = "ads"
priority = 1
lite = "drop"
[[widgets]]
widget = "reviews"
priority = 40
[[images]]
lazy = true
[[routes]]
name = "product"
path = "/product/*"
tiers = { lite = 0.2, minimal = 0.6 }
  [[routes.widgets]]
  widget = "reviews"
  priority = 40
  lite = "collapse"
  [[routes.widgets]]
  selector = "ul.related"
  priority = 20
  lite = "trim"
  keep = 2
  item = "li"
[[routes]]
name = "api"
path = "/api/**"
images = []
[[routes]]
name = "legacy"
regex = '^/p/\\d+(\\.html)?$'
[[routes]]
name = "any-product"
path = "/product/**"
"""
)


@pytest.mark.parametrize(
    ("path", "route"),
    [("/", "default"), ("/product/7", "product"), ("/product/7?x=1", "product"), ("/product/7/reviews", "any-product"),
     ("/api/v1/layout", "api"), ("/api", "default"), ("/p/12.html", "legacy"), ("/p/x", "default"), ("/product/", "product")],
)  # fmt: skip
def test_routes_first_match_wins(path, route):
    assert ROUTES.for_path(path).name == route


def test_route_overrides_thresholds_widgets_and_rule_lists():
    product = ROUTES.for_path("/product/1")
    assert ROUTES.decide(0.3, path="/product/1").tier == "lite"
    assert ROUTES.decide(0.3, path="/product/1").route == "product"
    assert ROUTES.decide(0.3, path="/").tier == "full"
    assert ROUTES.decide(0.7, path="/product/1").tier == "minimal"
    assert [(w.name, w.actions["lite"]) for w in product.widgets] == [("ads", "drop"), ("reviews", "collapse"), ("ul.related", "trim")]
    assert product.widgets[2].trim_css == "ul.related > li:nth-of-type(n+3)"
    assert len(product.images) == 1 and ROUTES.for_path("/api/x").images == ()
    assert ROUTES.drop_selectors("lite", "/product/1") == ('[data-edge-widget="ads"]',)
