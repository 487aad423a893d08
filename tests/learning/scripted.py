"""A River-model stand-in for the champion/challenger's tests (test_stacker.py, test_support.py)."""

from __future__ import annotations

from edge.learning.model import ChampionChallenger


class Scripted:
    """A River-model stand-in whose p is ``x["p_model"]`` (and learns nothing)."""

    prior = None
    estimator = "scripted"

    def __init__(self):
        self.labels = 0

    def predict(self, x):
        return x.get("p_model")

    def predict_then_learn(self, x, degraded):
        self.labels += 1
        return self.predict(x)

    def learn(self, x, degraded):
        self.labels += 1


def scripted_cc(**kw) -> ChampionChallenger:
    """A champion/challenger (no metrics exported) around a :class:`Scripted` model."""
    return ChampionChallenger(Scripted(), export_metrics=False, **kw)
