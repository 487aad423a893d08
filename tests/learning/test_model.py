import pytest

from edge.learning.model import ECT_DEGRADED_P, MODELS, NetworkModel, NullModel, RuleModel, ect_class
from edge.learning.model.rules import last_throughput_p
from tests.learning.scripted import Scripted


@pytest.mark.parametrize(
    ("rtt", "down", "expected"),
    [
        (2000, None, "slow-2g"),
        (None, 49, "slow-2g"),
        (1400, None, "2g"),
        (None, 69, "2g"),
        (270, None, "3g"),
        (None, 699, "3g"),
        (269, 700, "4g"),
        (50, 10_000, "4g"),
    ],
)
def test_chromium_ect_table(rtt, down, expected):
    assert ect_class(rtt, down) == expected


def test_cold_start_is_unknown():
    assert RuleModel().predict({}) is None
    assert RuleModel().predict({"device_class": "phone", "save_data": 0.0}) is None
    assert NullModel().predict({"ect": "slow-2g"}) is None


def test_each_signal_alone_moves_the_prediction():
    model = RuleModel()
    assert model.predict({"ect": "slow-2g"}) == ECT_DEGRADED_P["slow-2g"]
    assert model.predict({"rtt_ms": 1500.0}) == ECT_DEGRADED_P["2g"]
    assert model.predict({"downlink_kbps": 20_000.0}) == ECT_DEGRADED_P["4g"]
    assert model.predict({"radio": "gprs"}) > 0.9
    assert model.predict({"radio": "nr"}) < 0.2
    assert model.predict({"last_kbps": 60.0, "last_bytes": 30_000.0, "last_ms": 4000.0}) == last_throughput_p(60.0) > 0.9
    assert model.predict({"cell_degraded_share": 0.8, "cell_samples": 20.0}) == pytest.approx(0.8)


def test_round_trips_alone_only_ever_say_slow():
    model = RuleModel()
    # A whole request of 1.5 s is 2g-like whatever its size; 300 ms for 16 KB says nothing (4G with 170 ms RTT).
    assert model.predict({"last_bytes": 2000.0, "last_ms": 1500.0}) == ECT_DEGRADED_P["2g"]
    assert model.predict({"last_bytes": 16_000.0, "last_ms": 300.0}) is None
    # A measured round trip: 400 ms is slow (3g); 150 ms could still be a thin 2G link, so no evidence.
    assert model.predict({"last_rtt_ms": 400.0}) == pytest.approx(ECT_DEGRADED_P["3g"])
    assert model.predict({"last_rtt_ms": 150.0}) is None


def test_measured_throughput_outweighs_the_radio_type():
    fast_on_edge = RuleModel().predict({"radio": "edge", "last_kbps": 5000.0, "last_bytes": 500_000.0})
    assert fast_on_edge < 0.5


def test_models_satisfy_the_interface():
    for cls in MODELS.values():
        model = cls()
        assert isinstance(model, NetworkModel)
        model.learn({"ect": "2g"}, True)  # fixed models accept and ignore labels


# The champion election and the safety envelope (docs/feedback.md, "Threat model").


def _poisoned_stream(cc, clients, n=400):
    """Labels that contradict the browser's own hints (4G slow, 2G fast): the rules rank them backwards."""
    for i in range(n):
        client = clients[i % len(clients)]
        cc.learn_from({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0}, True, client, True)
        cc.learn_from({"ect": "2g"}, False, client, True)


def test_a_burst_from_few_clients_cannot_elect_the_model():
    from edge.learning.model import ChampionChallenger

    cc = ChampionChallenger(min_labels=50, window=200, every=10, export_metrics=False)
    _poisoned_stream(cc, ["198.51.100.1", "198.51.100.2", "198.51.100.3"])
    auc = cc.snapshot()["roc_auc"]
    assert auc["model"] > 0.9 > 0.1 > auc["rules"]
    assert cc.source == "rules" and not cc.senders_diverse()


def test_labels_from_many_clients_can_elect_it_but_untrusted_ones_count_against():
    from edge.learning.model import ChampionChallenger

    many = [f"192.0.2.{i}" for i in range(20)]
    cc = ChampionChallenger(min_labels=50, window=200, every=10, export_metrics=False)
    _poisoned_stream(cc, many)
    assert cc.source == "model" and cc.snapshot()["window_clients"] == 20
    cc = ChampionChallenger(min_labels=50, window=200, every=10, export_metrics=False)
    for i in range(400):
        trusted = i % 2 == 0  # half of them contradict what edge observed
        cc.learn_from({"ect": "4g"}, True, many[i % 20], trusted)
        cc.learn_from({"ect": "2g"}, False, many[i % 20], trusted)
    assert cc.source == "rules"


