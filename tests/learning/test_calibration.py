"""ConfidenceCalibrator (edge/learning/calibration.py) and the champion/challenger serving calibrated candidates."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from edge.learning.calibration import MIN_SLOPE, NOISE_Z, SETTLED_AFTER, ConfidenceCalibrator
from edge.learning.model import ChampionChallenger


def _teach(cal, p, share_degraded, n=2000, seed=0):
    rng = random.Random(seed)
    for _ in range(n):
        cal.learn(p, rng.random() < share_degraded)


def test_an_overconfident_candidate_is_tempered_and_an_underconfident_one_left_as_published():
    over, under = ConfidenceCalibrator(), ConfidenceCalibrator()
    _teach(over, 0.95, 0.7)  # says 0.95, right 70 % of the time
    _teach(under, 0.6, 0.9)  # says 0.6, right 90 % of the time: never made surer than published
    assert over.a < 1.0 and 0.6 < over(0.95) < 0.8
    assert under.a == 1.0 and under(0.6) == 0.6


def test_the_map_keeps_the_ranking_and_the_side_of_one_half():
    cal = ConfidenceCalibrator()
    _teach(cal, 0.99, 0.0, n=500)  # as wrong as can be: the slope stops at its floor
    assert cal.a == MIN_SLOPE
    ps = [i / 100 for i in range(1, 100)]
    out = [cal(p) for p in ps]
    assert out == sorted(out) and len(set(out)) == len(out)
    assert all((q > 0.5) == (p > 0.5) for p, q in zip(ps, out) if p != 0.5)
    assert cal(0.5) == 0.5 and cal(None) is None and cal(0.0) < 0.5 < cal(1.0)


def test_the_slope_settles_then_stays():
    cal = ConfidenceCalibrator()
    _teach(cal, 0.9, 0.6, n=SETTLED_AFTER, seed=1)
    settled = cal.a
    assert settled < 1.0
    _teach(cal, 0.9, 0.0, n=500, seed=2)  # however wrong it is later, the scale no longer moves
    assert cal.a == settled and cal.labels == SETTLED_AFTER + 500


def test_calibrator_pickles():
    cal = ConfidenceCalibrator()
    _teach(cal, 0.8, 0.5, n=100)
    back = pickle.loads(pickle.dumps(cal))
    assert (back.a, back.labels, back(0.8)) == (cal.a, cal.labels, cal(0.8))


def test_the_champion_serves_its_calibrated_p_and_scores_candidates_as_served():
    cc = ChampionChallenger(min_labels=50, window=100, every=10, export_metrics=False)
    rng = random.Random(3)
    for _ in range(300):  # the rules say 2g (0.88) for everyone; half of them are degraded
        cc.learn({"ect": "2g", "cqi": 3.0 if (y := rng.random() < 0.5) else 14.0}, y)
    x = {"ect": "2g", "cqi": 8.0}
    assert cc.calibrators["rules"].a < 0.5  # the published 0.88 is overconfident here
    if cc.source == "rules":
        assert cc.predict(x) == cc.calibrators["rules"](0.88) < 0.88
    else:
        assert cc.predict(x) == cc.calibrators["model"](cc.model.predict(x))


def test_observe_judges_without_learning_and_still_demotes_a_model_that_went_wrong():
    cc = ChampionChallenger(min_labels=50, window=100, every=10, export_metrics=False)
    rng = random.Random(4)
    for _ in range(400):  # the model learns what the rules cannot see: the CQI
        y = rng.random() < 0.5
        cc.learn({"radio": "lte", "cqi": 3.0 if y else 14.0}, y)
    assert cc.source == "model"
    labels, slopes = cc.model.labels, {n: c.a for n, c in cc.calibrators.items()}
    for _ in range(400):  # a new network where the CQI means the opposite and the browser's hint is right
        y = rng.random() < 0.5
        cc.observe({"radio": "lte", "cqi": 14.0 if y else 3.0, "ect": "2g" if y else "4g"}, y)
    assert cc.model.labels == labels and {n: c.a for n, c in cc.calibrators.items()} == slopes  # frozen
    assert cc.source == "rules"  # the guard is live


def test_a_well_calibrated_candidate_is_served_as_it_gives_its_p():
    """The estimate wanders on chance; the served map stays the identity, so the ranking over time is the candidate's own."""
    rng = random.Random(5)
    cal = ConfidenceCalibrator()
    wandered = 1.0
    for _ in range(SETTLED_AFTER):
        p = rng.uniform(0.05, 0.95)
        cal.learn(p, rng.random() < p)  # right as often as it says
        wandered = min(wandered, cal.a)
        assert cal.served == 1.0
    assert wandered < 0.97  # the estimate did move ...
    assert [cal(p) for p in (0.0, 0.1234, 0.5, 0.9, 1.0)] == [0.0, 0.1234, 0.5, 0.9, 1.0]  # ... the served p did not


