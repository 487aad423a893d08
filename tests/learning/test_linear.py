"""ScaledLogReg (edge.learning.model.linear) is River's StandardScaler | LogisticRegression, to the bit."""

from __future__ import annotations

import copy
import math
import pickle
import random
from fractions import Fraction

from river import linear_model, optim, preprocessing

from edge.learning.model import RiverModel
from edge.learning.model.linear import ScaledLogReg
from edge.learning.model.scaler import WelfordScaler
from tests.learning.test_learning import _random_features, _random_label
from tests.learning.test_scaler import _random_z


def _logreg() -> linear_model.LogisticRegression:
    return linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4)


def _indicator_z(rng: random.Random) -> dict:
    """_random_z plus one-hot indicators (always 1.0 when present: variance 0, the learner's short path)."""
    z = _random_z(rng)
    for name in ("radio=lte", "radio=nr", "no_cell"):
        if rng.random() < 0.4:
            z[name] = 1.0
    return z


def _same(ours: ScaledLogReg, rivers) -> None:
    scaler, estimator = WelfordScaler(), _logreg()
    ours.write_back(scaler, estimator)
    theirs = rivers["LogisticRegression"]
    assert dict(estimator._weights) == dict(theirs._weights)
    assert estimator.intercept == theirs.intercept
    assert estimator.optimizer.n_iterations == theirs.optimizer.n_iterations
    assert scaler.counts == dict(rivers["StandardScaler"].counts)
    assert scaler.means == {k: v for k, v in rivers["StandardScaler"].means.items() if k in rivers["StandardScaler"].counts}
    assert scaler.vars == {k: v for k, v in rivers["StandardScaler"].vars.items() if k in rivers["StandardScaler"].counts}


def _predict_learn_as_river(ours: ScaledLogReg, rivers, rng: random.Random, n: int, positive_rate: float) -> None:
    """``n`` random indicator labels through both: each of our predictions equals River's, to the bit."""
    for _ in range(n):
        z = _indicator_z(rng)
        y = rng.random() < positive_rate
        expected = rivers.predict_proba_one(z)[True]
        rivers.learn_one(z, y)
        assert ours.predict_learn(z, y) == expected


def test_predict_learn_is_rivers_scaler_and_logistic_regression_bit_for_bit():
    """Every prediction (before learning) and, at the end, every statistic and weight are River's exactly:
    changing any one operation of the fused pass (an order, a rate, the L2 term, Welford's update) fails here."""
    rng = random.Random(3)
    rivers = preprocessing.StandardScaler() | _logreg()
    ours = ScaledLogReg.from_river(WelfordScaler(), _logreg())
    _predict_learn_as_river(ours, rivers, rng, 1500, positive_rate=0.3)
    for _ in range(200):
        z = _indicator_z(rng)
        assert ours.predict(z) == rivers.predict_proba_one(z)[True]
    _same(ours, rivers)


def test_a_started_state_with_weights_on_indicators_continues_as_river():
    """From a prior-like state (statistics and weights already set, an indicator weighted): the same numbers."""
    rng = random.Random(4)
    rivers = preprocessing.StandardScaler() | _logreg()
    for _ in range(300):
        z = _indicator_z(rng)
        rivers.learn_one(z, rng.random() < 0.5)
    for name in ("radio=lte", "no_cell", "never_seen"):
        rivers["LogisticRegression"]._weights[name] = 0.3
    scaler = WelfordScaler.from_river(rivers["StandardScaler"])
    ours = ScaledLogReg.from_river(scaler, copy.deepcopy(rivers["LogisticRegression"]))
    _predict_learn_as_river(ours, rivers, rng, 500, positive_rate=0.5)
    _same(ours, rivers)


def test_river_model_hands_its_state_to_the_pipeline_when_read_and_when_pickled():
    rng = random.Random(8)
    model, twin = RiverModel(), RiverModel()
    for _ in range(300):
        x = _random_features(rng)
        y = _random_label(x, rng)
        assert model.predict_then_learn(x, y) == twin.predict_then_learn(x, y)
    assert isinstance(model._fused, ScaledLogReg)  # the flat learner holds the state now
    restored = pickle.loads(pickle.dumps(model))  # River's objects are pickled, brought up to date
    assert "_fused" not in restored.__dict__
    weights = dict(model.pipeline["LogisticRegression"]._weights)  # a read hands the state back ...
    assert model._fused is None
    assert weights == dict(restored.pipeline["LogisticRegression"]._weights) == dict(twin.pipeline["LogisticRegression"]._weights)
    for other in (model, twin):  # ... and what the reader changes is what is learned from
        other.pipeline["LogisticRegression"].intercept += 1.0
    for _ in range(100):
        x = _random_features(rng)
        y = _random_label(x, rng)
        p, q = model.predict_then_learn(x, y), restored.predict_then_learn(x, y)
        assert p == twin.predict_then_learn(x, y)
        assert q is not None and p is not None and q != p  # restored missed the change: a different model