def test_the_envelope_never_serves_strong_fresh_4g_evidence_minimal():
    from edge.learning.model import ChampionChallenger

    cc = ChampionChallenger(min_labels=50, window=200, every=10, export_metrics=False)
    _poisoned_stream(cc, [None])  # unattributed (offline): the election does not look at senders
    assert cc.source == "model"
    from edge.pipeline.policy import Policy

    policy = Policy.from_toml("[tiers]\nlite = 0.5\nminimal = 0.8")
    fast = {"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0}
    p = cc.predict(fast)
    assert p == cc.calibrators["model"](cc.model.predict(fast)) > 0.9  # p itself is the model's (it still ranks requests)...
    assert policy.decide(p).tier == "minimal"
    assert cc.tier_ceiling(fast) == "lite"  # ...but the envelope caps the tier the policy serves
    assert policy.decide(p, ceiling=cc.tier_ceiling(fast)).tier == "lite"
    assert cc.tier_ceiling({"last_kbps": 20000.0, "last_age_s": 10.0, "ect": "4g"}) == "lite"
    # A 4G hint contradicted by a fresh slow measurement is not strong evidence: the model decides.
    assert cc.tier_ceiling({"ect": "4g", "last_kbps": 300.0, "last_age_s": 10.0}) is None
    # While the rules decide there is no envelope to apply.
    cc._champion = "rules"
    assert cc.tier_ceiling(fast) is None


# The switching rule of the champion/challenger (docs/learning.md, "The deployed decision").


def _cc(**kw):
    from edge.learning.model import ChampionChallenger

    kw.setdefault("window", 200)
    kw.setdefault("every", 10)
    return ChampionChallenger(Scripted(), export_metrics=False, **kw)


def _labels(n, rng, *, model_skill, positive_rate=0.4):
    """Labels with last_kbps the rules and last_request read perfectly; the scripted model is right with ``model_skill``."""
    for _ in range(n):
        y = rng.random() < positive_rate
        kbps = rng.uniform(100, 600) if y else rng.uniform(800, 5000)
        right = rng.random() < model_skill
        yield {"last_kbps": kbps, "p_model": (0.8 if y == right else 0.2)}, y


def test_no_election_before_min_labels_and_min_class_labels():
    import random

    cc = _cc(min_labels=150, min_class_labels=20)
    history = []
    for x, y in _labels(300, random.Random(1), model_skill=1.0):
        x["last_kbps"] = 1000.0  # the rules and last_request know nothing; the model is perfect
        cc.learn(x, y)
        history.append(cc.source)
    assert set(history[:149]) == {"rules"} and history[-1] == "model"
    # Rare positives: a window with fewer than min_class_labels degraded labels elects nothing.
    cc = _cc(min_labels=50, min_class_labels=20)
    for x, y in _labels(300, random.Random(2), model_skill=1.0, positive_rate=0.03):
        x["last_kbps"] = 1000.0
        cc.learn(x, y)
    assert cc.evaluation.window_positives < 20 and cc.source == "rules"


def test_candidates_within_the_margin_never_flap():
    import random

    # The model and last_request are both perfect on these labels: whoever is champion stays.
    cc = _cc(min_labels=50, min_class_labels=5, margin=0.02, candidates=("model", "rules", "last_request"))
    rng = random.Random(3)
    sources = []
    for x, y in _labels(2000, rng, model_skill=1.0):
        cc.learn(x, y)
        sources.append(cc.source)
    assert cc.switches <= 1 and sources[-1] in ("rules", "model", "last_request")
    # The model a little better than last_request (noise, within the margin): no switch either way.
    cc = _cc(min_labels=50, min_class_labels=5, margin=0.05, candidates=("model", "rules", "last_request"))
    for x, y in _labels(2000, random.Random(4), model_skill=0.97):
        x["last_kbps"] = x["last_kbps"] * (1.0 + 0.3 * rng.random())  # last_request ~perfect too
        cc.learn(x, y)
    assert cc.switches <= 1


def test_a_fixed_candidate_is_elected_and_demoted_to_the_rules():
    import random

    from edge.learning.model import last_request_p

    # last_request ranks these perfectly; the rules also weigh the browser's hint, which here misleads.
    cc = _cc(min_labels=100, min_class_labels=10, margin=0.02, candidates=("model", "rules", "last_request"))
    rng = random.Random(5)
    for _ in range(400):
        y = rng.random() < 0.4
        kbps = rng.uniform(750, 1000) if y else rng.uniform(1000, 1300)
        cc.learn({"last_kbps": kbps, "ect": "4g" if y else "3g", "p_model": 0.5}, y)
    assert cc.source == "last_request"
    x = {"last_kbps": 900.0}
    assert cc.predict(x) == cc.calibrators["last_request"](last_request_p(x))
    assert cc.predict({}) is None  # no opinion: the rules answer (here, nothing)
    for _ in range(800):  # the relation inverts: last_request is now worse than the rules, whose hint is right
        y = rng.random() < 0.4
        kbps = rng.uniform(1000, 1300) if y else rng.uniform(750, 1000)
        cc.learn({"last_kbps": kbps, "ect": "3g" if y else "4g", "p_model": 0.5}, y)
    assert cc.source == "rules" and cc.switches == 2


def test_every_election_needs_diverse_senders():
    import random

    cc = _cc(min_labels=100, min_class_labels=10, candidates=("model", "rules", "last_request"))
    rng = random.Random(6)
    for i in range(600):
        y = rng.random() < 0.4
        kbps = rng.uniform(750, 1000) if y else rng.uniform(1000, 1300)
        cc.learn_from({"last_kbps": kbps, "p_model": 0.5}, y, f"198.51.100.{i % 3}", True)
    assert cc.source == "rules" and not cc.senders_diverse()


def test_unknown_candidates_are_refused():
    from edge.learning.model import ChampionChallenger

    with pytest.raises(ValueError, match="candidates"):
        ChampionChallenger(Scripted(), candidates=("model", "oracle", "rules"), export_metrics=False)
    with pytest.raises(ValueError, match="candidates"):
        ChampionChallenger(Scripted(), candidates=("model",), export_metrics=False)


# The prior (edge/learning/prior.py, docs/model-card.md).


def test_the_shipped_prior_loads_and_is_used():
    from edge.learning.model import DEFAULT_PRIOR, MODELS, ChampionChallenger, RiverModel
    from edge.learning.prior import load_prior

    prior = load_prior(DEFAULT_PRIOR)
    assert prior.meta["trained_on"] and prior.meta["labels"] > 10_000 and "command" in prior.meta
    assert MODELS["auto"](export_metrics=False).model.prior is None  # not by default (docs/model-card.md)
    auto = ChampionChallenger(RiverModel(prior=DEFAULT_PRIOR), export_metrics=False)
    assert auto.model.prior == DEFAULT_PRIOR.name and auto.snapshot()["prior"] == DEFAULT_PRIOR.name
    # It predicts from the first request, and ranks a slow last request above a fast one.
    # (as edge sends them: the measurement cookie carries the last throughput and the client's average)
    slow = {"save_data": 0.0, "last_kbps": 150.0, "last_age_s": 20.0, "client_kbps_avg": 300.0}
    fast = {"save_data": 0.0, "last_kbps": 8000.0, "last_age_s": 20.0, "client_kbps_avg": 6000.0}
    assert auto.model.predict(slow) > 0.5 > auto.model.predict(fast)
    assert RiverModel().predict(slow) is None  # without a prior: unknown until both classes are seen
    # It keeps learning online from there.
    before = auto.model.predict(fast)
    for _ in range(50):
        auto.learn(fast, True)
    assert auto.model.predict(fast) > before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not JSON"),
        (b"[1, 2]", "format"),
        (b'{"format": "edge-prior/9"}', "format 'edge-prior/9'"),
        (b'{"format": "edge-prior/1", "estimator": "arf"}', "only 'logreg'"),
        (b'{"format": "edge-prior/1", "estimator": "logreg", "scaler": {"counts": {}, "means": {}, "vars": {}}, '
         b'"weights": {"a": "x"}, "intercept": 0}', "weights\\['a'\\] is not a finite number"),
        (b'{"format": "edge-prior/1", "estimator": "logreg", "scaler": {"counts": {"a": 1}, "means": {}, "vars": {}}, '
         b'"weights": {"a": 1}, "intercept": 0}', "different features"),
    ],
)
def test_a_corrupt_prior_is_a_clear_error(tmp_path, content, message):
    from edge.learning.model import ChampionChallenger, RiverModel
    from edge.learning.prior import PriorError

    path = tmp_path / "prior.json"
    path.write_bytes(content)
    with pytest.raises(PriorError, match=message) as info:
        RiverModel(prior=path)
    assert str(path) in str(info.value)
    with pytest.raises(PriorError, match="cannot read"):
        ChampionChallenger(RiverModel(prior=tmp_path / "missing.json"))


