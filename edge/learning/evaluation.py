"""Evaluate as we learn: prequential (predict, then learn) metrics for binary degraded/ok labels.

Two tools:

- whole-stream figures (:func:`roc_auc`, :func:`log_loss`, :func:`scores`), used by the
  trace replay over every labelled request;
- :func:`bootstrap_roc_auc`, a percentile-bootstrap interval for the whole-stream AUC;
- :class:`RollingEvaluation`, the bounded, rolling view the champion/challenger uses: the
  last ``window`` labels with each model's prediction for them, *the same labels for every
  model*, and an exact ROC-AUC recomputed every ``every`` labels.

A model with no opinion (``None``: cold start, no evidence) is scored as ``0.5`` here, for
evaluation only: it is a coin toss, which is what serving the full page without a reason
amounts to. The serving path never turns ``None`` into 0.5.

    >>> y = [True, False, True, False]
    >>> roc_auc(y, [0.9, 0.1, 0.8, 0.3]), roc_auc(y, [0.5, 0.5, 0.5, 0.5])
    (1.0, 0.5)
    >>> round(log_loss(y, [0.9, 0.1, 0.8, 0.3]), 3)
    0.198
    >>> roc_auc([True, True], [0.2, 0.3]) is None        # one class only: undefined
    True
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_np: Any  # numpy, or None without it
try:  # the bootstrap is vectorised when numpy is there (River brings it); plain Python otherwise
    import numpy as _np
except ImportError:  # pragma: no cover - exercised through _bootstrap_aucs_python in the tests
    _np = None

__all__ = [
    "roc_auc",
    "log_loss",
    "scores",
    "brier",
    "reliability",
    "bootstrap_roc_auc",
    "bootstrap_roc_aucs",
    "auc_standard_error",
    "RollingEvaluation",
    "NEUTRAL_P",
    "EPS",
    "BOOTSTRAP_RESAMPLES",
]

#: How a model without an opinion is scored (evaluation only).
NEUTRAL_P = 0.5
#: Probabilities are clipped to [EPS, 1 - EPS] for log-loss: one confident miss costs ~7 nats, not infinity.
EPS = 1e-3


def _p(p: float | None) -> float:
    return NEUTRAL_P if p is None else p


def roc_auc(y: Sequence[bool], p: Sequence[float | None]) -> float | None:
    """Exact ROC-AUC (Mann–Whitney U with mid-ranks for ties); ``None`` unless both classes occur.

    >>> roc_auc([False, True, True], [0.2, 0.2, 0.7])
    0.75
    """
    n = len(y)
    if n != len(p):
        raise ValueError("y and p differ in length")
    positives = sum(1 for v in y if v)
    negatives = n - positives
    if positives == 0 or negatives == 0:
        return None
    values = [NEUTRAL_P if q is None else q for q in p]
    order = sorted(range(n), key=values.__getitem__)
    ranked = [values[i] for i in order]
    labels = [1 if y[i] else 0 for i in order]
    # Sum of the (mid-)ranks of the positives, one run of tied values at a time. The ranks are
    # half-integers, so the float sum is exact whatever the grouping.
    rank_sum = 0.0
    i = 0
    while i < n:
        value = ranked[i]
        j = i + 1
        while j < n and ranked[j] == value:
            j += 1
        if j == i + 1:
            if labels[i]:
                rank_sum += i + 1.0
        else:
            tied_positives = sum(labels[i:j])
            if tied_positives:
                rank_sum += tied_positives * ((i + j - 1) / 2.0 + 1.0)
        i = j
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(y: Sequence[bool], p: Sequence[float | None]) -> float | None:
    """Mean binary cross-entropy in nats (probabilities clipped to [EPS, 1-EPS]); ``None`` when empty."""
    if not y:
        return None
    total = 0.0
    for label, prob in zip(y, p, strict=True):
        q = min(max(_p(prob), EPS), 1.0 - EPS)
        total -= math.log(q if label else 1.0 - q)
    return total / len(y)


def scores(y: Sequence[bool], p: Sequence[float | None], threshold: float = 0.5) -> dict[str, float | int | None]:
    """ROC-AUC, log-loss, and precision/recall of "degraded" at ``threshold`` (p ≥ threshold is positive).

    >>> s = scores([True, False, True, False], [0.9, 0.6, 0.4, 0.1])
    >>> s["roc_auc"], s["precision"], s["recall"], s["n"]
    (0.75, 0.5, 0.5, 4)
    """
    tp = fp = fn = 0
    for label, prob in zip(y, p, strict=True):
        flagged = _p(prob) >= threshold
        if flagged and label:
            tp += 1
        elif flagged:
            fp += 1
        elif label:
            fn += 1
    return {
        "roc_auc": roc_auc(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier(y, p),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "n": len(y),
    }


def brier(y: Sequence[bool], p: Sequence[float | None]) -> float | None:
    """Mean squared error of the probabilities (``None`` scored as 0.5); ``None`` when empty.

    >>> brier([True, False], [0.9, 0.2])
    0.025
    """
    if not y:
        return None
    return math.fsum((_p(q) - (1.0 if label else 0.0)) ** 2 for label, q in zip(y, p, strict=True)) / len(y)


#: Bins of :func:`reliability` (equal width in p).
RELIABILITY_BINS = 10


def reliability(y: Sequence[bool], p: Sequence[float | None], bins: int = RELIABILITY_BINS) -> list[dict[str, float | int | str]]:
    """The reliability table: per equal-width bin of predicted p, how many, their mean p, and the observed rate.

    Requests without an opinion (``None``) are left out (they are not a probability). A calibrated
    model has ``mean_p`` ≈ ``observed`` in every bin with enough requests.

    >>> reliability([True, False, True, True], [0.95, 0.05, 0.9, None], bins=2)
    [{'bin': '0.0–0.5', 'n': 1, 'mean_p': 0.05, 'observed': 0.0}, {'bin': '0.5–1.0', 'n': 2, 'mean_p': 0.925, 'observed': 1.0}]
    """
    n = [0] * bins
    sum_p = [0.0] * bins
    pos = [0] * bins
    for label, q in zip(y, p, strict=True):
        if q is None:
            continue
        i = min(int(q * bins), bins - 1)
        n[i] += 1
        sum_p[i] += q
        pos[i] += bool(label)
    width = 1.0 / bins
    return [
        {
            "bin": f"{i * width:.1f}–{(i + 1) * width:.1f}",
            "n": n[i],
            "mean_p": round(sum_p[i] / n[i], 4),
            "observed": round(pos[i] / n[i], 4),
        }
        for i in range(bins)
        if n[i]
    ]


#: Resamples of :func:`bootstrap_roc_auc` by default.
BOOTSTRAP_RESAMPLES = 1000
#: Above this many labels × resamples, numpy works through the resamples in chunks (memory).
_CHUNK_CELLS = 2_000_000


def bootstrap_roc_auc(
    y: Sequence[bool],
    p: Sequence[float | None],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of :func:`roc_auc`: resample the labelled items with replacement.

    ``None`` when the AUC itself is undefined (one class only) or ``resamples`` is 0. Resamples
    that draw a single class are left out. The same ``seed`` gives the same resamples for every
    ``p`` of the same length, so the intervals of several predictors on the same labels are
    paired (:func:`bootstrap_roc_aucs` scores several at once on shared draws). Ties count a
    half, as in :func:`roc_auc`; ``None`` is scored as :data:`NEUTRAL_P`. The items are taken
    as independent: page views of one client are not quite, so the interval is, if anything,
    a little narrow.

        >>> y = [True, False] * 50
        >>> p = [0.8 if v else 0.3 for v in y[:90]] + [0.3 if v else 0.8 for v in y[90:]]
        >>> lo, hi = bootstrap_roc_auc(y, p, seed=1)
        >>> lo < roc_auc(y, p) < hi <= 1.0
        True
    """
    return bootstrap_roc_aucs(y, {"p": p}, resamples=resamples, confidence=confidence, seed=seed)["p"]


