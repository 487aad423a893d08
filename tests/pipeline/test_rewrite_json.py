"""The JSON layout rewriter: drop and trim by JSON path, per tier and route; random JSON never breaks it."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.demo.layout import home_layout
from edge.pipeline.policy import Policy, load_policy
from edge.pipeline.rewrite import JsonRewriter, RewriteError
from tests.pipeline.policy.test_decide import POLICIES

POLICY = Policy.from_toml(
    """
[[json]]
path = "$.debug"
lite = "drop"

[[routes]]
name = "api"
path = "/api/**"
  [[routes.json]]
  path = "$.sections[?(@.priority < 50)]"
  lite = "drop"
  [[routes.json]]
  path = "$.sections[*].items"
  lite = "trim"
  keep = 2
  minimal = "trim"
  [[routes.json]]
  path = "$.sections[*].items[*].image"
  minimal = "drop"
  [[routes.json]]
  path = "$.banners[0]"
  lite = "drop"
"""
)
DOC = {
    "sections": [
        {"widget": "ads", "priority": 1, "items": [{"id": 1}]},
        {"widget": "grid", "priority": 90, "items": [{"id": i, "image": f"/i/{i}.png"} for i in range(5)]},
    ],
    "banners": ["a", "b"],
    "debug": {"x": 1},
}
BODY = orjson.dumps(DOC)


def test_full_tier_and_routes_without_rules_return_the_body_itself():
    rewriter = JsonRewriter(POLICY)
    assert rewriter.rewrite(BODY, "full", "/api/x") is BODY
    assert rewriter.rewrite(BODY, "lite", "/api/x/", ) is not BODY
    assert JsonRewriter(Policy.from_toml("")).rewrite(BODY, "lite", "/api/x") is BODY  # no rules at all
    assert not rewriter.applies("full", "/api/x") and rewriter.applies("lite", "/api/x")


def test_lite_drops_and_trims():
    out = orjson.loads(JsonRewriter(POLICY).rewrite(BODY, "lite", "/api/layout"))
    assert [s["widget"] for s in out["sections"]] == ["grid"]
    assert [i["id"] for i in out["sections"][0]["items"]] == [0, 1]
    assert out["banners"] == ["b"]
    assert out["debug"] == {"x": 1}  # the api route has its own json list: the default one does not apply


def test_minimal_applies_its_own_actions():
    out = orjson.loads(JsonRewriter(POLICY).rewrite(BODY, "minimal", "/api/layout"))
    assert [s["widget"] for s in out["sections"]] == ["grid"]  # no minimal action given: the lite one applies
    assert out["sections"][0]["items"] == [{"id": 0}, {"id": 1}]  # trimmed, and images dropped on minimal only


def test_default_route_rule():
    assert orjson.loads(JsonRewriter(POLICY).rewrite(BODY, "lite", "/page")) == {k: v for k, v in DOC.items() if k != "debug"}


def test_drop_several_elements_of_one_array():
    policy = Policy.from_toml('[[json]]\npath = "$.a[?(@.x)]"\nlite = "drop"')
    body = b'{"a": [{"x": 1}, {"y": 2}, {"x": 3}, {"x": 4}, {"z": 5}]}'
    assert JsonRewriter(policy).rewrite(body, "lite", "/") == b'{"a":[{"y":2},{"z":5}]}'


def test_demo_home_layout_at_each_tier():
    policy = load_policy(POLICIES[0].parent / "demo.toml")
    body = orjson.dumps(home_layout())
    lite = orjson.loads(JsonRewriter(policy).rewrite(body, "lite", "/api/layout/home"))
    minimal = orjson.loads(JsonRewriter(policy).rewrite(body, "minimal", "/api/layout/home"))
    assert all(s["priority"] >= 50 for s in lite["sections"]) and all(len(s["items"]) <= 12 for s in lite["sections"])
    assert all(s["priority"] >= 90 for s in minimal["sections"])
    assert {"header", "search", "product-grid", "cart"} <= {s["widget"] for s in minimal["sections"]}


@pytest.mark.parametrize("body", [b"", b"{", b"nope", b'{"a": 1', b"\xff\xfe{}", b'{"a": NaN}'])
def test_unreadable_json_is_a_rewrite_error(body):
    with pytest.raises(RewriteError, match="not JSON"):
        JsonRewriter(POLICY).rewrite(body, "lite", "/api/x")


@pytest.mark.parametrize("body", [b'{"id": 123456789012345678901234}', b'{"p": 0.12345678901234567890123}'])
def test_numbers_orjson_would_round_are_refused_not_mangled(body):
    with pytest.raises(RewriteError, match="precision"):
        JsonRewriter(POLICY).rewrite(body, "lite", "/api/x")


def test_deep_nesting_is_a_rewrite_error_not_a_crash():
    with pytest.raises(RewriteError):
        JsonRewriter(POLICY).rewrite(b"[" * 5000 + b"]" * 5000, "lite", "/api/x")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["sections", "items", "priority", "image", "banners", "debug", "x"]), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from(["full", "lite", "minimal"]), st.sampled_from(["/api/x", "/", "/page"]))
def test_random_json_never_raises_and_stays_json(doc, tier, path):
    body = orjson.dumps(doc)
    out = JsonRewriter(POLICY).rewrite(body, tier, path)
    orjson.loads(out)
    if tier == "full":
        assert out == body


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["lite", "minimal"]))
def test_random_bytes_raise_only_rewrite_error(body, tier):
    try:
        JsonRewriter(POLICY).rewrite(body, tier, "/api/x")
    except RewriteError:
        pass
