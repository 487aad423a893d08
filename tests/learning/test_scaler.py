"""WelfordScaler is River's StandardScaler to the bit: driven side by side, and converted from one."""

from __future__ import annotations

import copy
import pickle
import random

from river import compose, linear_model, optim, preprocessing

from edge.learning.model import DEFAULT_PRIOR, EdgeFeatures, RiverModel
from edge.learning.model.scaler import WelfordScaler
from edge.learning.prior import apply_prior, load_prior
from tests.learning.test_learning import _random_features, _random_label


def _random_z(rng: random.Random) -> dict:
    """A scaled step's input: features come and go, some are constant (variance 0), some ints, some huge."""
    z = {}
    for i in range(12):
        if rng.random() < 0.6:
            z[f"f{i}"] = rng.gauss(0.0, 10.0 ** rng.randint(-3, 6))
    if rng.random() < 0.5:
        z["constant"] = 1.0
    if rng.random() < 0.3:
        z["int"] = rng.randint(-5, 5)
    if rng.random() < 0.05:
        z[f"rare{rng.randint(0, 50)}"] = rng.random()
    return z


def _same_stats(ours: WelfordScaler, rivers: preprocessing.StandardScaler) -> None:
    assert ours.counts == dict(rivers.counts)
    assert ours.means == {k: v for k, v in rivers.means.items() if k in rivers.counts}
    assert ours.vars == {k: v for k, v in rivers.vars.items() if k in rivers.counts}


def test_every_method_gives_rivers_numbers_bit_for_bit():
    rng = random.Random(1)
    ours, rivers = WelfordScaler(), preprocessing.StandardScaler()
    for step in range(3000):
        z = _random_z(rng)
        kind = step % 3
        if kind == 0:  # the prequential step: transform, learn, transform again
            before = rivers.transform_one(z)
            rivers.learn_one(z)
            assert ours.predict_learn_transform(z) == (before, rivers.transform_one(z))
        elif kind == 1:  # learn then transform (RiverModel.learn)
            rivers.learn_one(z)
            assert ours.learn_transform(z) == rivers.transform_one(z)
        else:  # River's own API
            assert ours.transform_one(z) == rivers.transform_one(z)
            ours.learn_one(z)
            rivers.learn_one(z)
        probe = _random_z(rng)  # a prediction only, unseen features included
        assert list(ours.transform_one(probe).items()) == list(rivers.transform_one(probe).items())
    _same_stats(ours, rivers)


def test_a_river_scaler_converts_and_goes_on_as_river_would():
    rng = random.Random(2)
    rivers = preprocessing.StandardScaler()
    for _ in range(500):
        z = _random_z(rng)
        rivers.transform_one(_random_z(rng))  # River puts a 0 variance for an unseen feature here
        rivers.learn_one(z)
    ours = WelfordScaler.from_river(rivers)
    _same_stats(ours, rivers)
    for _ in range(500):
        z = _random_z(rng)
        before = rivers.transform_one(z)
        rivers.learn_one(z)
        assert ours.predict_learn_transform(z) == (before, rivers.transform_one(z))
    _same_stats(ours, rivers)


def _rivers_pipeline() -> compose.Pipeline:
    """make_pipeline("logreg") as it was before WelfordScaler: River's own StandardScaler."""
    clf = linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4)
    return EdgeFeatures() | preprocessing.StandardScaler() | clf


def _old_river_model() -> RiverModel:
    """A RiverModel as checkpoints before WelfordScaler hold it."""
    model = RiverModel()
    model.pipeline = _rivers_pipeline()
    return model


def test_an_old_checkpoints_river_model_converts_on_load_and_learns_as_river():
    model = _old_river_model()
    pipeline, seen = _rivers_pipeline(), {False: 0, True: 0}  # River's own, throughout

    def plain_step(x, y):  # as RiverModel predicts then learns, in River's own calls
        p = None
        if seen[False] and seen[True]:
            p = min(max(float(pipeline.predict_proba_one(x)[True]), 0.0), 1.0)
        pipeline.learn_one(x, y)
        seen[y] += 1
        return p

    rng = random.Random(3)
    for _ in range(300):
        x = _random_features(rng)
        y = _random_label(x, rng)
        assert model.predict_then_learn(x, y) == plain_step(x, y)
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored.pipeline["StandardScaler"]) is WelfordScaler
    assert list(restored.pipeline.steps) == ["EdgeFeatures", "StandardScaler", "LogisticRegression"]
    for _ in range(300):
        x = _random_features(rng)
        y = _random_label(x, rng)
        assert restored.predict_then_learn(x, y) == plain_step(x, y)
        probe = _random_features(rng)
        assert restored.predict(probe) == min(max(pipeline.predict_proba_one(probe)[True], 0.0), 1.0)
    _same_stats(restored.pipeline["StandardScaler"], pipeline["StandardScaler"])


def test_a_prior_sets_the_same_state_as_on_rivers_scaler():
    prior = load_prior(DEFAULT_PRIOR)
    ours = RiverModel(prior=DEFAULT_PRIOR)
    rivers = _old_river_model()
    apply_prior(rivers.pipeline, prior)
    rivers.prior = prior.name
    _same_stats(ours.pipeline["StandardScaler"], rivers.pipeline["StandardScaler"])
    rng = random.Random(4)
    for _ in range(300):
        x = _random_features(rng)
        y = _random_label(x, rng)
        assert ours.predict_then_learn(x, y) == rivers.predict_then_learn(x, y)
    copy.deepcopy(ours)  # and it copies (River's clone and the checkpoints rely on it)


def test_the_default_pipeline_keeps_rivers_step_names():
    model = RiverModel()
    assert isinstance(model.pipeline, compose.Pipeline)
    assert list(model.pipeline.steps) == ["EdgeFeatures", "StandardScaler", "LogisticRegression"]
    assert type(model.pipeline["StandardScaler"]) is WelfordScaler
