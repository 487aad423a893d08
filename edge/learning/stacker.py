"""The champion/challenger's learned stacker: one online logistic regression over its candidates' log-odds.

:class:`Stacker` predicts ``σ(b + Σ wᵢ·zᵢ + Σ vᵢ·mᵢ)``, where ``zᵢ`` is candidate ``i``'s log-odds
(clipped to ±:data:`MAX_LOGIT`) and ``mᵢ`` is 1 when that candidate has no opinion (its ``zᵢ`` is
then 0). Its inputs (:data:`INPUTS`) are the rules, the River model and the simple predictors edge
computes from the request alone — the last request's throughput, the client's smoothed throughput
(the connection-class idea) and the cell's degraded share — each as the champion/challenger scores
it (:mod:`edge.learning.model.champion`). It starts as the rules (``w_rules = 1``, every other
weight 0: a cold start serves the rules' p) and learns each label by AdaGrad (a step per weight of
``LEARNING_RATE / √(Σ g²)``, so the steps shrink as evidence accumulates and the scale settles).

Why a stacker rather than electing the simple predictors one by one: their whole-stream ranking
comes from telling slow periods from fast ones, and a mid-stream switch to one of them mixes its
scale with the previous champion's (measured in docs/learning.md: electable, the client average
cost 0.04–0.06 ROC-AUC on Norway → video). The stacker weighs them on one scale learned from the
labels, and is itself one more candidate, judged and elected by the champion/challenger's
switching rule (:class:`~edge.learning.model.champion.ChampionChallenger`).

It is a dozen floats: plain Python, a few microseconds per prediction and per label.

    >>> s = Stacker()
    >>> round(s.predict({"rules": 0.8}), 6)           # a cold start: the rules' own p
    0.8
    >>> for _ in range(300):   # the rules say nothing here; the cell's share tells the classes apart
    ...     _ = s.learn({"rules": 0.5, "cell_share": 0.9}, True)
    ...     _ = s.learn({"rules": 0.5, "cell_share": 0.1}, False)
    >>> s.predict({"rules": 0.5, "cell_share": 0.9}) > 0.8 > 0.2 > s.predict({"rules": 0.5, "cell_share": 0.1})
    True
    >>> s.labels
    600
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import mul

__all__ = ["Stacker", "INPUTS", "MAX_LOGIT", "LEARNING_RATE"]

#: The candidates the stacker combines, in the order of its weights; ``rules`` always has an opinion.
INPUTS = ("rules", "model", "last_request", "client_average", "cell_share")
#: Log-odds are clipped to ±this (p from 0.0025 to 0.9975): one extreme p does not swing the sum.
MAX_LOGIT = 6.0
#: AdaGrad's step. Measured on both cross-network directions (docs/learning.md): 0.05 and 0.1 learned
#: a new network too slowly to be elected in time; the stacker is never elected on the 3G traces either way.
LEARNING_RATE = 0.2
_N = 1 + 2 * len(INPUTS)  # bias, a log-odds weight per input, a missing-indicator weight per input (11)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Stacker:
    """An online logistic regression over the log-odds of :data:`INPUTS` (see the module docstring).

    ``w`` is the weight vector (bias, then a log-odds weight per input, then a missing-indicator
    weight per input); ``g2`` AdaGrad's sums of squared gradients; ``labels`` how many labels it learned.
    """

    __slots__ = ("w", "g2", "labels", "lr")

    def __init__(self, lr: float = LEARNING_RATE) -> None:
        self.w = [0.0] * _N
        self.w[1] = 1.0  # the rules' log-odds: a cold start serves the rules
        self.g2 = [0.0] * _N
        self.labels = 0
        self.lr = lr

    @staticmethod
    def features(ps: Mapping[str, float | None]) -> list[float]:
        """The feature vector of the candidates' raw predictions ``ps`` (name → p, or None for no opinion)."""
        x = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        log, hi, lo = math.log, MAX_LOGIT, -MAX_LOGIT
        get = ps.get
        i = 1
        for name in INPUTS:
            p = get(name)
            if p is None or p != p:  # None or NaN: no opinion
                x[i + 5] = 1.0
            elif p <= 0.0:
                x[i] = lo
            elif p >= 1.0:
                x[i] = hi
            else:
                z = log(p / (1.0 - p))
                x[i] = lo if z < lo else hi if z > hi else z
            i += 1
        return x

    def predict(self, ps: Mapping[str, float | None]) -> float:
        """p(degraded) from the candidates' raw predictions ``ps``."""
        return _sigmoid(sum(map(mul, self.w, self.features(ps))))  # Σ w[i]·x[i], summed in index order

    def learn(self, ps: Mapping[str, float | None], degraded: bool) -> float:
        """Predict ``ps``, then one AdaGrad step on the log-loss of ``degraded``; returns the prediction from before it."""
        get = ps.get
        return self.learn_values([get(name) for name in INPUTS], degraded)

    def learn_values(self, ps: Sequence[float | None], degraded: bool) -> float:
        """:meth:`learn` with the raw predictions in :data:`INPUTS` order (the champion/challenger's call).

        The same numbers as :meth:`learn` to the bit: the inputs that are 0 (a log-odds of exactly 0, an
        indicator off) add nothing to the sum nor get a step, so only the others are visited, in index order.
        """
        w, g2, lr, log = self.w, self.g2, self.lr, math.log
        hi, lo = MAX_LOGIT, -MAX_LOGIT
        slots = [0]  # the bias: x[0] = 1.0
        values = [1.0]
        missing = []
        dot = 0 + w[0]  # sum() starts from 0: the same float additions, in the same order
        i = 1
        for p in ps:
            if p is None or p != p:  # None or NaN: no opinion (the indicator, i + 5, comes after the log-odds)
                missing.append(i + 5)
            else:
                if p <= 0.0:
                    z = lo
                elif p >= 1.0:
                    z = hi
                else:
                    z = log(p / (1.0 - p))
                    z = lo if z < lo else hi if z > hi else z
                if z:
                    dot += w[i] * z
                    slots.append(i)
                    values.append(z)
            i += 1
        for i in missing:
            dot += w[i]  # × 1.0
            slots.append(i)
            values.append(1.0)
        p = _sigmoid(dot)
        error = p - 1.0 if degraded else p
        if error:
            sqrt = math.sqrt
            for i, xi in zip(slots, values):
                g = error * xi
                s = g2[i] = g2[i] + g * g
                w[i] -= lr * g / sqrt(s)
        self.labels += 1
        return p

    def __getstate__(self) -> dict[str, object]:
        return {"w": list(self.w), "g2": list(self.g2), "labels": self.labels, "lr": self.lr}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.w = [float(v) for v in state["w"]]  # type: ignore[attr-defined]
        self.g2 = [float(v) for v in state["g2"]]  # type: ignore[attr-defined]
        self.labels = int(state["labels"])  # type: ignore[call-overload]
        self.lr = float(state["lr"])  # type: ignore[arg-type]
