"""The River model's compiled prediction (edge.learning.model.unrolled_predict) is the loop's and River's, to the bit."""

from __future__ import annotations

import copy
import math
import random
from fractions import Fraction

import pytest
from river import compose, linear_model, optim, preprocessing

from edge.learning.model import ChampionChallenger, RiverModel
from edge.learning.model import river as edge_river
from edge.learning.model.linear import COMPILE_AFTER, ScaledLogReg
from edge.learning.model.river import EdgeFeatures
from edge.learning.model.scaler import WelfordScaler
from edge.learning.model.unrolled_predict import compile_features_predict
from tests.learning.test_learning import _POOL, _random_features, _random_label

#: A client's request as edge.pipeline.features gives it (stage_cases' features, with the cell and TCP figures).
BASE = {
    "save_data": 0.0, "device_class": "phone", "os": "android", "ect": "3g", "radio": "lte", "device_memory": 2.0,
    "rtt_ms": 450.0, "downlink_kbps": 600.0, "rsrp": -101.0, "rsrq": -14.0, "sinr": 3.0, "cqi": 7.0, "speed": 22.0,
    "last_ms": 840.0, "last_bytes": 51200.0, "last_kbps": 758.5, "last_rtt_ms": 300.0, "low_end": 1.0, "tcp_rtt_ms": 80.0,
    "cell_degraded_share": 0.25, "cell_samples": 4.0, "last_age_s": 2.0,
}  # fmt: skip


class _Str(str):
    pass


class _Float(float):
    pass


class _Int(int):
    pass


def _odd(rng: random.Random) -> list:
    """Replacements for an input's value that its short path must leave to the general code (or that are edge values)."""
    return [
        lambda v: int(v) if isinstance(v, float) and v == int(v) else v, lambda v: True, lambda v: False,
        lambda v: _Float(v) if isinstance(v, float) else v, lambda v: _Int(3), lambda v: -0.0, lambda v: 0.0,
        lambda v: math.nan, lambda v: math.inf, lambda v: -math.inf, lambda v: _Str(v) if isinstance(v, str) else v,
        lambda v: "nope", lambda v: None, lambda v: rng.choice(["nr", "4g", "ios", "tablet", "5g", "kaios"]),
        lambda v: v * 1.5 if isinstance(v, float) else v, lambda v: Fraction(v) if isinstance(v, float) and math.isfinite(v) else v, lambda v: 1e300,
    ]  # fmt: skip


def _logreg() -> linear_model.LogisticRegression:
    return linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4)


def _state(ours: ScaledLogReg) -> str:
    return repr((ours.names, ours.count, ours.mean, ours.var, ours.std, ours.w, ours.intercept))


def test_the_compiled_prediction_is_the_loops_bit_for_bit_on_random_inputs():
    """compile_features_predict against ScaledLogReg.predict(EdgeFeatures.transform_with_rules(x, p)) (its dot and
    intercept through the sigmoid as predict_inputs adds them), for layouts of the random inputs (new features, NaN,
    inf, strings, ints, bools, values outside the vocabularies, the empty layout), from a learner that learns between
    predictions; one compiled function per layout, compiled early (features it had no slot for then: looked up)."""
    rng = random.Random(33)
    features = EdgeFeatures()
    ours = ScaledLogReg.from_river(WelfordScaler(), _logreg())
    layouts = [tuple(_random_features(rng)) for _ in range(8)] + [tuple(n for n in _POOL if n != "weird"), (), tuple(BASE)]
    runs: dict = {}
    for k in range(1200):
        layout = layouts[k % len(layouts)]
        x = {name: _POOL[name](rng) if name in _POOL else BASE[name] for name in layout}
        p = rng.choice([None, rng.random(), 0.0, 1.0])
        rules = k % 7 != 0
        if layout not in runs and k > 40:
            runs[layout] = compile_features_predict(layout, ours.index.get, edge_river._TABLES)
        before = _state(ours)
        expected = ours.predict(EdgeFeatures(rules=rules).transform_with_rules(x, p))
        if layout in runs:
            dot = runs[layout](x, x.values(), p, 60.0, rules, ours.mean, ours.var, ours.std, ours.w, ours.index)
            assert repr(edge_river_sigmoid(dot + ours.intercept)) == repr(expected), (x, p)
        assert _state(ours) == before  # a prediction never changes the learner (no slot made for a new feature)
        if rng.random() < 0.7:
            ours.predict_learn(features.transform_with_rules(x, p), _random_label(x, rng))


def edge_river_sigmoid(z: float) -> float:
    from edge.learning.model.linear import _sigmoid

    return _sigmoid(z)


