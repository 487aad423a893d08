"""The River model's scaler and logistic regression as one learner over flat lists: one pass per label.

:class:`ScaledLogReg` is the default pipeline's ``WelfordScaler`` (River's ``StandardScaler``) followed
by River's plain ``LogisticRegression`` (SGD at a constant rate, log loss, L2, no L1; what
:func:`~edge.learning.model.logreg.is_plain` accepts), for :class:`~edge.learning.model.river.RiverModel`'s
hot path. Why it exists: per label the two took ~40 µs, most of it Python walking dicts — the scaler's
statistics, then River's ``VectorDict`` of weights masked to the features, a gradient dict, a second
pass to step the weights. Here every feature has a slot ``i`` (``index[name]``, in the order features
were first seen) in five parallel lists — count, mean, variance, standard deviation, weight — and
:meth:`ScaledLogReg.predict_learn` does, in one pass over the features: the scaled value before the
label and its share of the prediction's dot product; Welford's update; the scaled value after it and
its share of the learning dot product. A second, short pass steps the weights of the features seen.

The arithmetic is River's, operation for operation and in River's order (the dot products summed in
the features' order, as River's ``VectorDict.dot`` sums them), so every prediction, statistic and
weight is River's to the bit (``tests/learning/test_linear.py`` drives both side by side, and
``tests/learning/test_learning.py`` the whole :class:`~edge.learning.model.river.RiverModel`).

A feature whose variance is 0 and whose value is its mean, with a weight of 0 — a one-hot indicator,
whose value is always 1.0 when present — scales to 0 before and after, adds nothing to either dot
product and keeps its zero weight under L2: only its count moves, and that is all this does for it.

The River objects stay the record: :meth:`ScaledLogReg.from_river` reads them and
:meth:`ScaledLogReg.write_back` puts the state back (``RiverModel`` does it before a checkpoint is
pickled and whenever its ``pipeline`` is read), so checkpoints, priors and anything reading the
pipeline see River's objects as before.

    >>> from river import linear_model, optim, preprocessing
    >>> def logreg(): return linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4)
    >>> rivers = preprocessing.StandardScaler() | logreg()
    >>> ours = ScaledLogReg.from_river(WelfordScaler(), logreg())
    >>> for z, y in (({"u": 1.0, "v": 2.0}, True), ({"u": 3.0}, False), ({"u": 4.0, "v": -1.0}, True)):
    ...     before = rivers.predict_proba_one(z)[True]
    ...     rivers.learn_one(z, y)
    ...     assert abs(ours.predict_learn(z, y) - before) < 1e-12   # predicted before learning, as River
    >>> probe = {"u": 2.0, "v": 1.0}
    >>> abs(ours.predict(probe) - rivers.predict_proba_one(probe)[True]) < 1e-12
    True
    >>> scaler, estimator = WelfordScaler(), logreg()
    >>> ours.write_back(scaler, estimator)   # River's objects hold the state again
    >>> scaler.counts == rivers["StandardScaler"].counts, abs(estimator.intercept - rivers["LogisticRegression"].intercept) < 1e-15
    (True, True)
"""

from __future__ import annotations

import math
from typing import Any

from edge.learning.model.scaler import WelfordScaler
from edge.learning.model.unrolled import FirstPass, Layouts, compile_features_pass, compile_pass
from edge.learning.model.unrolled_predict import PredictPass, compile_features_predict

__all__ = ["ScaledLogReg", "COMPILE_AFTER", "MAX_LAYOUTS"]

#: A feature layout gets its straight-line pass the time it is seen this often (a rare one keeps the loop) ...
COMPILE_AFTER = 8
#: ... and at most this many layouts per learner do (each is ~1 ms to compile and a few KB).
MAX_LAYOUTS = 64

_exp = math.exp
_NAN = math.nan


def _sigmoid(z: float) -> float:
    """River's ``utils.math.sigmoid`` (0 and 1 beyond ±30)."""
    if z < -30:
        return 0.0
    if z > 30:
        return 1.0
    return 1 / (1 + _exp(-z))