def test_an_overconfident_candidate_is_tempered_once_the_labels_show_it_beyond_noise():
    rng = random.Random(6)
    cal = ConfidenceCalibrator()
    moved_at = None
    for i in range(1, SETTLED_AFTER + 1):
        cal.learn(rng.choice((0.05, 0.95)), rng.random() < 0.5)  # says 5 % or 95 %, right half the time
        if moved_at is None and cal.served < 1.0:
            moved_at = i
            # it moved because the estimate was more than NOISE_Z standard errors away from the identity
            assert (1.0 - cal.a) * math.sqrt(cal.info) > NOISE_Z
    assert moved_at is not None and moved_at <= 30
    assert cal.served < 0.5 and abs(cal.served - cal.a) * math.sqrt(cal.info) <= NOISE_Z
    assert cal(0.95) == pytest.approx(1.0 / (1.0 + math.exp(-cal.served * math.log(0.95 / 0.05))))


def test_a_calibrator_pickled_before_the_served_slope_goes_on_serving_what_it_served():
    old = ConfidenceCalibrator.__new__(ConfidenceCalibrator)
    old.__setstate__({"a": 0.4, "labels": 120})  # the state calibration.py pickled before
    assert (old.served, old.info, old.labels) == (0.4, 0.0, 120) and old(0.9) < 0.9
    fresh = ConfidenceCalibrator.__new__(ConfidenceCalibrator)
    fresh.__setstate__({"a": 1.0, "labels": 0})
    assert fresh.served == 1.0 and fresh(0.9) == 0.9


def test_the_champion_serves_well_calibrated_rules_exactly():
    """Rules right as often as they say: the deployed p is the rules' p on every label (no map moved)."""
    cc = ChampionChallenger(min_labels=50, window=100, every=10, export_metrics=False)
    rng = random.Random(7)
    for _ in range(400):
        kbps = rng.lognormvariate(6.5, 1.0)
        x = {"last_kbps": kbps, "last_age_s": 1.0}
        p = cc.rules.predict(x)
        assert cc.source != "rules" or cc.predict(x) == p
        cc.learn(x, rng.random() < p)
    assert cc.calibrators["rules"].served == 1.0


def test_serve_learn_is_call_then_learn_bit_for_bit():
    """The champion/challenger's one call per label gives what serving then learning gives, past settling too."""
    rng = random.Random(2)
    ours, theirs = ConfidenceCalibrator(), ConfidenceCalibrator()
    for k in range(700):
        p = None if k % 37 == 0 else rng.choice([rng.random(), 0.0, 1.0, 0.97])
        y = rng.random() < (0.9 if k < 200 else 0.3)  # miscalibrated first: the served slope moves
        expected = theirs(p)
        theirs.learn(p, y)
        assert ours.serve_learn(p, y) == expected
        assert (ours.a, ours.labels, ours.served, ours.info) == (theirs.a, theirs.labels, theirs.served, theirs.info)
    assert ours.served != 1.0 and ours.labels > SETTLED_AFTER
