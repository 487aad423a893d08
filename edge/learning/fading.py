"""The champion/challenger's view of its candidates: ROC-AUC and log-loss over a fading memory of labels.

:class:`FadingEvaluation` weighs each label by ``2 ** -(age / half_life)`` (age in labels) and keeps,
per candidate, a histogram of its predictions by class, in log-odds bins. Updating is O(1) per
label and candidate; the AUC is read off the histograms in O(bins), every ``every`` labels.

Why fading rather than the last N labels exactly (:class:`~edge.learning.evaluation.RollingEvaluation`,
kept for the replay's own figures and old checkpoints):

- **It judges candidates the way they are judged.** A network's degraded share moves with time of
  day, place and session: on the replayed traces a window of 1000 labels spans a handful of
  sessions, and there every candidate ranks near chance (0.50–0.60) while over the whole stream
  they score 0.65–0.82; much of what a good candidate gets right is *which periods* are slow. A
  longer memory sees that; a short window elects on noise and switches back and forth, and every
  switch mixes two candidates' scales in what shoppers are served.
- **It costs little per label.** The exact AUC of 1000 labels for three candidates, sorted every
  25 labels, was most of ``learn``'s cost; a histogram of 400 bins costs a few microseconds.

Within a bin (0.04 in log-odds) predictions count as ties; the AUC is exact up to that
(:func:`binned_roc_auc`). A ``None`` (no opinion) counts as 0.5, as in the replay.

    >>> ev = FadingEvaluation(("a", "b"), half_life=1000, every=1)
    >>> for y, pa, pb in [(True, 0.9, 0.5), (False, 0.2, 0.5), (True, 0.7, None), (False, 0.4, 0.6)]:
    ...     _ = ev.update(y, {"a": pa, "b": pb})
    >>> ev.roc_auc("a"), ev.roc_auc("b"), ev.labels, ev.positives
    (1.0, 0.25, 4, 2)
    >>> round(ev.in_window, 2), round(ev.window_positives, 2)   # effective (faded) counts
    (4.0, 2.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import accumulate, compress
from typing import Any

__all__ = ["FadingEvaluation", "binned_roc_auc", "LOGIT_BINS", "LOGIT_RANGE"]

#: Predictions are binned by log-odds in [-LOGIT_RANGE, LOGIT_RANGE] (p from 0.00034 to 0.99966) ...
LOGIT_RANGE = 8.0
#: ... into this many bins (0.04 log-odds each).
LOGIT_BINS = 400
_SCALE = (LOGIT_BINS - 1) / (2 * LOGIT_RANGE)
#: Predictions are clipped to this for log-loss, as in edge.learning.evaluation.
_EPS = 1e-3
_HI = 1.0 - _EPS
#: Weights grow by 2 ** (1 / half_life) per label (the same as fading every old one); rescaled past this.
_RESCALE_AT = 1e150


def _bin(p: float) -> int:
    """The log-odds bin of ``p``.

    >>> _bin(0.5), _bin(0.0), _bin(1.0), _bin(0.999999) == _bin(1.0)
    (200, 0, 399, True)
    """
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return LOGIT_BINS - 1
    z = math.log(p / (1.0 - p))
    if z <= -LOGIT_RANGE:
        return 0
    if z >= LOGIT_RANGE:
        return LOGIT_BINS - 1
    return int((z + LOGIT_RANGE) * _SCALE + 0.5)


def binned_roc_auc(positives: list[float], negatives: list[float]) -> float | None:
    """ROC-AUC from weighted histograms of the positives' and the negatives' predictions over the
    same ordered bins (a pair in one bin counts half, as a tie does); ``None`` without both classes.

    >>> binned_roc_auc([0, 0, 1], [1, 0, 0]), binned_roc_auc([1, 1], [1, 1]), binned_roc_auc([1, 0], [0, 0])
    (1.0, 0.5, None)
    """
    total_pos, total_neg = sum(positives), sum(negatives)
    if total_pos <= 0.0 or total_neg <= 0.0:
        return None
    # For each bin in order: area += pos · (below + neg / 2), below being the negatives' weight in the
    # bins before it, summed in bin order (accumulate's running sums, from 0.0). Only bins holding
    # positives add to the area (compress keeps those): the same additions, in the same order.
    area = 0.0
    for pos, below, neg in compress(zip(positives, accumulate(negatives, initial=0.0), negatives), positives):
        area += pos * (below + 0.5 * neg)
    return area / (total_pos * total_neg)


class FadingEvaluation:
    """ROC-AUC and log-loss of several candidates on the same labels, each label fading with a
    half-life of ``half_life`` labels (see the module docstring).

    ``update(y, {"model": p1, "rules": p2})`` records one label and each candidate's prediction
    made before it learned; the AUCs are recomputed every ``every`` labels. ``in_window`` and
    ``window_positives`` are the effective (faded) numbers of labels and of degraded ones, at most
    ``half_life / ln 2``; ``labels`` and ``positives`` count the whole stream.
    """

    def __init__(self, models: Iterable[str] = ("model", "rules"), half_life: float = 2000.0, every: int = 25) -> None:
        if half_life <= 0 or every < 1:
            raise ValueError("half_life must be > 0 and every ≥ 1")
        self.models = tuple(models)
        self.half_life = float(half_life)
        self.every = every
        self._growth = 2.0 ** (1.0 / self.half_life)
        self._weight = 1.0  # the newest label's weight; an older one's is smaller by its age
        self._pos = {m: [0.0] * LOGIT_BINS for m in self.models}
        self._neg = {m: [0.0] * LOGIT_BINS for m in self.models}
        self._loss = {m: 0.0 for m in self.models}
        self._w_pos = self._w_neg = 0.0
        self._auc: dict[str, float | None] = {m: None for m in self.models}
        self.labels = 0
        self.positives = 0
        self._since_refresh = 0

    def update(self, y: bool, predictions: Mapping[str, float | None]) -> bool:
        """Record one label; returns True when the AUCs were just recomputed."""
        get = predictions.get
        return self.update_values(y, [get(m) for m in self.models])

    def update_values(self, y: bool, predictions: Sequence[float | None]) -> bool:
        """:meth:`update` with the predictions in :attr:`models` order (the champion/challenger's call).

        Runs the loop of :meth:`_update_values_loop` written out for these candidates
        (:func:`_straight_update`, compiled once per tuple of candidate names) when there is one prediction
        per candidate; the loop otherwise. The same numbers, bit for bit (tests/learning/test_fading.py).
        """
        if len(predictions) == len(self.models):
            update = _STRAIGHT.get(self.models)
            if update is None:
                update = _straight_update(self.models)
            update(self, bool(y), predictions)
        else:
            self._update_values_loop(y, predictions)
        self._since_refresh += 1
        if self._since_refresh >= self.every:
            self.refresh()
            return True
        return False

    def _update_values_loop(self, y: bool, predictions: Sequence[float | None]) -> None:
        """:meth:`update_values`' recording of one label, as a loop over the candidates (the reference)."""
        y = bool(y)
        self.labels += 1
        self.positives += y
        w = self._weight = self._weight * self._growth
        if y:
            self._w_pos += w
        else:
            self._w_neg += w
        hists = self._pos if y else self._neg
        loss = self._loss
        log, eps, hi, top, lo_z, hi_z, scale = math.log, _EPS, _HI, LOGIT_BINS - 1, -LOGIT_RANGE, LOGIT_RANGE, _SCALE
        for m, p in zip(self.models, predictions):
            if p is None:
                p = 0.5
            # _bin(p), inline (this runs for every candidate on every label)
            if p <= 0.0:
                b = 0
            elif p >= 1.0:
                b = top
            else:
                z = log(p / (1.0 - p))
                b = 0 if z <= lo_z else top if z >= hi_z else int((z + hi_z) * scale + 0.5)
            hists[m][b] += w
            q = eps if eps > p else p  # min(max(p, _EPS), 1 - _EPS), NaN kept as max and min keep it
            q = hi if hi < q else q
            loss[m] += -w * log(q if y else 1.0 - q)
        if w > _RESCALE_AT:
            self._rescale(1.0 / w)

    def _rescale(self, factor: float) -> None:
        # Only ratios matter; keep the floats far from overflow.
        self._weight *= factor
        self._w_pos *= factor
        self._w_neg *= factor
        for m in self.models:
            self._pos[m] = [v * factor for v in self._pos[m]]
            self._neg[m] = [v * factor for v in self._neg[m]]
            self._loss[m] *= factor

    def forget(self) -> None:
        """Start a new memory: every label seen so far weighs nothing from here on (``labels`` and
        ``positives`` still count the whole stream). The champion/challenger does this when a frozen
        deployment begins (:meth:`edge.learning.model.ChampionChallenger.observe`)."""
        self._weight = 1.0
        self._w_pos = self._w_neg = 0.0
        for m in self.models:
            self._pos[m] = [0.0] * LOGIT_BINS
            self._neg[m] = [0.0] * LOGIT_BINS
            self._loss[m] = 0.0
            self._auc[m] = None
        self._since_refresh = 0

    def refresh(self) -> None:
        """Recompute the AUCs now."""
        self._since_refresh = 0
        for m in self.models:
            self._auc[m] = binned_roc_auc(self._pos[m], self._neg[m])

    def roc_auc(self, model: str) -> float | None:
        """Faded ROC-AUC as of the last refresh; ``None`` until both classes have been seen."""
        return self._auc[model]

    def log_loss(self, model: str) -> float | None:
        """Faded mean log-loss; ``None`` before the first label."""
        total = self._w_pos + self._w_neg
        return self._loss[model] / total if total else None

    @property
    def in_window(self) -> float:
        """The effective number of labels: their faded weights summed, the newest weighing 1."""
        return (self._w_pos + self._w_neg) / self._weight

    @property
    def window_positives(self) -> float:
        """The effective number of degraded labels."""
        return self._w_pos / self._weight

    @property
    def positive_rate(self) -> float | None:
        """Share of degraded labels over the whole stream."""
        return self.positives / self.labels if self.labels else None


#: :meth:`FadingEvaluation._update_values_loop` as straight-line code, per tuple of candidate names (at most 64 kept).
_STRAIGHT: dict[tuple[str, ...], Callable[[FadingEvaluation, bool, Sequence[float | None]], None]] = {}


def _straight_source(models: tuple[str, ...]) -> str:
    """The source of the loop of :meth:`FadingEvaluation._update_values_loop` written out for ``models``:
    the same float operations in the same order, each candidate's histograms and loss looked up by its
    name as a constant."""
    n = len(models)
    head = "".join(f"p{k}, " for k in range(n))
    lines = [
        "def update(self, y, predictions):",
        f"    {head}= predictions",
        "    self.labels += 1",
        "    self.positives += y",
        "    w = self._weight = self._weight * self._growth",
        "    if y:",
        "        self._w_pos += w",
        "        hists = self._pos",
        "    else:",
        "        self._w_neg += w",
        "        hists = self._neg",
        "    loss = self._loss",
    ]
    top, lo_z, hi_z = LOGIT_BINS - 1, -LOGIT_RANGE, LOGIT_RANGE
    for k, m in enumerate(models):
        p, name = f"p{k}", repr(m)
        lines += [
            f"    if {p} is None:",
            f"        {p} = 0.5",
            f"    if {p} <= 0.0:",
            "        b = 0",
            f"    elif {p} >= 1.0:",
            f"        b = {top}",
            "    else:",
            f"        z = log({p} / (1.0 - {p}))",
            f"        b = 0 if z <= {lo_z!r} else {top} if z >= {hi_z!r} else int((z + {hi_z!r}) * {_SCALE!r} + 0.5)",
            f"    hists[{name}][b] += w",
            f"    q = {_EPS!r} if {_EPS!r} > {p} else {p}",
            f"    q = {_HI!r} if {_HI!r} < q else q",
            f"    loss[{name}] += -w * log(q if y else 1.0 - q)",
        ]
    lines += [f"    if w > {_RESCALE_AT!r}:", "        self._rescale(1.0 / w)", ""]
    return "\n".join(lines)


def _straight_update(models: tuple[str, ...]) -> Callable[[FadingEvaluation, bool, Sequence[float | None]], None]:
    namespace: dict[str, Any] = {"log": math.log}
    exec(compile(_straight_source(models), "<edge.learning.fading straight-line update>", "exec"), namespace)  # noqa: S102
    update = namespace["update"]
    if len(_STRAIGHT) < 64:
        _STRAIGHT[models] = update
    return update
