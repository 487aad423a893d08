"""River's ``LogisticRegression`` (plain SGD, constant rates, log loss, no L1), one label at a time, without its layers.

River's ``GLM.learn_one`` reaches its few vector operations through half a dozen Python calls per
label (``_enter_learn_mode``, ``_fit``, the optimizer's ``look_ahead`` and ``step`` with their type
checks, ``_eval_gradient_one``, ``clamp``, two schedulers' ``get``). :func:`learn_one` makes the same
operations on the same objects, in the same order, directly: the weights, the intercept and the
optimizer's iteration count come out as River's, to the bit (``tests/learning/test_learning.py``
compares :class:`~edge.learning.model.river.RiverModel` with River's own pipeline, in one call and in
separate predict and learn calls). Any other configuration (:func:`is_plain` says) is left to River.
"""

from __future__ import annotations

from typing import Any

from river import linear_model, optim, utils
from river.optim import losses, schedulers
from river.utils.math import sigmoid

__all__ = ["is_plain", "learn_one", "predict_p"]

_VectorDict = utils.VectorDict


def is_plain(estimator: object) -> bool:
    """Whether :func:`learn_one` and :func:`predict_p` are River's own calls for ``estimator``."""
    if type(estimator) is not linear_model.LogisticRegression:
        return False
    est: Any = estimator
    optimizer = est.optimizer
    return (
        type(optimizer) is optim.SGD
        and type(optimizer.lr) is schedulers.Constant
        and type(est.intercept_lr) is schedulers.Constant
        and type(est.loss) is losses.Log
        and est.l1 == 0
        and type(est._weights) is _VectorDict
    )


def learn_one(est: Any, x: dict, y: bool) -> None:
    """``est.learn_one(x, y)`` (sample weight 1) for an estimator :func:`is_plain` accepts."""
    # GLM.learn_one: the weights, masked to x's features, with zeros for new ones (_enter_learn_mode) ...
    weights: Any = _VectorDict(est._weights, est.initializer, x)
    optimizer = est.optimizer
    # ... _eval_gradient_one: the loss gradient at the raw dot (× the sample weight 1.0), clamped ...
    loss_gradient = est.loss.gradient(y_true=y, y_pred=weights.dot(x) + est.intercept) * 1.0
    clip = est.clip_gradient
    loss_gradient = float(max(min(loss_gradient, clip), -clip))
    gradient = _VectorDict.from_scaled(x, loss_gradient)
    if est.l2:
        gradient.iadd_scaled(weights, est.l2)
    # ... _fit: the intercept's step at the optimizer's iteration, then SGD's step on the weights.
    est.intercept -= est.intercept_lr.learning_rate * loss_gradient
    weights.isub_scaled(gradient, optimizer.lr.learning_rate)
    optimizer.n_iterations += 1


def predict_p(est: Any, x: dict) -> float:
    """``est.predict_proba_one(x)[True]`` for an estimator :func:`is_plain` accepts."""
    return sigmoid(est._weights.dot(x) + est.intercept)