def test_river_learn_during_predict_mode_takes_rivers_calls_from_the_state_the_flat_learner_had():
    from river import compose

    from tests.learning.test_learning import _plain_river

    model, (_, plain_step) = RiverModel(), _plain_river("logreg")
    rng = random.Random(12)
    for i in range(300):
        x = _random_features(rng)
        y = _random_label(x, rng)
        if i == 150:
            assert isinstance(model._fused, ScaledLogReg)
            mode = compose.learn_during_predict()
            mode.__enter__()  # River's calls from here on, on River's objects brought up to date
        expected = plain_step(x, y)
        assert model.predict_then_learn(x, y) == expected
    mode.__exit__(None, None, None)
    assert model._fused is None


def test_straight_line_passes_give_the_loops_numbers_bit_for_bit():
    """A few layouts seen again and again get their compiled pass (edge.learning.model.unrolled): every
    prediction, statistic and weight stays River's, and the compiled pass gives the loop's result exactly."""
    from edge.learning.model.linear import COMPILE_AFTER
    from edge.learning.model.unrolled import compile_pass

    rng = random.Random(5)
    layouts = [_indicator_z(rng) for _ in range(4)]
    rivers = preprocessing.StandardScaler() | _logreg()
    ours = ScaledLogReg.from_river(WelfordScaler(), _logreg())
    for k in range(600):
        z = {name: rng.gauss(1.0, 2.0) if not name.startswith(("radio", "no_")) else 1.0 for name in layouts[k % 4]}
        y = rng.random() < 0.3
        if k % 50 == 7:  # the compiled pass against the loop, on copies of the same state
            twin = copy.deepcopy(ours)
            lists = (twin.count, twin.mean, twin.var, twin.std, twin.w, twin.constant)
            assert compile_pass([twin.index[n] for n in z])(z.values(), *lists) == copy.deepcopy(ours).first_pass(z)
        expected = rivers.predict_proba_one(z)[True]
        rivers.learn_one(z, y)
        assert ours.predict_learn(z, y) == expected
    assert len(ours._passes) == 4 and 600 // 4 > COMPILE_AFTER
    _same(ours, rivers)


def test_the_transform_and_the_pass_compiled_in_one_give_the_two_steps_numbers_bit_for_bit():
    """unrolled.compile_features_pass against EdgeFeatures.transform_with_rules then ScaledLogReg.first_pass, on
    twins of one state, for layouts of the random inputs (new features, NaN, inf, strings, ints); and a RiverModel
    whose layouts repeat (so that its compiled passes are used) against River's own pipeline."""
    from edge.learning.model import river as edge_river
    from edge.learning.model.river import EdgeFeatures
    from edge.learning.model.unrolled import compile_features_pass
    from tests.learning.test_learning import _POOL, _plain_river

    rng = random.Random(8)
    features = EdgeFeatures()
    ours = ScaledLogReg.from_river(WelfordScaler(), _logreg())
    layouts = [tuple(_random_features(rng)) for _ in range(8)] + [tuple(n for n in _POOL if n != "weird"), ()]
    for k in range(600):
        layout = layouts[k % len(layouts)]
        x = {name: _POOL[name](rng) for name in layout}
        p = rng.choice([None, rng.random(), 0.0])
        twin = copy.deepcopy(ours)
        run = compile_features_pass(layout, ours.index.get, edge_river._TABLES)
        f = twin
        got = run(x, x.values(), p, 60.0, True, f.count, f.mean, f.var, f.std, f.w, f.constant, f.index, f._slot)
        z = features.transform_with_rules(x, p)
        assert repr(got) == repr(ours.first_pass(z)), (x, p)
        assert twin.names == ours.names and repr((twin.count, twin.mean, twin.var, twin.w)) == repr((ours.count, ours.mean, ours.var, ours.w))
        ours.finish(*got, rng.random() < 0.3)
    model, (_, step) = RiverModel(), _plain_river("logreg")
    for k in range(900):
        x = {name: _POOL[name](rng) for name in layouts[k % 3]}
        y = _random_label(x, rng)
        assert model.predict_then_learn(x, y) == step(x, y)
    assert len(model._fused._x_passes) == 3


