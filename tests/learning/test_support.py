"""The support check (edge/learning/model/champion.py): the River model serves only inputs like those it learned."""

from __future__ import annotations

import random
import timeit

from edge.learning.model import ChampionChallenger
from edge.learning.model.candidates import support_signature
from tests.learning.scripted import scripted_cc as _cc


def _radio_labels(n, rng):
    """Cell and radio columns the model reads (its p ranks them); the rules see one throughput for all."""
    for _ in range(n):
        y = rng.random() < 0.4
        yield {"last_kbps": 1000.0, "cell_degraded_share": 0.3, "rsrp": -90.0, "p_model": 0.8 if y else 0.2}, y


def test_the_signature_says_which_feature_groups_are_present():
    assert support_signature({}) == 0
    assert support_signature({"last_kbps": 500.0, "last_age_s": 3.0}) == 1
    assert support_signature({"last_kbps": 500.0, "cell_degraded_share": 0.2, "cqi": 9.0}) == 1 | 2 | 4
    assert support_signature({"ect": "3g"}) == 8 and support_signature({"tcp_rtt_ms": 40.0}) == 16
    assert support_signature({"last_kbps": None, "radio": "lte"}) == 4  # an absent value is no support


def test_the_model_serves_only_inputs_like_those_it_learned():
    cc = _cc()
    rng = random.Random(1)
    for x, y in _radio_labels(600, rng):
        cc.learn(x, y)
    assert cc.source == "model" and cc.support == {support_signature(x): 600}
    seen = {"last_kbps": 1000.0, "cell_degraded_share": 0.3, "rsrp": -90.0, "p_model": 0.9}
    assert cc.predict(seen) == cc.calibrators["model"](0.9)
    # Throughput only (another network's traces): the model never learned such an input; the rules serve it.
    unlike = {"last_kbps": 1000.0, "p_model": 0.9}
    assert cc.predict(unlike) == cc.calibrators["rules"](cc.rules.predict(unlike))
    # One learned label of that kind gives the model its support there.
    cc.learn({**unlike, "p_model": 0.5}, True)
    assert cc.source == "model" and cc.predict(unlike) == cc.calibrators["model"](0.9)


def test_a_new_kind_of_traffic_starts_the_guard_afresh_from_the_rules():
    cc = _cc()
    rng = random.Random(4)
    for x, y in _radio_labels(600, rng):
        cc.learn(x, y)
    assert cc.source == "model" and cc.switches == 1
    # Throughput-only labels from now on (another network): once they are most of the latest labels,
    # the memory the model was elected on is forgotten and the rules decide.
    sources = []
    for _ in range(200):
        y = rng.random() < 0.4
        cc.learn({"last_kbps": 300.0 if y else 3000.0, "p_model": 0.5}, y)
        sources.append(cc.source)
    first_rules = sources.index("rules")
    assert 50 < first_rules < 100 and set(sources[first_rules:]) == {"rules"}
    assert cc.switches == 2 and cc.evaluation.in_window < 200


def test_rare_unusual_inputs_do_not_reset_the_guard():
    cc = _cc()
    rng = random.Random(5)
    for x, y in _radio_labels(600, rng):
        cc.learn(x, y)
    for i, (x, y) in enumerate(_radio_labels(3000, rng)):
        if i % 3 == 0:  # a third of the labels of a kind the champion was elected without
            x = {"ect": "4g", "p_model": x["p_model"]}
        cc.learn(x, y)
    assert cc.source == "model" and cc.switches == 1


def test_a_frozen_model_gains_no_support():
    cc = _cc()
    for x, y in _radio_labels(600, random.Random(2)):
        cc.learn(x, y)
    unlike = {"last_kbps": 300.0, "p_model": 0.9}
    for i in range(500):
        cc.observe(unlike, i % 3 == 0)
    assert support_signature(unlike) not in cc.support


def test_a_checkpoint_keeps_the_support_and_one_from_before_it_loads_without_the_check(tmp_path):
    cc = _cc()
    for x, y in _radio_labels(600, random.Random(3)):
        cc.learn(x, y)
    cc.save(tmp_path / "m.ckpt")
    restored = ChampionChallenger.load(tmp_path / "m.ckpt")
    assert restored.support == cc.support and restored.source == "model"
    assert restored._champion_support == cc._champion_support
    unlike = {"last_kbps": 1000.0, "p_model": 0.9}
    assert restored.predict(unlike) == cc.predict(unlike) == cc.calibrators["rules"](cc.rules.predict(unlike))
    # A checkpoint from before the support check: no attribute. It loads and serves as before (no check).
    del cc.__dict__["support"]
    cc.save(tmp_path / "old.ckpt")
    old = ChampionChallenger.load(tmp_path / "old.ckpt")
    assert old.support is None and old.predict(unlike) == cc.calibrators["model"](0.9)
    old.learn(unlike, True)
    assert old.support is None


def test_the_check_is_cheap():
    x = {"last_kbps": 800.0, "last_age_s": 3.0, "cell_degraded_share": 0.2, "rsrp": -95.0, "ect": "4g"}
    per_call = min(timeit.repeat(lambda: support_signature(x), number=5000, repeat=3)) / 5000
    assert per_call < 20e-6  # well under a µs on a quiet machine; generous for loaded CI machines


def test_source_for_names_who_serves_the_input():
    cc = _cc()
    for x, y in _radio_labels(600, random.Random(6)):
        cc.learn(x, y)
    assert cc.source == "model"
    assert cc.source_for({"last_kbps": 1000.0, "cell_degraded_share": 0.3, "rsrp": -90.0}) == "model"
    assert cc.source_for({"last_kbps": 1000.0}) == "rules"
