"""FadingEvaluation (edge/learning/fading.py): binned AUC against the exact one, fading, bounded state."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from edge.learning.evaluation import roc_auc
from edge.learning.fading import LOGIT_BINS, FadingEvaluation, binned_roc_auc


def _labels(n, rng, skill):
    for _ in range(n):
        y = rng.random() < 0.3
        yield y, min(max(rng.gauss(0.5 + (skill if y else -skill), 0.2), 0.0), 1.0)


@pytest.mark.parametrize("skill", [0.0, 0.1, 0.3])
def test_binned_auc_matches_the_exact_auc_without_fading(skill):
    rng = random.Random(1)
    ev = FadingEvaluation(("a",), half_life=1e12, every=1)
    ys, ps = [], []
    for y, p in _labels(3000, rng, skill):
        ev.update(y, {"a": p})
        ys.append(y)
        ps.append(p)
    assert ev.roc_auc("a") == pytest.approx(roc_auc(ys, ps), abs=0.003)
    assert ev.in_window == pytest.approx(3000, rel=1e-6) and ev.window_positives == pytest.approx(sum(ys), rel=1e-6)


def test_old_labels_fade():
    ev = FadingEvaluation(("a",), half_life=50, every=10)
    for i in range(300):  # right first …
        ev.update(i % 2 == 0, {"a": 0.9 if i % 2 == 0 else 0.1})
    assert ev.roc_auc("a") == 1.0
    for i in range(300):  # … then exactly wrong for six half-lives: the old labels weigh ~1/64
        ev.update(i % 2 == 0, {"a": 0.1 if i % 2 == 0 else 0.9})
    assert ev.roc_auc("a") < 0.03
    assert ev.labels == 600 and ev.positives == 300
    assert ev.in_window <= 50 / math.log(2) + 1  # the effective count is bounded by the half-life


def test_weights_are_rescaled_long_before_they_overflow():
    ev = FadingEvaluation(("a",), half_life=1.0, every=100)  # weights double every label
    for i in range(5000):
        ev.update(i % 2 == 0, {"a": 0.8 if i % 2 == 0 else 0.2})
    assert ev.roc_auc("a") == 1.0 and math.isfinite(ev.log_loss("a"))
    assert ev.in_window == pytest.approx(2.0, rel=1e-3)


def test_state_is_bounded_and_pickles():
    ev = FadingEvaluation(("a", "b"), half_life=100, every=5)
    rng = random.Random(2)
    for y, p in _labels(2000, rng, 0.2):
        ev.update(y, {"a": p, "b": None})
    assert all(len(h) == LOGIT_BINS for h in (*ev._pos.values(), *ev._neg.values()))
    assert ev.roc_auc("b") == 0.5  # no opinion is a coin toss
    back = pickle.loads(pickle.dumps(ev))
    assert back.roc_auc("a") == ev.roc_auc("a") and back.log_loss("a") == ev.log_loss("a")


def test_binned_auc_needs_both_classes():
    assert binned_roc_auc([0.0] * 3, [1.0, 0.0, 0.0]) is None
    assert binned_roc_auc([0.0, 2.0], [2.0, 0.0]) == 1.0 and binned_roc_auc([2.0, 0.0], [0.0, 2.0]) == 0.0


def test_forget_starts_a_new_memory_and_keeps_the_stream_counts():
    ev = FadingEvaluation(("a",), half_life=1000, every=1)
    for i in range(200):  # a ranks these perfectly …
        ev.update(i % 2 == 0, {"a": 0.9 if i % 2 == 0 else 0.1})
    ev.forget()
    assert ev.roc_auc("a") is None and ev.in_window == 0.0 and ev.log_loss("a") is None
    for i in range(20):  # … and these exactly wrong: only they count now
        ev.update(i % 2 == 0, {"a": 0.1 if i % 2 == 0 else 0.9})
    assert ev.roc_auc("a") == 0.0 and ev.in_window == pytest.approx(20.0, rel=1e-2)
    assert ev.labels == 220 and ev.positives == 110


def _plain_binned_roc_auc(positives, negatives):
    """binned_roc_auc as first written: one loop over every bin."""
    total_pos, total_neg = sum(positives), sum(negatives)
    if total_pos <= 0.0 or total_neg <= 0.0:
        return None
    below = area = 0.0
    for pos, neg in zip(positives, negatives):
        if pos:
            area += pos * (below + 0.5 * neg)
        below += neg
    return area / (total_pos * total_neg)


def test_binned_auc_is_the_plain_loop_bit_for_bit():
    rng = random.Random(3)
    for _ in range(500):
        share = rng.random()
        pos = [rng.random() * 10.0 ** rng.randint(-3, 3) if rng.random() < share else 0.0 for _ in range(LOGIT_BINS)]
        neg = [rng.random() * 10.0 ** rng.randint(-3, 3) if rng.random() < share else 0.0 for _ in range(LOGIT_BINS)]
        assert binned_roc_auc(pos, neg) == _plain_binned_roc_auc(pos, neg)


def test_update_bins_and_scores_each_prediction_as_bin_and_clipping_define_it():
    from edge.learning.fading import _bin

    rng = random.Random(4)
    edges = [0.0, 1.0, -0.5, 1.5, 1e-300, 1 - 1e-16, 0.5, 1e-3, 1 - 1e-3, 0.00033, 0.99967, None]  # (NaN: _bin raises, as ever)
    ev = FadingEvaluation(("a", "b"), half_life=300, every=10**9)
    pos, neg = {m: [0.0] * LOGIT_BINS for m in "ab"}, {m: [0.0] * LOGIT_BINS for m in "ab"}
    loss = {"a": 0.0, "b": 0.0}
    w = 1.0
    for _ in range(3000):
        y = rng.random() < 0.4
        ps = {m: rng.choice(edges) if rng.random() < 0.2 else rng.random() for m in "ab"}
        ev.update(y, ps)
        w *= ev._growth
        for m, p in ps.items():
            p = 0.5 if p is None else p
            (pos if y else neg)[m][_bin(p)] += w
            q = min(max(p, 1e-3), 1.0 - 1e-3)
            loss[m] += -w * math.log(q if y else 1.0 - q)
    for m in "ab":
        assert ev._pos[m] == pos[m] and ev._neg[m] == neg[m]
        assert ev._loss[m] == loss[m]


def test_the_straight_line_update_is_the_loop_bit_for_bit():
    """update_values (the generated straight-line code per tuple of candidates) against its loop,
    _update_values_loop, on twins: histograms, losses, weights, counts and refreshes to the bit."""
    from edge.learning.fading import _STRAIGHT

    rng = random.Random(12)
    edges = [0.0, -0.0, 1.0, -0.5, 1.5, 1e-300, 1 - 1e-16, 0.5, 1e-3, 1 - 1e-3, 0.00033, 0.99967, None, float("inf")]
    for models in [("model", "rules", "last_request", "stacker"), ("a",), ("it's", 'a "b"')]:
        ours = FadingEvaluation(models, half_life=2.0, every=7)  # weights double every 2 labels: rescaled often
        reference = FadingEvaluation(models, half_life=2.0, every=7)
        for _ in range(3000):
            y = rng.random() < 0.4
            ps = [rng.choice(edges) if rng.random() < 0.2 else rng.random() for _ in models]
            refreshed = ours.update_values(y, ps)
            reference._update_values_loop(y, ps)
            reference._since_refresh += 1
            if reference._since_refresh >= reference.every:
                reference.refresh()
            assert refreshed == (reference._since_refresh == 0)
        assert models in _STRAIGHT
        assert vars(ours).keys() == vars(reference).keys()
        for key, value in vars(reference).items():
            assert repr(getattr(ours, key)) == repr(value), key