def test_a_prior_is_logreg_only_and_survives_a_checkpoint(tmp_path):
    import random

    from edge.learning.model import DEFAULT_PRIOR, ChampionChallenger, RiverModel

    with pytest.raises(ValueError, match="prior"):
        RiverModel("hat", prior=DEFAULT_PRIOR)
    cc = ChampionChallenger(RiverModel(prior=DEFAULT_PRIOR), export_metrics=False)
    rng = random.Random(0)
    for _ in range(100):
        kbps = rng.uniform(100, 5000)
        cc.learn({"last_kbps": kbps, "last_age_s": 10.0}, kbps < 700)
    cc.save(tmp_path / "m.ckpt")
    restored = ChampionChallenger.load(tmp_path / "m.ckpt")
    probe = {"last_kbps": 500.0, "last_age_s": 10.0}
    assert restored.model.prior == DEFAULT_PRIOR.name and restored.predict(probe) == cc.predict(probe)


def test_a_checkpoint_of_the_previous_layout_still_loads(tmp_path):
    """Checkpoints written before the extra candidates and priors: two candidates, no prior attribute."""
    import random

    from edge.learning.evaluation import RollingEvaluation
    from edge.learning.model import ChampionChallenger, RiverModel

    cc = ChampionChallenger(RiverModel(), export_metrics=False)
    cc.evaluation = RollingEvaluation(("model", "rules"), window=1000, every=25)
    for attr in ("switches", "min_class_labels"):
        cc.__dict__.pop(attr, None)
    cc.model.__dict__.pop("prior", None)
    del cc.evaluation.__dict__["window_positives"]
    cc.save(tmp_path / "old.ckpt")
    old = ChampionChallenger.load(tmp_path / "old.ckpt")
    assert old.model.prior is None and old.evaluation.models == ("model", "rules")
    rng = random.Random(1)
    for _ in range(60):
        old.learn({"last_kbps": rng.uniform(100, 3000)}, rng.random() < 0.4)
    assert old.evaluation.window_positives == sum(old.evaluation._y)
    assert set(old.snapshot()["roc_auc"]) == {"model", "rules"}


