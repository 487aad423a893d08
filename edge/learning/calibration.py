"""Online calibration of a candidate's confidence: how far to trust its p(degraded) on this network.

:class:`ConfidenceCalibrator` maps a candidate's raw ``p`` to ``σ(s · logit(p))``. It learns a slope
``a`` by stochastic gradient descent on the log-loss of the first :data:`SETTLED_AFTER` labels, with a
step that shrinks as they accumulate (``lr / (1 + labels / SETTLE_LABELS)``), then keeps it. The slope
it *serves*, ``s``, starts at 1 — the identity: the candidate's p exactly as it gives it — and takes
the learned ``a`` only when ``a`` differs from it by more than :data:`NOISE_Z` standard errors of the
estimate (``1/√I``, ``I = Σ q(1−q)·z²`` the Fisher information of the labels learned so far, ``z`` their
log-odds, ``q = σ(a·z)``). Both stay in [:data:`MIN_SLOPE`, 1]: calibration only ever *tempers* a
candidate's confidence, never makes a published threshold surer than it was published.

**Why a served slope that moves only beyond noise.** The served p ranks shoppers across time (what
the deployed decision's ROC-AUC measures, and what a tier threshold acts on): every move of the map
re-ranks the requests served before it against those served after. A map that follows a noisy
estimate re-ranks for nothing: on the Norway 3G traces the rules (there, ``last_request``'s ranking
exactly) are well calibrated, their estimate wandered between 0.87 and 1.0 over its first 300 labels
(never more than 0.73 standard errors from 1), and serving it cost the deployed decision 0.0001
ROC-AUC below ``last_request`` on two seeds of four. With the gate they are served as they are, so
their ranking over the whole stream is their own. A candidate that is miscalibrated is tempered as
soon as the labels show it: on the 5G video traces the rules' estimate falls to 0.10–0.15 within 20
labels (14–22 standard errors from 1) and is served from then on, as before. The same idea as the
switching rule's "margin or noise" (:class:`~edge.learning.model.champion.ChampionChallenger`): no
change on evidence a chance wander could give. The cost, on the video traces: the River model's
estimate (0.81–0.91) never leaves the noise of its 300 labels, so it is served as it gives its p
(slightly overconfident there: log-loss 0.5275 → 0.5302 on page views seed 0), and the deployed
decision's ROC-AUC moved by 0.0006–0.0043, within issue 14's rules (docs/learning.md, per replay).

What it never changes, by construction:

- **the ranking** of the requests of one moment (the map is increasing), nor, while the served
  slope stays (always once settled; on a well-calibrated candidate, from the start), of any two
  requests;
- **which side of 0.5** a p is on (``σ(s · 0) = 0.5``): the lite/full decision at a policy's
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
0.008–0.015; letting the slope exceed 1 cost them 0.002; serving a map fixed while its candidate is
champion (the rules' identity at a cold start) cost the video page views 0.009–0.016 (the rules'
overconfident p served until the River model's election).

    >>> cal = ConfidenceCalibrator()
    >>> cal(0.9)                        # the identity until the labels show otherwise
    0.9
    >>> for _ in range(200):            # a confident p that is right only 60 % of the time
    ...     for y in (True, True, True, False, False):
    ...         cal.learn(0.9, y)
    >>> 0.5 < cal(0.9) < 0.7, cal(0.5), cal(0.2) < 0.5
    (True, 0.5, True)
    >>> cal(None) is None
    True
    >>> fair = ConfidenceCalibrator()   # right as often as it says: the estimate wanders, the map stays
    >>> for i in range(300):
    ...     fair.learn(0.8, i % 5 != 0)
    >>> fair.a < 1.0, fair(0.8)
    (True, 0.8)
"""

from __future__ import annotations

import math

__all__ = ["ConfidenceCalibrator", "LEARNING_RATE", "SETTLE_LABELS", "SETTLED_AFTER", "MIN_SLOPE", "NOISE_Z"]

