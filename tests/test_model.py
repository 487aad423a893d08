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
