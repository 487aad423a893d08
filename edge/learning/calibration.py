"""Online calibration of a candidate's confidence: how far to trust its p(degraded) on this network.

:class:`ConfidenceCalibrator` maps a candidate's raw ``p`` to ``σ(a · logit(p))`` and learns the
one number ``a`` by stochastic gradient descent on the log-loss of the first
:data:`SETTLED_AFTER` labels, with a step that shrinks as they accumulate
(``lr / (1 + labels / SETTLE_LABELS)``); then ``a`` is kept. It starts as the identity (``a = 1``)
and stays in [:data:`MIN_SLOPE`, 1]: it only ever *tempers* a candidate's confidence, never makes
a published threshold surer than it was published.

What it never changes, by construction:

- **the ranking** of the requests of one moment (the map is increasing), nor, once settled, of
  any two requests (the map no longer moves);
- **which side of 0.5** a p is on (``σ(a · 0) = 0.5``): the lite/full decision at a policy's
  0.5 threshold is the candidate's own; calibration moves how confident it is, hence the tiers
  at other thresholds (the demo policy's minimal at 0.95).

Why the champion/challenger serves calibrated candidates
(:class:`~edge.learning.model.champion.ChampionChallenger`): the rules' p, the last request's
``T/(T+kbps)`` and the River model's p are on different scales, and a published threshold can be
overconfident on a given network (on the 5G video traces a low measured throughput is often the
player's own pacing, not the network). When the champion changes, shoppers served before and
after were ranked on scales that did not match: on the video traces the rules' overconfident
first 125–250 labels cost the deployed decision 0.010–0.017 ROC-AUC over the whole stream; with
calibrated candidates, 0.003–0.006 (docs/learning.md). What was tried and left: also learning a
level (``b``, following the recent share of degraded labels), or never settling: both kept the
scale moving over time, and on the 3G traces (where the throughput alone ranks best) that cost
0.008–0.015; letting the slope exceed 1 cost them 0.002.

    >>> cal = ConfidenceCalibrator()
    >>> cal(0.9)                        # the identity until it has learned
    0.9
    >>> for _ in range(200):            # a confident p that is right only 60 % of the time
    ...     for y in (True, True, True, False, False):
    ...         cal.learn(0.9, y)
    >>> 0.5 < cal(0.9) < 0.7, cal(0.5), cal(0.2) < 0.5
    (True, 0.5, True)
    >>> cal(None) is None
    True
"""

from __future__ import annotations

import math

__all__ = ["ConfidenceCalibrator", "LEARNING_RATE", "SETTLE_LABELS", "SETTLED_AFTER", "MIN_SLOPE"]

#: The first SGD step of the slope ...
LEARNING_RATE = 0.1
#: ... halved after this many labels, a third after twice as many, and so on.
SETTLE_LABELS = 30.0
#: The slope is learned from this many labels, then kept: a map that kept moving would put
#: the shoppers of different hours on different scales (the ranking over time is what is judged).
SETTLED_AFTER = 300
#: The slope never falls below this: the map stays increasing, so it never reverses a ranking.
MIN_SLOPE = 0.1
#: Log-odds are clipped to ±this (p within 4.5e-5 of 0 or 1): a p of exactly 0 or 1 is evidence, not infinity.
_MAX_LOGIT = 10.0


def _logit(p: float) -> float:
    if p <= 0.0:
        return -_MAX_LOGIT
    if p >= 1.0:
        return _MAX_LOGIT
    z = math.log(p / (1.0 - p))
    return -_MAX_LOGIT if z < -_MAX_LOGIT else _MAX_LOGIT if z > _MAX_LOGIT else z


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class ConfidenceCalibrator:
    """``p ↦ σ(a · logit(p))``, ``a`` learned online (see the module docstring)."""

    __slots__ = ("a", "labels")

    def __init__(self) -> None:
        self.a = 1.0
        self.labels = 0

    def __call__(self, p: float | None) -> float | None:
        """The calibrated ``p``; ``None`` (no opinion) stays ``None``."""
        if p is None or self.labels == 0:
            return p
        return _sigmoid(self.a * _logit(p))

    def learn(self, p: float | None, degraded: bool) -> None:
        """One SGD step on the log-loss of ``degraded`` given the raw ``p`` (nothing to learn from ``None``)."""
        if p is None:
            return
        self.labels += 1
        if self.labels > SETTLED_AFTER:
            return  # settled: one scale from here on
        z = _logit(p)
        error = _sigmoid(self.a * z) - (1.0 if degraded else 0.0)
        step = LEARNING_RATE / (1.0 + (self.labels - 1) / SETTLE_LABELS)
        self.a = min(max(self.a - step * error * z, MIN_SLOPE), 1.0)

    def __getstate__(self) -> dict[str, float]:
        return {"a": self.a, "labels": self.labels}

    def __setstate__(self, state: dict[str, float]) -> None:
        self.a, self.labels = float(state["a"]), int(state["labels"])
