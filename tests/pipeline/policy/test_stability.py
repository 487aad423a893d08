"""The stable-tier rule (edge.pipeline.policy.stability): hysteresis, dwell time, real changes.

A client is simulated as edge treats it: its last tier and the time it was chosen travel
with it (the cookie), and are replaced only when a tier is chosen anew.
"""

from __future__ import annotations

import random

import pytest

from edge.pipeline.policy.stability import LastTier, TierStability

LITE, MINIMAL = 0.5, 0.95


def serve(rule: TierStability | None, ps: list[float], gap_s: float) -> list[str]:
    """The tiers a client gets for predictions ``ps`` (one request every ``gap_s`` seconds)."""
    last: LastTier | None = None
    tiers: list[str] = []
    for i, p in enumerate(ps):
        now = 1_000_000.0 + i * gap_s
        if rule is None:
            tier = "minimal" if p >= MINIMAL else "lite" if p >= LITE else "full"
        else:
            tier, state = rule.step(p, LITE, MINIMAL, last, now)
            if state is not None:
                last = state  # the cookie the response sets; kept otherwise
        tiers.append(tier)
    return tiers


def switches(tiers: list[str]) -> int:
    return sum(a != b for a, b in zip(tiers, tiers[1:], strict=False))


def noisy(seed: int, n: int = 20, sigma: float = 0.05, centre: float = LITE) -> list[float]:
    rng = random.Random(seed)
    return [min(max(rng.gauss(centre, sigma), 0.0), 1.0) for _ in range(n)]


@pytest.mark.parametrize("gap_s", [5.0, 30.0])
def test_noise_around_the_threshold_switches_at_most_once_in_20_requests(gap_s: float) -> None:
    """p = 0.5 + N(0, 0.05), 1000 clients of 20 requests within one dwell time: without the rule
    the page flips about 9.5 times in 20; with it, at most once (3 of the 1000 clients switch once)."""
    rule = TierStability(margin=0.5, dwell_s=600.0)
    with_rule = [switches(serve(rule, noisy(seed), gap_s)) for seed in range(1000)]
    without = [switches(serve(None, noisy(seed), gap_s)) for seed in range(1000)]
    assert max(with_rule) <= 1
    assert sum(without) / len(without) > 8
    assert sum(with_rule) <= 10


def test_noise_over_two_dwell_times_switches_at_most_once_per_dwell_time() -> None:
    """20 requests a minute apart span two dwell times: a tier chosen afresh at 600 s may flip (a coin
    toss at p ≈ 0.5), so about half the clients switch once; two switches are rare (1 in 1000)."""
    rule = TierStability(margin=0.5, dwell_s=600.0)
    with_rule = [switches(serve(rule, noisy(seed), 60.0)) for seed in range(1000)]
    assert max(with_rule) <= 2
    assert sum(n <= 1 for n in with_rule) >= 990


def test_a_real_change_of_network_switches_on_the_next_request() -> None:
    """2G (the rules' p for ECT 2g: 0.88) then 4G (0.10), and back: each change switches at once (rule 2)."""
    rule = TierStability()
    tiers = serve(rule, [0.88] * 5 + [0.10] * 5 + [0.88] * 5, gap_s=10.0)
    assert tiers == ["lite"] * 5 + ["full"] * 5 + ["lite"] * 5


def test_a_real_change_after_noise_still_switches_within_two_requests() -> None:
    rule = TierStability()
    ps = noisy(7, n=10) + [0.10, 0.10, 0.10]
    tiers = serve(rule, ps, gap_s=10.0)
    assert tiers[-2:] == ["full", "full"]
    ps = noisy(8, n=10) + [0.88, 0.88]
    assert serve(rule, ps, gap_s=10.0)[-1] == "lite"


def test_a_moderate_change_switches_on_its_second_request() -> None:
    """From just under the threshold (0.45) to a 3G-like 0.70 (beyond the margin, not twice it): held once, then switched (rule 3)."""
    rule = TierStability()
    assert serve(rule, [0.45] * 3 + [0.70] * 3, gap_s=10.0) == ["full"] * 4 + ["lite"] * 2


def test_an_unconfirmed_crossing_is_forgotten() -> None:
    """One outlier, a quiet request, another outlier: never two in a row, so no switch."""
    rule = TierStability()
    assert serve(rule, [0.45, 0.65, 0.55, 0.65, 0.45, 0.66, 0.6], gap_s=10.0) == ["full"] * 7


def test_a_small_steady_change_waits_out_the_dwell_time() -> None:
    """p moves from 0.45 to 0.55 and stays: held full until the choice is dwell_s old, then lite."""
    rule = TierStability(margin=0.5, dwell_s=600.0)
    tiers = serve(rule, [0.45] + [0.55] * 30, gap_s=60.0)
    assert tiers[:10] == ["full"] * 10  # chosen at t=0; held while younger than 600 s
    assert tiers[10:] == ["lite"] * 21  # t=600: chosen afresh


def test_minimal_band_needs_the_margin_in_log_odds_not_beyond_one() -> None:
    rule = TierStability(margin=0.5)
    lo, hi = rule.band(MINIMAL)
    assert 0.9 < lo < MINIMAL < hi < 1.0
    lite = LastTier("lite", 0.0)
    assert rule.tier(0.98, LITE, MINIMAL, lite, 10.0) == "lite"  # beyond the margin: to be confirmed
    assert rule.tier(0.98, LITE, MINIMAL, LastTier("lite", 0.0, "minimal"), 10.0) == "minimal"
    assert rule.tier(0.995, LITE, MINIMAL, lite, 10.0) == "minimal"  # twice the margin: at once
    assert rule.tier(0.96, LITE, MINIMAL, lite, 10.0) == "lite"
    minimal = LastTier("minimal", 0.0)
    assert rule.tier(0.93, LITE, MINIMAL, minimal, 10.0) == "minimal"
    assert rule.tier(0.5, LITE, MINIMAL, minimal, 10.0) == "lite"


@pytest.mark.parametrize("rule", [TierStability(margin=0.0), TierStability(dwell_s=0.0)])
def test_zero_margin_or_dwell_turns_the_rule_off(rule: TierStability) -> None:
    assert not rule.enabled
    assert rule.tier(0.45, LITE, MINIMAL, LastTier("lite", 0.0), 1.0) == "full"


def test_the_last_tier_binds_for_the_dwell_time_only() -> None:
    rule = TierStability(dwell_s=600.0)
    assert rule.current(LastTier("lite", 1_000.0), 2_000.0) is None
    assert rule.current(LastTier("lite", 1_000.0), 1_100.0) == LastTier("lite", 1_000.0)