class ScaledLogReg:
    """``WelfordScaler`` → plain River ``LogisticRegression`` over flat lists (see the module docstring).

    ``index`` maps a feature name to its slot; ``names[i]`` is slot ``i``'s name; ``count``, ``mean``,
    ``var``, ``std`` (``var ** 0.5``) and ``w`` are per slot. ``intercept``, ``iterations`` (the SGD
    optimizer's ``n_iterations``) and the rates are the estimator's.
    """

    __slots__ = (
        "index", "names", "count", "mean", "var", "std", "w", "intercept", "iterations",
        "lr", "intercept_lr", "l2", "clip", "weight_pos", "weight_neg", "_weighted", "constant", "_passes", "_seen",
        "_x_passes", "_x_refused", "_x_last", "_p_passes", "_p_last",
    )

    def __init__(self, *, lr: float, intercept_lr: float, l2: float, clip: float, weight_pos: float = 1.0, weight_neg: float = 1.0) -> None:
        self.index: dict[Any, int] = {}
        self.names: list[Any] = []
        self.count: list[int] = []
        self.mean: list[float] = []
        self.var: list[float] = []
        self.std: list[float] = []
        self.w: list[float] = []
        self.intercept = 0.0
        self.iterations = 0
        self.lr, self.intercept_lr, self.l2, self.clip = lr, intercept_lr, l2, clip
        self.weight_pos, self.weight_neg = weight_pos, weight_neg
        self._weighted: set[Any] = set()  # names River's weight dict held when read: written back even if never learned
        # Per slot, the value at which learning it changes nothing but its count (variance 0, weight 0:
        # the module docstring's indicators), or NaN (equal to nothing) while it has a spread or a weight.
        self.constant: list[float] = []
        # Straight-line passes by layout (tuple of names), and how often each uncompiled layout was seen.
        self._passes: dict[tuple, FirstPass] = {}
        self._seen: dict[tuple, int] = {}
        # Straight-line transform-and-pass code by layout of EdgeFeatures' inputs (RiverModel.predict_then_learn).
        self._x_passes = Layouts(compile_features_pass, after=COMPILE_AFTER, limit=MAX_LAYOUTS)
        self._x_refused: set[tuple] = set()
        self._x_last: tuple = (None, None)  # the last layout given a compiled pass, and that pass
        # The same for a prediction: straight-line transform-and-predict code by layout of inputs (RiverModel.predict).
        self._p_passes = Layouts(compile_features_predict, after=COMPILE_AFTER, limit=MAX_LAYOUTS)
        self._p_last: tuple = (None, None)

    def _slot(self, name: Any) -> int:
        i = self.index[name] = len(self.names)
        self.names.append(name)
        self.count.append(0)
        self.mean.append(0.0)
        self.var.append(0.0)
        self.std.append(0.0)
        self.w.append(0.0)  # River's Zeros initializer
        self.constant.append(0.0)
        return i

    def _settle(self, i: int) -> None:
        self.constant[i] = self.mean[i] if not self.var[i] and not self.w[i] else _NAN

    @classmethod
    def from_river(cls, scaler: WelfordScaler, estimator: Any) -> ScaledLogReg:
        """The state of ``scaler`` and ``estimator`` (one :func:`~edge.learning.model.logreg.is_plain` accepts)."""
        fused = cls(
            lr=estimator.optimizer.lr.learning_rate,
            intercept_lr=estimator.intercept_lr.learning_rate,
            l2=estimator.l2,
            clip=estimator.clip_gradient,
            weight_pos=estimator.loss.weight_pos,
            weight_neg=estimator.loss.weight_neg,
        )
        for name, (n, mean, var, std) in scaler.stats.items():
            i = fused._slot(name)
            fused.count[i], fused.mean[i], fused.var[i], fused.std[i] = n, mean, var, std
        for name, weight in estimator._weights.to_dict().items():
            slot = fused.index.get(name)
            fused.w[fused._slot(name) if slot is None else slot] = weight
            fused._weighted.add(name)
        fused.intercept = estimator.intercept
        fused.iterations = estimator.optimizer.n_iterations
        for i in range(len(fused.names)):
            fused._settle(i)
        # An infinite constant (learning never makes one; a state read here might hold one): no compiled features
        # pass, whose short paths take a float equal to its feature's constant as finite (unrolled).
        if any(c - c != 0.0 and c == c for c in fused.constant):
            fused._x_passes = Layouts(compile_features_pass, after=COMPILE_AFTER, limit=0)
        return fused

    def write_back(self, scaler: WelfordScaler, estimator: Any) -> None:
        """Put this state into ``scaler`` and ``estimator`` (River's objects, as :meth:`from_river` read them)."""
        stats, weights, weighted = scaler.stats, estimator._weights, self._weighted
        for i, name in enumerate(self.names):
            n = self.count[i]
            if n:
                stats[name] = (n, self.mean[i], self.var[i], self.std[i])
            if n or name in weighted:
                weights[name] = self.w[i]
        estimator.intercept = self.intercept
        estimator.optimizer.n_iterations = self.iterations

    def predict(self, z: dict) -> float:
        """River's ``predict_proba_one(scaler.transform_one(z))[True]``."""
        index, mean, std, var, w = self.index, self.mean, self.std, self.var, self.w
        dot = 0.0
        for name, xi in z.items():
            i = index.get(name)
            if i is not None and var[i]:  # an unseen feature, or one of variance 0, scales to 0.0
                dot += w[i] * ((xi - mean[i]) / std[i])
        return _sigmoid(dot + self.intercept)

    def first_pass(self, z: dict) -> tuple[float, float, list[int], list[float]]:
        """The pass over ``z``'s features (module docstring): the dot products before and after the scaler
        learns, the scaler's update, and the slots whose weights the estimator steps with their scaled values.
        The reference for :mod:`~edge.learning.model.unrolled`'s straight-line copies of it."""
        index, count, mean, var, std, w, constant = self.index, self.count, self.mean, self.var, self.std, self.w, self.constant
        before = after = 0.0
        slots: list[int] = []
        scaled: list[float] = []
        for name, xi in z.items():
            try:
                i = index[name]
            except KeyError:
                i = self._slot(name)
            if xi == constant[i]:
                count[i] += 1  # an indicator at its constant value: scales to 0 now and after (docstring)
                continue
            m, v, wi = mean[i], var[i], w[i]
            if v:
                before += wi * ((xi - m) / std[i])
            # Welford, as River's StandardScaler.learn_one (and WelfordScaler) writes it
            n = count[i] + 1
            d = xi - m
            m += d / n
            v += (d * (xi - m) - v) / n
            s = v**0.5
            count[i], mean[i], var[i], std[i] = n, m, v, s
            xa = (xi - m) / s if v else 0.0
            after += wi * xa
            slots.append(i)
            scaled.append(xa)
        return before, after, slots, scaled

    def _compiled(self, layout: tuple) -> FirstPass | None:
        """The straight-line pass for ``layout`` (``tuple(z)``), compiled the :data:`COMPILE_AFTER`-th time it is
        seen (once its names have slots) while fewer than :data:`MAX_LAYOUTS` are; None meanwhile."""
        seen = self._seen
        n = seen[layout] = seen.get(layout, 0) + 1
        if n < COMPILE_AFTER or len(self._passes) >= MAX_LAYOUTS:
            if len(seen) > 16 * MAX_LAYOUTS:  # many rare layouts: count afresh
                seen.clear()
            return None
        index = self.index
        fn = self._passes[layout] = compile_pass([index[name] for name in layout])
        return fn

    def predict_learn(self, z: dict, y: bool) -> float:
        """The prediction for ``z`` before learning it (as :meth:`predict`), then the scaler's and the
        estimator's ``learn_one`` of ``(z, y)`` as River's pipeline makes them: one pass (module docstring),
        straight-line code for a layout seen often (:mod:`~edge.learning.model.unrolled`)."""
        layout = tuple(z)
        run = self._passes.get(layout)
        if run is not None:
            before, after, slots, scaled = run(z.values(), self.count, self.mean, self.var, self.std, self.w, self.constant)
        else:
            before, after, slots, scaled = self.first_pass(z)
            self._compiled(layout)
        return self.finish(before, after, slots, scaled, y)

    def features_pass(self, x: dict, tables: dict[str, Any]) -> FirstPass | None:
        """The straight-line transform-and-pass for ``x``'s layout of inputs
        (:func:`~edge.learning.model.unrolled.compile_features_pass` with ``tables``), once seen often; else None."""
        layout = tuple(x)
        last, run = self._x_last
        if layout == last:  # a client's features keep their names label after label: compared, not hashed
            return run
        run = self._compiled_for(self._x_passes, layout, tables)
        if run is not None:
            self._x_last = (layout, run)
        return run

    def _compiled_for(self, passes: Any, layout: tuple, tables: dict[str, Any]) -> Any:
        """``passes``' code for ``layout`` (compiled once seen often), or None; a layout whose features
        could collide is refused for good (the transform's dict orders them)."""
        run = passes.get(layout)
        if run is None and layout not in self._x_refused:
            try:
                run = passes.seen(layout, self.index.get, tables)
            except ValueError:
                self._x_refused.add(layout)
        return run

    def predict_inputs(self, x: dict, features: Any, tables: dict[str, Any]) -> float:
        """``self.predict(features.transform_one(x))`` for ``features`` an :class:`~edge.learning.model.river.EdgeFeatures`
        and ``tables`` river's (:meth:`features_pass`): one straight-line pass for a layout of inputs seen often
        (:meth:`predict_pass`); the same float (tests/learning/test_predict.py)."""
        p = features._rule_model.predict(x) if features.rules else None  # transform_one's
        run = self.predict_pass(x, tables)
        if run is None:
            return self.predict(features.transform_with_rules(x, p))
        z = run(x, x.values(), p, features.freshness_half_life_s, features.rules, self.mean, self.var, self.std, self.w, self.index)
        z += self.intercept  # predict's _sigmoid(dot + intercept), inline
        if z < -30:
            return 0.0
        if z > 30:
            return 1.0
        return 1 / (1 + _exp(-z))

    def learn_inputs(self, x: dict, features: Any, tables: dict[str, Any], y: bool) -> None:
        """``self.learn(features.transform_one(x), y)`` (``features`` and ``tables`` as :meth:`predict_inputs`): for a
        layout of inputs seen often, :meth:`features_pass`'s transform and pass in one, as ``RiverModel.predict_then_learn``
        runs it; the same state after (tests/learning/test_predict.py)."""
        p = features._rule_model.predict(x) if features.rules else None  # transform_one's
        run = self.features_pass(x, tables)
        if run is None:
            self.predict_learn(features.transform_with_rules(x, p), y)
            return
        args = (self.count, self.mean, self.var, self.std, self.w, self.constant, self.index, self._slot)
        self.finish(*run(x, x.values(), p, features.freshness_half_life_s, features.rules, *args), y)

    def predict_pass(self, x: dict, tables: dict[str, Any]) -> PredictPass | None:
        """:meth:`features_pass` for a prediction: the straight-line transform-and-predict for ``x``'s layout of inputs
        (:func:`~edge.learning.model.unrolled_predict.compile_features_predict` with ``tables``), once seen often; else None."""
        layout = tuple(x)
        last, run = self._p_last
        if layout == last:  # a client's features keep their names request after request: compared, not hashed
            return run
        run = self._compiled_for(self._p_passes, layout, tables)
        if run is not None:
            self._p_last = (layout, run)
        return run

    def finish(self, before: float, after: float, slots: list[int], scaled: list[float], y: bool) -> float:
        """The estimator's step after a first pass (:meth:`first_pass`'s results); the prediction from before it."""
        intercept = self.intercept
        w, mean, var, constant = self.w, self.mean, self.var, self.constant
        # River's Log.gradient at the raw dot, × the sample weight 1.0, clamped (logreg.learn_one)
        if y:
            yt, weight = 1, self.weight_pos
        else:
            yt, weight = -1, self.weight_neg
        zy = (after + intercept) * yt
        if zy > 18.0:
            g = weight * _exp(-zy) * -yt
        elif zy < -18.0:
            g = weight * -yt
        else:
            g = weight * -yt / (_exp(zy) + 1.0)
        g *= 1.0
        # float(max(min(g, clip), -clip)) without the calls: min keeps g unless clip < g, max unless -clip > it
        clip = self.clip
        if clip < g:
            g = clip
        clip = -clip
        if clip > g:
            g = clip
        if type(g) is not float:
            g = float(g)
        # SGD: w ← w − lr·(x·g + l2·w) on x's features; the intercept's step first, as River's _fit
        self.intercept = intercept - self.intercept_lr * g
        lr, l2 = self.lr, self.l2
        for i, xa in zip(slots, scaled):
            wi = w[i]
            w[i] = wi = wi - (xa * g + wi * l2) * lr
            constant[i] = mean[i] if not var[i] and not wi else _NAN
        self.iterations += 1
        z = before + intercept  # _sigmoid(z), inline
        if z < -30:
            return 0.0
        if z > 30:
            return 1.0
        return 1 / (1 + _exp(-z))

    def learn(self, z: dict, y: bool) -> None:
        """:meth:`predict_learn` without the prediction (its cost is the same but for one sigmoid)."""
        self.predict_learn(z, y)