def test_a_frozen_deployment_judges_its_candidates_on_its_own_labels():
    import random

    # Trained where the model ranks perfectly and the rules know nothing: the model is elected,
    # and a long memory of it (3000 labels, half-life 2000) would take long to overturn.
    cc = _cc(min_labels=100, min_class_labels=20, window=1000, every=25, candidates=("model", "rules", "last_request"))
    rng = random.Random(7)
    for _ in range(3000):
        y = rng.random() < 0.4
        cc.learn({"last_kbps": 1000.0, "p_model": 0.8 if y else 0.2}, y)
    assert cc.source == "model" and cc.evaluation.in_window > 1500
    # Deployed frozen on a network where the model is a coin toss and the last request ranks well:
    # the first observe starts a new memory and the rules decide (no evidence left for anyone); the
    # rules read the last throughput as last_request does, so neither beats the other by a margin.
    sources = []
    for _ in range(400):
        y = rng.random() < 0.4
        kbps = rng.uniform(100, 600) if y else rng.uniform(800, 5000)
        cc.observe({"last_kbps": kbps, "p_model": rng.choice((0.2, 0.8))}, y)
        sources.append(cc.source)
    assert sources[0] == "rules" and "model" not in sources
    assert cc.evaluation.in_window < 400 and cc.evaluation.labels == 3400
    assert cc.switches == 2 and sources[-1] == "rules"  # rules → model in training, → rules at the frozen start


