"""The learned stacker (edge/learning/stacker.py) and how the champion/challenger elects it."""

from __future__ import annotations

import pickle
import random
import timeit

import pytest

from edge.learning.model import ChampionChallenger
from edge.learning.model.champion import DEFAULT_CANDIDATES, STACKER_MIN_LABELS
from edge.learning.stacker import INPUTS, Stacker
from tests.learning.scripted import scripted_cc as _cc


def _cell_labels(n, rng, *, positive_rate=0.4, informative=True):
    """The rules and last_request see one throughput for all (they cannot rank); the cell's degraded share can."""
    for _ in range(n):
        y = rng.random() < positive_rate
        share = (rng.uniform(0.5, 0.9) if y else rng.uniform(0.1, 0.5)) if informative else rng.uniform(0.1, 0.9)
        yield {"last_kbps": 1000.0, "cell_degraded_share": share, "p_model": 0.5}, y


def test_a_cold_stacker_serves_the_rules_p():
    s = Stacker()
    for p in (0.01, 0.2, 0.5, 0.93):
        assert s.predict({"rules": p}) == pytest.approx(p)
        # The others' opinions weigh nothing yet, nor does their absence.
        assert s.predict({"rules": p, "model": 0.99, "last_request": 0.01, "cell_share": None}) == pytest.approx(p)


def test_the_stacker_learns_what_the_rules_miss_and_reads_missing_opinions():
    rng = random.Random(0)
    s = Stacker()
    for _ in range(2000):
        y = rng.random() < 0.4
        # The client's smoothed throughput tells the classes apart; the model has no opinion half the time.
        s.learn({"rules": 0.5, "client_average": 0.8 if y else 0.2, "model": None if rng.random() < 0.5 else 0.5}, y)
    assert s.labels == 2000
    hi = s.predict({"rules": 0.5, "client_average": 0.8, "model": None})
    lo = s.predict({"rules": 0.5, "client_average": 0.2, "model": None})
    assert hi > 0.8 and lo < 0.2
    # An opinion at the edge of [0, 1] (or NaN) is clipped or read as none, never an infinity.
    assert 0.0 < s.predict({"rules": 1.0, "client_average": 0.0, "cell_share": float("nan")}) < 1.0
    assert len(s.w) == 1 + 2 * len(INPUTS)


def test_the_stacker_pickles_bit_for_bit():
    rng = random.Random(1)
    s = Stacker()
    for _ in range(100):
        s.learn({"rules": rng.random(), "last_request": rng.random()}, rng.random() < 0.3)
    t = pickle.loads(pickle.dumps(s))
    probe = {"rules": 0.3, "last_request": 0.7, "cell_share": 0.2}
    assert t.predict(probe) == s.predict(probe) and t.labels == s.labels and t.g2 == s.g2


def test_the_stacker_is_a_default_candidate_elected_only_after_its_minimum_labels():
    assert "stacker" in DEFAULT_CANDIDATES
    cc = _cc()
    history = []
    for x, y in _cell_labels(1500, random.Random(2)):
        cc.learn(x, y)
        history.append(cc.source)
    # Only the stacker can rank these; it is no challenger before it has learned STACKER_MIN_LABELS labels.
    first = history.index("stacker")
    assert first >= STACKER_MIN_LABELS - 1 and set(history[:first]) == {"rules"}
    assert history[-1] == "stacker" and cc.switches == 1
    x = {"last_kbps": 1000.0, "cell_degraded_share": 0.8, "p_model": 0.5}
    assert cc.predict(x) == cc.stacker.predict(cc._stacker_inputs(x, 0.5, cc.rules.predict(x))) > 0.5


def test_the_stacker_cannot_flap_on_noise():
    # Nothing tells the classes apart: the stacker learns noise; the rules stay the champion, no switch.
    cc = _cc()
    for x, y in _cell_labels(4000, random.Random(3), informative=False):
        cc.learn(x, y)
    assert cc.source == "rules" and cc.switches == 0
    # The last request ranks perfectly, and the stacker learns to weigh it as much: within the margin of each
    # other, whoever leads first stays (at most the one switch from the rules, never back and forth).
    cc = _cc(candidates=("model", "rules", "last_request", "stacker"))
    rng = random.Random(4)
    sources = []
    for _ in range(4000):
        y = rng.random() < 0.4
        kbps = rng.uniform(100, 600) if y else rng.uniform(800, 5000)
        cc.learn({"last_kbps": kbps, "cell_degraded_share": rng.uniform(0.1, 0.9), "p_model": 0.5}, y)
        sources.append(cc.source)
    assert cc.switches <= 1
    assert sum(a != b for a, b in zip(sources, sources[1:])) <= 1


def test_a_frozen_deployment_starts_the_stacker_afresh_and_it_keeps_learning():
    cc = _cc()
    rng = random.Random(5)
    for x, y in _cell_labels(1500, rng):
        cc.learn(x, y)
    assert cc.source == "stacker"
    calibrators = {k: (c.a, c.labels) for k, c in cc.calibrators.items()}
    # Frozen on a network where the cell share means the opposite: the guard forgets, the rules serve,
    # and the stacker learns the new labels from the rules' p (the calibrators and the model learn nothing).
    sources = []
    for x, y in _cell_labels(1500, rng):
        x["cell_degraded_share"] = 1.0 - x["cell_degraded_share"]
        cc.observe(x, y)
        sources.append(cc.source)
    assert sources[0] == "rules" and cc.stacker.labels == 1500 and cc.model.labels == 1500
    assert {k: (c.a, c.labels) for k, c in cc.calibrators.items()} == calibrators
    assert sources[-1] == "stacker"  # re-elected on the new network's labels, after its minimum
    assert set(sources[: STACKER_MIN_LABELS - 1]) == {"rules"}
    x = {"last_kbps": 1000.0, "cell_degraded_share": 0.2, "p_model": 0.5}
    assert cc.predict(x) > 0.5  # the inverted relation, learned while frozen


