"""The tier decision at its edges: the docs promise "p ≥ threshold", so p exactly on a threshold gets that tier.

Every check here sits on a threshold or one float step below it, so ``p >= lite`` and
``p > lite`` (or the same slip for ``minimal``) give different answers.
"""

import math

import pytest

from edge.pipeline.policy import Policy

POLICY = Policy.from_toml(
    """
[tiers]
lite = 0.5
minimal = 0.95
[[routes]]
name = "product"
path = "/product/*"
tiers = { lite = 0.3, minimal = 0.9 }
[[routes]]
name = "flat"
path = "/flat/*"
tiers = { lite = 0.7, minimal = 0.7 }
""",
    path="thresholds.toml",
)


def below(x: float) -> float:
    """The largest float smaller than ``x``."""
    return math.nextafter(x, -math.inf)


@pytest.mark.parametrize(
    ("path", "lite", "minimal"),
    [(None, 0.5, 0.95), ("/product/7", 0.3, 0.9)],
    ids=["default", "route"],
)
def test_p_on_a_threshold_gets_that_tier_and_one_step_below_does_not(path, lite, minimal):
    assert POLICY.for_path(path or "/").lite_threshold == lite  # the fixture says what the test assumes
    decide = lambda p: POLICY.decide(p, path=path).tier  # noqa: E731
    assert decide(below(lite)) == "full"
    assert decide(lite) == "lite"
    assert decide(below(minimal)) == "lite"
    assert decide(minimal) == "minimal"


def test_decision_at_a_threshold_is_predicted_and_keeps_p():
    decision = POLICY.decide(0.5, source="model")
    assert (decision.tier, decision.reason, decision.source, decision.p) == ("lite", "predicted", "model", 0.5)


def test_equal_thresholds_go_straight_to_minimal():
    assert POLICY.decide(below(0.7), path="/flat/x").tier == "full"
    assert POLICY.decide(0.7, path="/flat/x").tier == "minimal"


def test_ceiling_at_the_minimal_threshold_gives_lite():
    assert POLICY.decide(0.95, ceiling="lite").tier == "lite"
    assert POLICY.decide(0.95).tier == "minimal"


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_extreme_thresholds(threshold):
    policy = Policy.from_toml(f"[tiers]\nlite = {threshold}\nminimal = 1.0")
    assert policy.decide(threshold).tier == ("lite" if threshold == 0.0 else "minimal")
    assert policy.decide(1.0).tier == "minimal"