def test_a_frozen_model_that_ranks_the_new_network_better_is_elected_on_its_labels():
    import random

    # Trained where the rules (the last request) rank perfectly and the model is a coin toss …
    cc = _cc(min_labels=100, min_class_labels=20, window=1000, every=25, candidates=("model", "rules", "last_request"))
    rng = random.Random(9)
    for _ in range(3000):
        y = rng.random() < 0.4
        kbps = rng.uniform(100, 600) if y else rng.uniform(800, 5000)
        cc.learn({"last_kbps": kbps, "p_model": rng.choice((0.2, 0.8))}, y)
    assert cc.source in ("rules", "last_request")
    # … deployed frozen where only the model can tell: elected on the new labels alone.
    for _ in range(400):
        y = rng.random() < 0.4
        cc.observe({"last_kbps": 1000.0, "p_model": 0.8 if y else 0.2}, y)
    assert cc.source == "model"


def test_the_memory_starts_afresh_once_per_frozen_deployment_only():
    import random

    cc = _cc(min_labels=100, min_class_labels=20, window=1000, every=25)
    rng = random.Random(8)
    for _ in range(500):
        y = rng.random() < 0.4
        cc.learn({"last_kbps": 1000.0, "p_model": 0.8 if y else 0.2}, y)
    cc.observe({"last_kbps": 1000.0, "p_model": 0.8}, True)
    assert cc.evaluation.in_window == pytest.approx(1.0)  # forgotten: only the observed label
    for _ in range(50):  # observing goes on: the memory grows again
        cc.observe({"last_kbps": 1000.0, "p_model": 0.2}, False)
    assert cc.evaluation.in_window > 50
    # Labels learned and observed in turn (fewer than min_labels learned in between) never wipe the memory.
    before = cc.evaluation.in_window
    for i in range(40):
        (cc.learn if i % 2 else cc.observe)({"last_kbps": 1000.0, "p_model": 0.2}, False)
    assert cc.evaluation.in_window > before
    # A checkpoint from before this attribute existed restores with the defaults.
    import pickle

    state = pickle.loads(pickle.dumps(cc))
    del state.__dict__["_observing"], state.__dict__["_learned_since_forget"]
    assert state._observing is False and state._learned_since_forget == 0


def test_the_rules_inline_last_throughput_p_and_ect_class_to_the_bit():
    """RuleModel.predict writes last_throughput_p (and ect_class of a slow round trip) inline: the same floats as the
    calls it replaces, for throughputs and round trips across the table's edges (±0.0, negatives, inf; NaN, ints)."""
    import math
    import random

    from edge.learning.model import rules

    def with_calls(x):  # RuleModel.predict's share of the last request, as it was written (the reference)
        last_kbps, last_rtt = x.get("last_kbps"), x.get("last_rtt_ms")
        if not isinstance(last_rtt, float):
            last_rtt = None
        return last_throughput_p(last_kbps, last_rtt) * 3.0 / 3.0

    rng = random.Random(14)
    edges = [0.0, -0.0, -5.0, 1.0, 50.0, 69.9, 70.0, 269.99, 270.0, 699.0, 700.0, 1399.9, 1400.0, 1999.9, 2000.0, 5000.0, math.inf]
    for _ in range(3000):
        kbps = rng.choice([*edges, rng.uniform(-100.0, 30_000.0), rng.lognormvariate(7, 2)])
        rtt = rng.choice([*edges, rng.uniform(0.0, 3000.0), None, math.nan, 300, "300"])
        x = {"last_kbps": kbps} if rtt is None else {"last_kbps": kbps, "last_rtt_ms": rtt}
        got, expected = RuleModel().predict(x), with_calls(x)
        assert repr(got) == repr(expected), x
    assert rules.SLOW_RTT_MS == 270.0 and [ect_class(rtt_ms=r) for r in (270.0, 1400.0, 2000.0)] == ["3g", "2g", "slow-2g"]


def test_the_throughput_candidates_max_as_a_comparison_to_the_bit():
    """last_request_p and client_average_p write max(kbps, 0.0) as a comparison: the same floats (±0.0, negatives, NaN, inf)."""
    import math

    from edge.learning.model.candidates import CANDIDATE_THRESHOLD_KBPS, client_average_p, last_request_p

    for kbps in (0.0, -0.0, -1.0, 1e-300, 5e-324, 699.9, 700.0, 1e308, math.inf, -math.inf, math.nan, 700, None, "700"):
        finite = isinstance(kbps, float) and math.isfinite(kbps)
        expected = repr(CANDIDATE_THRESHOLD_KBPS / (CANDIDATE_THRESHOLD_KBPS + max(kbps, 0.0)) if finite else None)
        assert repr(last_request_p({"last_kbps": kbps})) == expected == repr(client_average_p({"client_kbps_avg": kbps}))