def test_a_checkpoint_keeps_the_stacker_and_one_from_before_it_still_loads(tmp_path):
    cc = _cc()
    for x, y in _cell_labels(1000, random.Random(6)):
        cc.learn(x, y)
    assert cc.source == "stacker"
    cc.save(tmp_path / "m.ckpt")
    restored = ChampionChallenger.load(tmp_path / "m.ckpt")
    probe = {"last_kbps": 800.0, "cell_degraded_share": 0.7, "p_model": 0.5}
    assert restored.source == "stacker" and restored.predict(probe) == cc.predict(probe)
    assert restored.stacker.w == cc.stacker.w
    # A checkpoint from before the stacker: no attribute, three candidates. It loads, serves and learns as before.
    old = _cc(candidates=("model", "rules", "last_request"))
    del old.__dict__["stacker"]
    old.save(tmp_path / "old.ckpt")
    loaded = ChampionChallenger.load(tmp_path / "old.ckpt")
    assert loaded.stacker is None and loaded.evaluation.models == ("model", "rules", "last_request")
    for x, y in _cell_labels(300, random.Random(7)):
        loaded.learn(x, y)
    assert loaded.stacker is None and loaded.source == "rules" and loaded.predict(probe) is not None


def test_the_stacker_is_cheap():
    s = Stacker()
    ps = {"rules": 0.3, "model": 0.4, "last_request": 0.2, "client_average": 0.25, "cell_share": None}
    learn = min(timeit.repeat(lambda: s.learn(ps, True), number=2000, repeat=3)) / 2000
    predict = min(timeit.repeat(lambda: s.predict(ps), number=2000, repeat=3)) / 2000
    assert learn < 100e-6 and predict < 100e-6  # a few µs; generous for loaded CI machines


def test_the_stackers_sum_is_the_plain_indexed_sum_bit_for_bit():
    from edge.learning.stacker import _N, INPUTS, _sigmoid

    rng = random.Random(8)
    s = Stacker()
    for _ in range(500):
        ps = {name: rng.choice([None, 0.0, 1.0, rng.random()]) for name in INPUTS}
        x, w = Stacker.features(ps), list(s.w)
        assert s.predict(ps) == _sigmoid(sum([w[i] * x[i] for i in range(_N)]))
        assert s.learn(ps, rng.random() < 0.4) == _sigmoid(sum([w[i] * x[i] for i in range(_N)]))


def test_learn_values_is_the_plain_adagrad_step_bit_for_bit():
    """Stacker.learn (visiting only the non-zero inputs) against the plain definition over all 11 weights."""
    import math
    from operator import mul

    def plain(s, ps, y):
        x = s.features(ps)
        p = 1.0 / (1.0 + math.exp(-z)) if (z := sum(map(mul, s.w, x))) >= 0 else math.exp(z) / (1.0 + math.exp(z))
        error = p - 1.0 if y else p
        for i, xi in enumerate(x):
            if error and xi:
                g = error * xi
                s.g2[i] += g * g
                s.w[i] -= s.lr * g / math.sqrt(s.g2[i])
        s.labels += 1
        return p

    rng = random.Random(7)
    ours, reference = Stacker(), Stacker()

    def opinion():
        r = rng.random()
        return None if r < 0.2 else 0.5 if r < 0.25 else 0.0 if r < 0.28 else 1.0 if r < 0.3 else float("nan") if r < 0.32 else rng.random()

    for _ in range(5000):
        ps = {name: opinion() for name in INPUTS}
        y = rng.random() < 0.3
        assert ours.learn(ps, y) == plain(reference, ps, y)
    assert ours.w == reference.w and ours.g2 == reference.g2 and ours.labels == reference.labels


def test_the_straight_line_learn_is_the_loop_bit_for_bit():
    """Stacker.learn_values (the generated straight-line code for the five inputs) against its loop,
    _learn_values_loop, on twins: every prediction, weight and sum of squares to the bit, edge values included."""
    rng = random.Random(17)
    ours, reference = Stacker(), Stacker()
    values = [None, float("nan"), 0.0, -0.0, 1.0, -0.5, 1.5, 0.5, 1e-300, 1 - 1e-16, 0.0024, 0.9976, float("inf")]

    def opinion():
        return rng.choice(values) if rng.random() < 0.3 else rng.random()

    for _ in range(20000):
        ps = tuple(opinion() for _ in INPUTS)
        y = rng.random() < 0.3
        assert repr(ours.learn_values(ps, y)) == repr(reference._learn_values_loop(ps, y))
    assert [repr(v) for v in ours.w] == [repr(v) for v in reference.w]
    assert [repr(v) for v in ours.g2] == [repr(v) for v in reference.g2] and ours.labels == reference.labels
    assert ours.learn_values([0.7, 0.2], True) == reference._learn_values_loop([0.7, 0.2], True)  # fewer inputs: the loop