def test_the_compiled_short_paths_give_the_general_codes_prediction_bit_for_bit():
    """The short paths (an exact str for a one-hot name, a finite float; the slots remembered per value and band)
    against the loop, from a state where the base's features have slots and some indicators a weight (a prior's), with
    each input at times replaced by an edge value (None, NaN, ±0.0, ±inf, an int, a bool, int/float/str subclasses, a
    Fraction, a value outside the vocabulary, another one inside it). One function per layout, reused across learns."""
    rng = random.Random(34)
    features = EdgeFeatures()
    estimator = _logreg()
    for name, weight in {"radio=lte": 0.3, "rsrp_band=2": -0.2, "os=android": 0.0, "last_band=3": 0.1, "ect=3g": 0.2}.items():
        estimator._weights[name] = weight
    ours = ScaledLogReg.from_river(WelfordScaler(), estimator)
    for _ in range(40):
        x = dict(BASE, last_kbps=rng.uniform(100.0, 2000.0), rsrp=rng.choice([-101.0, -90.0, -120.0]))
        ours.predict_learn(features.transform_with_rules(x, 0.4), rng.random() < 0.5)
    layouts = [tuple(BASE), tuple(n for n in BASE if n not in ("tcp_rtt_ms", "cell_degraded_share", "last_kbps")), ("radio", "rsrp", "save_data")]
    runs = {layout: compile_features_predict(layout, ours.index.get, edge_river._TABLES) for layout in layouts}
    odd = _odd(rng)
    for k in range(2000):
        layout = layouts[k % len(layouts)]
        x = {name: BASE[name] if rng.random() < 0.85 else rng.choice(odd)(BASE[name]) for name in layout}
        p = rng.choice([None, 0.4, rng.random()])
        before = _state(ours)
        dot = runs[layout](x, x.values(), p, 60.0, True, ours.mean, ours.var, ours.std, ours.w, ours.index)
        assert repr(edge_river_sigmoid(dot + ours.intercept)) == repr(ours.predict(features.transform_with_rules(x, p))), (x, p)
        assert _state(ours) == before
        if rng.random() < 0.5:
            ours.predict_learn(features.transform_with_rules(x, p), rng.random() < 0.3)


def _rivers() -> compose.Pipeline:
    """River's own pipeline: EdgeFeatures | River's StandardScaler | LogisticRegression (the default's arithmetic)."""
    return compose.Pipeline(EdgeFeatures(), preprocessing.StandardScaler(), _logreg())


@pytest.mark.parametrize("learn", ["learn", "predict_then_learn"])
def test_river_model_predict_is_rivers_pipeline_and_the_reference_loop_bit_for_bit(learn):
    """RiverModel.predict against River's StandardScaler | LogisticRegression pipeline's predict_proba_one and against
    the reference loop (ScaledLogReg.predict of transform_one), across learns, for layouts that repeat (before and after
    their compilation at the COMPILE_AFTER-th prediction), with edge values in the inputs."""
    rng = random.Random(35)
    model, rivers = RiverModel(), _rivers()
    odd = _odd(rng)
    layouts = [tuple(BASE), tuple(_random_features(rng)), ("radio", "cqi"), tuple(n for n in _POOL if n != "weird")]
    seen_layouts: dict = {}
    for k in range(1600):
        layout = layouts[k % len(layouts)] if k % 9 else tuple(_random_features(rng))
        x = {name: (BASE[name] if name in BASE and rng.random() < 0.7 else _POOL[name](rng)) if name in _POOL else BASE[name] for name in layout}
        if rng.random() < 0.2:
            name = rng.choice(list(x) or ["radio"])
            x[name] = rng.choice(odd)(x.get(name, 1.0))
        y = _random_label(x, rng)
        for _ in range(rng.choice([1, 1, 3])):  # a layout predicted more often than it is learned
            got = model.predict(x)
            seen_layouts[layout] = seen_layouts.get(layout, 0) + 1
            if model.seen[False] and model.seen[True]:
                expected = rivers.predict_proba_one(x)[True]
                assert repr(got) == repr(min(max(expected, 0.0), 1.0)), x
                fused = model._fused
                assert repr(got) == repr(fused.predict(model._features.transform_one(x))), x
        if learn == "learn":
            model.learn(x, y)
        else:
            model.predict_then_learn(x, y)
        rivers.learn_one(x, y)
    assert len(model._fused._p_passes) == sum(1 for n in seen_layouts.values() if n >= COMPILE_AFTER)
    assert len(model._fused._p_passes) >= 4


