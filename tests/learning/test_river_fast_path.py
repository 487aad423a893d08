"""RiverModel.predict and .learn drive the pipeline's steps themselves (no Pipeline bookkeeping, the
scaler's learn and transform in one pass): the numbers must be River's own, to the bit."""

from __future__ import annotations

import random

import pytest
from river import compose

from edge.learning.model import RiverModel
from tests.learning.test_learning import _plain_river, _random_features, _random_label


@pytest.mark.parametrize(("estimator", "n"), [("logreg", 600), ("hat", 200)])
def test_separate_predict_and_learn_are_rivers_bit_for_bit(estimator, n):
    model = RiverModel(estimator)
    pipeline, plain_step = _plain_river(estimator)
    rng = random.Random(9)
    predicted = 0
    for _ in range(n):
        x = _random_features(rng)
        y = _random_label(x, rng)
        expected = plain_step(x, y)
        ours = model.predict(x)
        model.learn(x, y)
        assert ours == expected  # exact
        predicted += expected is not None
    assert predicted > n // 2
    assert model._split is not None  # the step-by-step path was the one tested
    assert model._logreg == (estimator == "logreg")  # and edge.learning.model.logreg's, for logreg
    if estimator == "logreg":
        a, b = model.pipeline.steps, pipeline.steps
        assert dict(a["LogisticRegression"]._weights) == dict(b["LogisticRegression"]._weights)
        assert a["LogisticRegression"].intercept == b["LogisticRegression"].intercept
        for stat in ("counts", "means", "vars"):
            assert getattr(a["StandardScaler"], stat) == getattr(b["StandardScaler"], stat)


def test_learn_during_predict_mode_takes_rivers_own_calls():
    model, (_, plain_step) = RiverModel(), _plain_river("logreg")
    rng = random.Random(2)
    with compose.learn_during_predict():
        for _ in range(100):
            x = _random_features(rng)
            y = _random_label(x, rng)
            expected = plain_step(x, y)
            ours = model.predict(x)
            model.learn(x, y)
            assert ours == expected
