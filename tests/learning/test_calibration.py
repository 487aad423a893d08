"""ConfidenceCalibrator (edge/learning/calibration.py) and the champion/challenger serving calibrated candidates."""

from __future__ import annotations

import pickle
import random

from edge.learning.calibration import MIN_SLOPE, SETTLED_AFTER, ConfidenceCalibrator
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