def bootstrap_roc_aucs(
    y: Sequence[bool],
    predictions: Mapping[str, Sequence[float | None]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """:func:`bootstrap_roc_auc` of several predictors on the same labels, with the same resamples."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    for name, p in predictions.items():
        if len(p) != len(y):
            raise ValueError(f"y and {name} differ in length")
    positives = sum(1 for v in y if v)
    if resamples <= 0 or positives == 0 or positives == len(y):
        return {name: None for name in predictions}
    # Each item becomes a category: label × G + rank of its distinct score (G distinct scores).
    # A resample is then a count per category, and its AUC a sum over the distinct scores in
    # ascending order: each positive beats the negatives below it and half those tied with it.
    coded = {name: _categories(y, p) for name, p in predictions.items()}
    if _np is not None:
        aucs = _bootstrap_aucs_numpy(coded, len(y), resamples, seed)
    else:  # pragma: no cover - numpy comes with River
        aucs = _bootstrap_aucs_python(coded, len(y), resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    return {
        name: (_quantile(a, alpha), _quantile(a, 1.0 - alpha)) if a else None for name, a in aucs.items()
    }


def _categories(y: Sequence[bool], p: Sequence[float | None]) -> tuple[list[int], int]:
    values = [NEUTRAL_P if q is None else float(q) for q in p]
    distinct = sorted(set(values))
    rank = {v: i for i, v in enumerate(distinct)}
    groups = len(distinct)
    return [rank[v] + (groups if label else 0) for v, label in zip(values, y)], groups


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), on a list."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    lo = math.floor(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def _auc_from_counts(negatives: Sequence[int], positives: Sequence[int]) -> float | None:
    """AUC from per-distinct-score counts (ascending scores)."""
    below = 0
    twice_wins = 0
    for neg, pos in zip(negatives, positives):
        if pos:
            twice_wins += pos * (2 * below + neg)
        below += neg
    n_pos = sum(positives)
    return twice_wins / (2.0 * n_pos * below) if n_pos and below else None


def _bootstrap_aucs_python(
    coded: Mapping[str, tuple[list[int], int]], n: int, resamples: int, seed: int
) -> dict[str, list[float]]:
    rng = random.Random(seed)
    items = range(n)
    out: dict[str, list[float]] = {name: [] for name in coded}
    for _ in range(resamples):
        drawn = Counter(rng.choices(items, k=n))
        for name, (categories, groups) in coded.items():
            counts = [0] * (2 * groups)
            for i, c in drawn.items():
                counts[categories[i]] += c
            auc = _auc_from_counts(counts[:groups], counts[groups:])
            if auc is not None:
                out[name].append(auc)
    return out


def _bootstrap_aucs_numpy(
    coded: Mapping[str, tuple[list[int], int]], n: int, resamples: int, seed: int
) -> dict[str, list[float]]:
    np = _np
    rng = np.random.default_rng(seed)
    arrays = {name: (np.asarray(c, dtype=np.int64), g) for name, (c, g) in coded.items()}
    widest = max(2 * g for _, g in arrays.values())
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(n, widest)))
    out: dict[str, list[float]] = {name: [] for name in coded}
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(b, n), dtype=np.int32 if n < 2**31 else np.int64)
        rows = np.arange(b, dtype=np.int64)[:, None]
        for name, (cats, groups) in arrays.items():
            drawn = cats[idx] + rows * (2 * groups)
            counts = np.bincount(drawn.ravel(), minlength=b * 2 * groups).reshape(b, 2, groups)
            neg, pos = counts[:, 0, :], counts[:, 1, :]
            twice_below = 2 * np.cumsum(neg, axis=1) - neg  # 2·(negatives strictly below) + tied negatives
            twice_wins = np.einsum("ij,ij->i", pos, twice_below)
            pairs = pos.sum(axis=1).astype(np.float64) * neg.sum(axis=1)
            ok = pairs > 0
            out[name].extend((twice_wins[ok] / (2.0 * pairs[ok])).tolist())
        done += b
    return out


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's (1982) standard error of a ROC-AUC from this many positives and negatives
    (the champion/challenger's switching rule weighs two AUCs' difference by it).

    >>> round(auc_standard_error(0.7, 50, 50), 3), round(auc_standard_error(0.7, 500, 500), 3)
    (0.052, 0.016)
    """
    if positives < 1 or negatives < 1:
        return 1.0
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


class RollingEvaluation:
    """Rolling ROC-AUC and log-loss of several models on the same, latest ``window`` labels.

    ``update(y, {"model": p1, "rules": p2})`` records one label and each model's prediction
    *made before it learned from it*. Log-loss is kept as running sums (O(1) per label);
    the exact AUC is recomputed every ``every`` labels from the bounded window (O(window log
    window) every ``every`` labels, ~15 µs per label for 1000/25). Counts by label are kept
    for the whole stream.

        >>> ev = RollingEvaluation(("model", "rules"), window=4, every=1)
        >>> for y, pm, pr in [(True, 0.9, 0.5), (False, 0.2, 0.5), (True, 0.7, None), (False, 0.4, 0.6)]:
        ...     _ = ev.update(y, {"model": pm, "rules": pr})
        >>> ev.roc_auc("model"), ev.roc_auc("rules"), ev.labels, ev.positives
        (1.0, 0.25, 4, 2)
    """

    def __init__(self, models: Iterable[str] = ("model", "rules"), window: int = 1000, every: int = 25) -> None:
        if window < 2 or every < 1:
            raise ValueError("window must be ≥ 2 and every ≥ 1")
        self.models = tuple(models)
        self.window = window
        self.every = every
        self._y: deque[bool] = deque(maxlen=window)
        self._p: dict[str, deque[float]] = {m: deque(maxlen=window) for m in self.models}
        self._loss: dict[str, deque[float]] = {m: deque(maxlen=window) for m in self.models}
        self._loss_sum = {m: 0.0 for m in self.models}
        self._auc: dict[str, float | None] = {m: None for m in self.models}
        self.labels = 0  # whole stream
        self.positives = 0
        self.window_positives = 0  # degraded labels in the window
        self._since_refresh = 0

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "window_positives" not in state:  # pickled before it was kept
            self.window_positives = sum(self._y)

    def update(self, y: bool, predictions: Mapping[str, float | None]) -> bool:
        """Record one label; returns True when the AUCs were just recomputed."""
        y = bool(y)
        self.labels += 1
        self.positives += y
        if len(self._y) == self.window:
            self.window_positives -= self._y[0]
        self._y.append(y)
        self.window_positives += y
        for m in self.models:
            p = min(max(_p(predictions.get(m)), EPS), 1.0 - EPS)
            losses = self._loss[m]
            if len(losses) == self.window:
                self._loss_sum[m] -= losses[0]
            loss = -math.log(p if y else 1.0 - p)
            losses.append(loss)
            self._loss_sum[m] += loss
            self._p[m].append(p)
        self._since_refresh += 1
        if self._since_refresh >= self.every:
            self.refresh()
            return True
        return False

    def refresh(self) -> None:
        """Recompute the exact AUCs (and the log-loss sums, dropping float drift) now."""
        self._since_refresh = 0
        y = list(self._y)
        for m in self.models:
            self._auc[m] = roc_auc(y, list(self._p[m]))
            self._loss_sum[m] = math.fsum(self._loss[m])

    def roc_auc(self, model: str) -> float | None:
        """ROC-AUC over the window as of the last refresh; ``None`` until both classes are in it."""
        return self._auc[model]

    def log_loss(self, model: str) -> float | None:
        """Mean log-loss over the window; ``None`` before the first label."""
        n = len(self._loss[model])
        return self._loss_sum[model] / n if n else None

    @property
    def in_window(self) -> int:
        return len(self._y)

    @property
    def positive_rate(self) -> float | None:
        """Share of degraded labels over the whole stream."""
        return self.positives / self.labels if self.labels else None