class _Str(str):
    pass


class _Float(float):
    pass


def test_the_compiled_short_paths_give_the_general_codes_numbers_bit_for_bit():
    """compile_features_pass's short paths (a float at its feature's constant, a finite float, an exact str for a
    one-hot name; the slots it remembers) against the two steps, from a state where most features are constants (as
    a client's repeated inputs make them: stage_cases' state) and each input at times replaced by a value the short
    paths must leave to the general code: the constant as an int, a bool, a float subclass or a Fraction (equal, not a number to the transform), -0.0 for 0.0, NaN,
    ±inf, a str subclass, a value outside the vocabulary, None. One compiled function per layout, reused label after
    label (its remembered slots included), on twins of the learner."""
    from edge.learning.model import river as edge_river
    from edge.learning.model.river import EdgeFeatures
    from edge.learning.model.unrolled import compile_features_pass

    rng = random.Random(14)
    features = EdgeFeatures()
    from tests.learning.test_predict import BASE as base
    odd = [lambda v: int(v) if isinstance(v, float) and v == int(v) else v, lambda v: True, lambda v: _Float(v) if isinstance(v, float) else v,
           lambda v: -0.0, lambda v: math.nan, lambda v: math.inf, lambda v: -math.inf, lambda v: _Str(v) if isinstance(v, str) else v,
           lambda v: "nope", lambda v: None, lambda v: rng.choice(["nr", "4g", "ios", "tablet"]), lambda v: v * 1.5 if isinstance(v, float) else v,
           lambda v: Fraction(v) if isinstance(v, float) else v]  # fmt: skip
    estimator = _logreg()
    for name, weight in {"radio=lte": 0.3, "rsrp_band=2": -0.2, "os=android": 0.0, "last_band=3": 0.1}.items():
        estimator._weights[name] = weight  # weighted indicators (a prior's): not constants, their short path learns them
    ours = ScaledLogReg.from_river(WelfordScaler(), estimator)
    for _ in range(40):  # the base's features settle at their constants
        ours.finish(*ours.first_pass(features.transform_with_rules(dict(base, last_kbps=rng.uniform(100.0, 2000.0)), 0.4)), rng.random() < 0.5)
    assert sum(c == c for c in ours.constant) > 15
    layouts = [tuple(base), tuple(n for n in base if n not in ("tcp_rtt_ms", "cell_degraded_share", "last_kbps")), ("radio", "rsrp", "save_data")]
    runs = {layout: compile_features_pass(layout, ours.index.get, edge_river._TABLES) for layout in layouts}
    for k in range(1500):
        layout = layouts[k % len(layouts)]
        x = {name: base[name] if rng.random() < 0.85 else rng.choice(odd)(base[name]) for name in layout}
        p = rng.choice([None, 0.4, rng.random()])
        twin = copy.deepcopy(ours)
        f = twin
        got = runs[layout](x, x.values(), p, 60.0, True, f.count, f.mean, f.var, f.std, f.w, f.constant, f.index, f._slot)
        assert repr(got) == repr(ours.first_pass(features.transform_with_rules(x, p))), (x, p)
        assert twin.names == ours.names and repr((twin.count, twin.mean, twin.var, twin.w, twin.constant)) == repr((ours.count, ours.mean, ours.var, ours.w, ours.constant))
        ours.finish(*got, rng.random() < 0.3)


def test_a_state_with_an_infinite_constant_keeps_the_general_code():
    """The compiled short paths take a float equal to its feature's constant as finite; learning never makes an infinite
    constant, but a River state read by from_river might hold one: that learner compiles no features pass."""
    scaler = WelfordScaler()
    scaler.stats["speed"] = (3, math.inf, 0.0, 0.0)
    ours = ScaledLogReg.from_river(scaler, _logreg())
    assert ours.constant == [math.inf]
    for _ in range(20):
        assert ours.features_pass({"speed": math.inf}, {}) is None
    assert len(ours._x_passes) == 0


def test_a_clipped_gradient_is_rivers_bit_for_bit():
    """finish's clamp (min and max written as comparisons) against River's, with the clip reached, as a float and an int."""
    for clip in (0.05, 1, 1e12):
        def logreg(clip=clip):
            return linear_model.LogisticRegression(optimizer=optim.SGD(0.5), l2=1e-4, clip_gradient=clip)
        rivers = preprocessing.StandardScaler() | logreg()
        ours = ScaledLogReg.from_river(WelfordScaler(), logreg())
        _predict_learn_as_river(ours, rivers, random.Random(21), 400, positive_rate=0.5)
        _same(ours, rivers)
