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
from collections.abc import Callable, Mapping, Sequence
from operator import mul
from typing import Any

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
        Runs :func:`_straight_learn` (the loop of :meth:`_learn_values_loop`, written out for the five
        inputs) when ``ps`` holds all five; the loop otherwise.
        """
        if len(ps) == _INPUT_COUNT:
            return _straight_learn(self, ps, degraded)
        return self._learn_values_loop(ps, degraded)

    def _learn_values_loop(self, ps: Sequence[float | None], degraded: bool) -> float:
        """:meth:`learn_values` as a loop over the inputs: the reference the straight-line code is tested against."""
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


_INPUT_COUNT = len(INPUTS)


def _straight_source(n: int) -> str:
    """The source of :func:`_straight_learn`: :meth:`Stacker._learn_values_loop` written out for ``n`` inputs.

    The same float operations in the same order: the sum adds the bias, then each non-zero log-odds in
    index order, then each missing indicator's weight (× 1.0) in index order; the steps touch one weight
    and one sum of squares each, so their order does not matter.
    """
    head = ", ".join(f"p{i}" for i in range(1, n + 1))
    lines = ["def _straight_learn(self, ps, degraded):", "    w = self.w", f"    {head}, = ps", "    dot = 0 + w[0]"]
    for i in range(1, n + 1):
        lines += [
            f"    if p{i} is None or p{i} != p{i}:",
            f"        m{i} = True",
            f"        z{i} = 0.0",
            "    else:",
            f"        m{i} = False",
            f"        if p{i} <= 0.0:",
            f"            z{i} = {-MAX_LOGIT!r}",
            f"        elif p{i} >= 1.0:",
            f"            z{i} = {MAX_LOGIT!r}",
            "        else:",
            f"            z{i} = log(p{i} / (1.0 - p{i}))",
            f"            z{i} = {-MAX_LOGIT!r} if z{i} < {-MAX_LOGIT!r} else {MAX_LOGIT!r} if z{i} > {MAX_LOGIT!r} else z{i}",
            f"        if z{i}:",
            f"            dot += w[{i}] * z{i}",
        ]
    for i in range(1, n + 1):
        lines += [f"    if m{i}:", f"        dot += w[{i + n}]"]
    lines += [
        "    if dot >= 0:",
        "        p = 1.0 / (1.0 + exp(-dot))",
        "    else:",
        "        e = exp(dot)",
        "        p = e / (1.0 + e)",
        "    error = p - 1.0 if degraded else p",
        "    if error:",
        "        g2, lr = self.g2, self.lr",
        "        g = error * 1.0",
        "        s = g2[0] = g2[0] + g * g",
        "        w[0] -= lr * g / sqrt(s)",
    ]
    for i in range(1, n + 1):
        lines += [
            f"        if m{i}:",
            "            g = error * 1.0",
            f"            s = g2[{i + n}] = g2[{i + n}] + g * g",
            f"            w[{i + n}] -= lr * g / sqrt(s)",
            f"        elif z{i}:",
            f"            g = error * z{i}",
            f"            s = g2[{i}] = g2[{i}] + g * g",
            f"            w[{i}] -= lr * g / sqrt(s)",
        ]
    lines += ["    self.labels += 1", "    return p", ""]
    return "\n".join(lines)


def _compile_straight() -> Callable[[Stacker, Sequence[float | None], bool], float]:
    namespace: dict[str, Any] = {"log": math.log, "exp": math.exp, "sqrt": math.sqrt}
    exec(compile(_straight_source(_INPUT_COUNT), "<edge.learning.stacker straight-line learn>", "exec"), namespace)  # noqa: S102
    return namespace["_straight_learn"]


#: :meth:`Stacker.learn_values` for all five inputs, as straight-line code (written once, at import).
_straight_learn = _compile_straight()
