from pathlib import Path

import pytest

from edge import PolicyError, load_policy
from edge.policy import Policy

POLICIES = sorted(Path(__file__).resolve().parent.parent.joinpath("policies").glob("*.toml"))


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_bundled_policies_load(path):
    policy = load_policy(path)
    assert policy.lite_threshold <= policy.minimal_threshold
    assert policy.drop_selectors("full") == ()


def test_demo_policy_keeps_the_essentials():
    policy = load_policy(POLICIES[0].parent / "demo.toml")
    dropped = " ".join(policy.drop_selectors("lite"))
    for essential in ("header", "search", "product-grid", "cart"):
        assert f'"{essential}"' not in dropped
    for extra in ("carousel", "recommendations", "reviews", "video", "ads", "chat"):
        assert f'"{extra}"' in dropped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[widgets]]\nwidget = "a"\npriority = 1\n[[widgets]]\nwidget = "b"\npriority = 1\nlite = "hide"',
         "shop.toml: widgets[1].lite: 'hide' is not one of keep, drop"),
        ("[tiers]\nlite = 1.5", "shop.toml: tiers.lite: Input should be less than or equal to 1 (got 1.5)"),
        ("[tiers]\nlite = 0.9\nminimal = 0.5", "shop.toml: tiers: minimal (0.5) must be ≥ lite (0.9)"),
        ('[[widgets]]\nselector = "div[["\npriority = 3', "shop.toml: widgets[0].selector: invalid CSS selector 'div[['"),
        ('[[widgets]]\nwidget = "x"\npriority = 3\ncolour = "red"', "shop.toml: widgets[0].colour: unknown key"),
        ('[[widgets]]\nwidget = "x"', "shop.toml: widgets[0].priority: required key is missing"),
        ('[[widgets]]\nwidget = "x"\nselector = "p"\npriority = 1', "shop.toml: widgets[0]: give exactly one of 'widget' or 'selector'"),
        ('[overrides]\nsave_data = "tiny"', "shop.toml: overrides.save_data: 'tiny' is not one of full, lite, minimal"),
        ("name = [", "shop.toml: not valid TOML"),
    ],
)
def test_errors_name_file_key_and_problem(text, message):
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(text, path="policies/shop.toml")
    assert str(info.value).startswith("policies/" + message)


def test_unreadable_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="missing.toml: cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_decision_order_preference_then_save_data_then_prediction():
    policy = Policy.from_toml("")
    assert policy.decide(0.99, preference="full").tier == "full"
    assert policy.decide(0.99, preference="full").reason == "preference"
    assert policy.decide(0.01, preference="lite").tier == "lite"
    assert policy.decide(0.01, save_data=True).tier == "lite"
    assert policy.decide(0.01, save_data=True).source == "override"
    assert policy.decide(None).reason == "unknown"
    assert policy.decide(0.6, source="model") .source == "model"
    assert policy.decide(0.6, preference="bogus").tier == "lite"


def test_save_data_can_be_ignored_by_policy():
    policy = Policy.from_toml('[overrides]\nsave_data = "full"')
    assert policy.decide(None, save_data=True).tier == "full"
