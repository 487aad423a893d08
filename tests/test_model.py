import pytest

from edge.model import ECT_DEGRADED_P, MODELS, NetworkModel, NullModel, RuleModel, ect_class


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
    assert model.predict({"last_kbps": 60.0, "last_bytes": 30_000.0, "last_ms": 4000.0}) == ECT_DEGRADED_P["2g"]
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
    from edge.model import ChampionChallenger

    cc = ChampionChallenger(min_labels=50, window=200, every=10, export_metrics=False)
    _poisoned_stream(cc, ["198.51.100.1", "198.51.100.2", "198.51.100.3"])
    auc = cc.snapshot()["roc_auc"]
    assert auc["model"] > 0.9 > 0.1 > auc["rules"]
    assert cc.source == "rules" and not cc.senders_diverse()


def test_labels_from_many_clients_can_elect_it_but_untrusted_ones_count_against():
    from edge.model import ChampionChallenger

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
    from edge.model import ChampionChallenger

    cc = ChampionChallenger(min_labels=50, window=200, every=10, export_metrics=False)
    _poisoned_stream(cc, [None])  # unattributed (offline): the election does not look at senders
    assert cc.source == "model"
    assert cc.model.predict({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0}) > 0.9
    assert cc.predict({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0}) == 0.5
    assert cc.predict({"last_kbps": 20000.0, "last_age_s": 10.0, "ect": "4g"}) <= 0.5
    # A 4G hint contradicted by a fresh slow measurement is not strong evidence: the model decides.
    assert cc.predict({"ect": "4g", "last_kbps": 300.0, "last_age_s": 10.0}) == cc.model.predict(
        {"ect": "4g", "last_kbps": 300.0, "last_age_s": 10.0}
    )