#: The first SGD step of the slope ...
LEARNING_RATE = 0.1
#: ... halved after this many labels, a third after twice as many, and so on.
SETTLE_LABELS = 30.0
#: The slope is learned from this many labels, then kept: a map that kept moving would put
#: the shoppers of different hours on different scales (the ranking over time is what is judged).
SETTLED_AFTER = 300
#: The slope never falls below this: the map stays increasing, so it never reverses a ranking.
MIN_SLOPE = 0.1
#: The served slope takes the learned one only when they differ by more than this many standard errors
#: of the estimate (about 1 in 370 for one look at a normal estimate; the estimate is looked at after
#: every label, so a margin wider than 2 keeps a chance wander from moving the map: measured, a
#: well-calibrated candidate's wander reached 0.73, a miscalibrated one's 14–22 (docs/learning.md)).
NOISE_Z = 3.0
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
    """``p ↦ σ(s · logit(p))``, ``s`` the served slope, ``a`` the slope learned online (see the module docstring).

    ``info`` is the Fisher information of the slope over the labels learned (its estimate's standard
    error is ``1/√info``).
    """

    __slots__ = ("a", "labels", "served", "info")

    def __init__(self) -> None:
        self.a = 1.0
        self.labels = 0
        self.served = 1.0
        self.info = 0.0

    def __call__(self, p: float | None) -> float | None:
        """The calibrated ``p``; ``None`` (no opinion) stays ``None``, and at a served slope of 1 ``p`` itself."""
        served = self.served
        if p is None or served == 1.0:
            return p
        # _sigmoid(served * _logit(p)), inline (this runs for three candidates on every label)
        if p <= 0.0:
            z = -_MAX_LOGIT
        elif p >= 1.0:
            z = _MAX_LOGIT
        else:
            z = math.log(p / (1.0 - p))
            z = -_MAX_LOGIT if z < -_MAX_LOGIT else _MAX_LOGIT if z > _MAX_LOGIT else z
        z *= served
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def serve_learn(self, p: float | None, degraded: bool) -> float | None:
        """``q = self(p); self.learn(p, degraded); return q``, in one call (the champion/challenger's, per label).

        >>> c = ConfidenceCalibrator()
        >>> c.serve_learn(0.8, True), c.labels, c.serve_learn(None, True), c.labels
        (0.8, 1, None, 1)
        """
        if p is None:
            return None
        q = p if self.served == 1.0 else self(p)
        if self.labels >= SETTLED_AFTER:  # settled: learn would only count the label
            self.labels += 1
        else:
            self.learn(p, degraded)
        return q

    def learn(self, p: float | None, degraded: bool) -> None:
        """One SGD step on the log-loss of ``degraded`` given the raw ``p`` (nothing to learn from ``None``);
        the served slope takes the learned one if they now differ beyond :data:`NOISE_Z` standard errors."""
        if p is None:
            return
        self.labels += 1
        if self.labels > SETTLED_AFTER:
            return  # settled: one scale from here on
        z = _logit(p)
        q = _sigmoid(self.a * z)
        error = q - (1.0 if degraded else 0.0)
        step = LEARNING_RATE / (1.0 + (self.labels - 1) / SETTLE_LABELS)
        self.a = a = min(max(self.a - step * error * z, MIN_SLOPE), 1.0)
        self.info = info = self.info + q * (1.0 - q) * z * z
        if abs(a - self.served) * math.sqrt(info) > NOISE_Z:
            self.served = a

    def __getstate__(self) -> dict[str, float]:
        return {"a": self.a, "labels": self.labels, "served": self.served, "info": self.info}

    def __setstate__(self, state: dict[str, float]) -> None:
        self.a, self.labels = float(state["a"]), int(state["labels"])
        # A calibrator pickled before the served slope served its learned one (the identity before a label):
        # it goes on serving the map it served. Its information starts again from the labels still to learn.
        self.served = float(state.get("served", self.a if self.labels else 1.0))
        self.info = float(state.get("info", 0.0))