def test_a_prediction_makes_no_slot_and_a_later_learned_feature_counts():
    """A compiled prediction for inputs whose features the learner has never learned (an unknown category, a new
    number, a band it never saw) adds nothing for them and leaves the learner as it was; once they are learned, the same
    compiled function counts them (looked up, then remembered), as the loop does."""
    model = RiverModel()
    for k in range(30):
        model.learn({"radio": "lte", "cqi": 3.0 + k % 3}, True)
        model.learn({"radio": "lte", "cqi": 12.0 + k % 2}, False)
    x = {"radio": "nr", "cqi": 5.0, "speed": 80.0}
    names = list(model._fused.names)
    for _ in range(2 * COMPILE_AFTER):
        assert model.predict(x) == model._fused.predict(model._features.transform_one(x))
    assert model._fused.names == names and len(model._fused._p_passes) == 1
    for k in range(20):
        model.learn({"radio": "nr", "cqi": 5.0 + k % 4, "speed": 10.0 * k}, k % 2 == 0)
    assert "radio=nr" in model._fused.index and "speed" in model._fused.index
    for _ in range(3):
        assert model.predict(x) == model._fused.predict(model._features.transform_one(x))
    assert len(model._fused._p_passes) == 1


def test_layouts_that_could_collide_keep_the_loop():
    """A layout with a name the transform could also make (holding '=' or one of its tail's names) is never compiled."""
    model = RiverModel()
    for k in range(20):
        model.learn({"radio": "lte", "cqi": 3.0 + k % 3}, True)
        model.learn({"radio": "nr", "cqi": 12.0 + k % 2}, False)
    for x in ({"radio=lte": 2.0, "cqi": 4.0}, {"no_tcp": 0.0, "radio": "lte"}, {7: 1.0, "cqi": 4.0}):
        for _ in range(2 * COMPILE_AFTER):
            assert model.predict(x) == model._fused.predict(model._features.transform_one(x))
    assert len(model._fused._p_passes) == 0


def test_the_champion_serves_the_river_models_compiled_prediction_calibrated():
    """ChampionChallenger.predict with the River model elected (labels the rules cannot rank, as bench_stages sets it
    up): the model's calibrated p, the same as from the reference loop, before and after the layout's compilation."""
    rng = random.Random(36)
    cc = ChampionChallenger(export_metrics=False)
    for _ in range(1500):
        x = dict(BASE, last_kbps=rng.lognormvariate(7, 1.2), rsrp=rng.uniform(-120.0, -80.0))
        cc.learn(x, x["rsrp"] < -100.0)
    assert cc.source == "model"
    for k in range(3 * COMPILE_AFTER):
        x = dict(BASE, rsrp=-101.0 - k)
        twin = copy.deepcopy(cc)  # a copy has no compiled passes: its River model predicts by the loop
        loop = twin.model._fused_learner().predict(twin.model._features.transform_one(x))  # type: ignore[union-attr]
        assert cc.predict(x) == cc.calibrators["model"](min(max(loop, 0.0), 1.0))  # type: ignore[index]


def test_river_model_learn_in_one_pass_is_rivers_pipeline_bit_for_bit():
    """RiverModel.learn (the transform and the pass in one for a layout seen often, as predict_then_learn) against River's
    StandardScaler | LogisticRegression pipeline: every prediction after each label, and the state written back, equal."""
    rng = random.Random(37)
    model, rivers = RiverModel(), _rivers()
    odd = [f for f in _odd(rng) if f(1.0) != 1e300]  # (1e300 overflows the variance: NaN weights, as below)
    layouts = [tuple(BASE), ("radio", "cqi", "last_kbps"), tuple(n for n in _POOL if n != "weird")]
    for k in range(900):
        layout = layouts[k % len(layouts)]
        x = {name: (BASE[name] if name in BASE and rng.random() < 0.7 else _POOL[name](rng)) if name in _POOL else BASE[name] for name in layout}
        name = rng.choice(list(x))
        if rng.random() < 0.2 and name not in ("last_age_s", "cell_samples"):
            # (not those two: a NaN or -inf there makes a NaN gradient, which River spreads to the weights of
            # indicators at their constant and the flat learner does not, since 42c815f and before: not this test's)
            x[name] = rng.choice(odd)(x[name])
        y = _random_label(x, rng)
        model.learn(x, y)
        rivers.learn_one(x, y)
        if model.seen[False] and model.seen[True]:
            assert repr(model.predict(x)) == repr(min(max(rivers.predict_proba_one(x)[True], 0.0), 1.0)), x
    assert len(model._fused._x_passes) == len(layouts)
    pipeline = model.pipeline  # written back to River's objects
    assert dict(pipeline["LogisticRegression"]._weights) == dict(rivers["LogisticRegression"]._weights)
    assert pipeline["LogisticRegression"].intercept == rivers["LogisticRegression"].intercept
    assert pipeline["StandardScaler"].counts == dict(rivers["StandardScaler"].counts)
