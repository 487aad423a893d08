"""The River model, the champion/challenger, rolling evaluation and checkpoints."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from unittest import mock

import orjson
import pytest
import river.checks
from river import datasets

from edge.learning.evaluation import RollingEvaluation, log_loss, roc_auc, scores
from edge.learning.model import (
    DEFAULT_CANDIDATES,
    MODELS,
    ChampionChallenger,
    CheckpointError,
    EdgeFeatures,
    NetworkModel,
    RiverModel,
    make_pipeline,
)
from edge.learning.model.linear import ScaledLogReg

# --- River's own estimator checks ---------------------------------------------------------------


class _Replayable:
    """A re-iterable data set (River's checks may iterate one twice)."""

    def __init__(self, data):
        self.data = list(data)

    def __iter__(self):
        return iter(self.data)


def _phishing_datasets(model, scale=1):
    # River's _yield_datasets imports scikit-learn for data sets edge's binary classifier never
    # uses; the binary-classification streams it would pick are River's bundled Phishing ones.
    yield _Replayable(datasets.Phishing().take(200 * scale))
    yield _Replayable((x, bool(y)) for x, y in datasets.Phishing().take(200 * scale))


def _river_checks():
    with mock.patch.object(river.checks, "_yield_datasets", _phishing_datasets):
        for estimator in ("logreg",):
            model = make_pipeline(estimator)
            for check in river.checks.yield_checks(model):
                if check.__name__ in model._unit_test_skips():
                    continue
                yield pytest.param(model, check, id=f"{estimator}:{check.__name__}")


@pytest.mark.parametrize(("model", "check"), list(_river_checks()))
def test_river_estimator_checks(model, check):
    check(model.clone())


def test_feature_transformer_passes_river_checks():
    for check in (river.checks.common.check_repr, river.checks.common.check_clone_is_idempotent):
        check(EdgeFeatures())


# --- RiverModel ---------------------------------------------------------------------------------


def test_river_model_is_a_network_model():
    assert isinstance(RiverModel(), NetworkModel)
    assert RiverModel.source == "model"
    assert MODELS["river"] is RiverModel


@pytest.mark.parametrize("estimator", ["logreg", "hat", "arf"])
def test_cold_start_is_unknown_until_both_classes_seen(estimator):
    model = RiverModel(estimator)
    assert model.predict({"radio": "lte", "cqi": 9.0}) is None
    for _ in range(5):
        model.learn({"radio": "lte", "cqi": 3.0}, True)
    assert model.predict({"radio": "lte", "cqi": 3.0}) is None  # one class only: still unknown
    model.learn({"radio": "nr", "cqi": 14.0}, False)
    p = model.predict({"radio": "lte", "cqi": 3.0})
    assert p is not None and 0.0 <= p <= 1.0


def test_missing_features_are_normal():
    model = RiverModel()
    rng = random.Random(1)
    keys = ["radio", "rsrp", "sinr", "cqi", "last_kbps", "last_age_s", "cell_kbps", "cell_degraded_share", "ect"]
    full = {
        "radio": "lte",
        "rsrp": -100.0,
        "sinr": 5.0,
        "cqi": 9.0,
        "last_kbps": 900.0,
        "last_age_s": 30.0,
        "cell_kbps": 800.0,
        "cell_degraded_share": 0.4,
        "cell_samples": 4.0,
        "ect": "3g",
    }
    for i in range(300):
        x = {k: v for k, v in full.items() if rng.random() < 0.5 or k not in keys}
        model.learn(x, i % 3 == 0)
    for subset in itertools.chain([()], itertools.combinations(keys, 1), [tuple(keys)]):
        p = model.predict({k: full[k] for k in subset})
        assert p is not None and 0.0 <= p <= 1.0
    assert model.predict({"save_data": 0.0}) is not None


def test_categorical_encoding_is_bounded():
    features = EdgeFeatures()
    names = set()
    for i in range(1000):
        names |= set(features.transform_one({"radio": f"radio-{i}", "os": f"os{i}", "ect": "9g", "device_class": "x"}))
    assert not any("=" in n and n.startswith(("radio=", "os=", "ect=", "device_class=")) for n in names)
    assert "cell_id" not in features.transform_one({"cell_id": "404-45-1-2"})  # cell ids are never features


def test_model_learns_the_physics():
    model = RiverModel()
    rng = random.Random(0)
    for _ in range(2000):
        kbps = 10 ** rng.uniform(1.5, 4.5)
        model.learn({"radio": "lte", "last_kbps": kbps * rng.uniform(0.5, 2.0), "last_age_s": 20.0}, kbps < 700)
    slow = model.predict({"radio": "lte", "last_kbps": 100.0, "last_age_s": 20.0})
    fast = model.predict({"radio": "lte", "last_kbps": 20_000.0, "last_age_s": 20.0})
    assert slow > 0.8 and fast < 0.2


# --- One feature pass per label: same numbers as River's own pipeline --------------------------

_POOL = {
    "radio": lambda r: r.choice(["lte", "nr", "edge", "gprs", "umts", "hspa", "wifi"]),
    "ect": lambda r: r.choice(["slow-2g", "2g", "3g", "4g", "9g"]),
    "os": lambda r: r.choice(["android", "ios", "beos"]),
    "device_class": lambda r: r.choice(["phone", "tablet", "desktop", "bot", "fridge"]),
    "rsrp": lambda r: r.choice([r.uniform(-130.0, -70.0), -115.0, -85.0]),
    "rsrq": lambda r: r.uniform(-20.0, -3.0),
    "sinr": lambda r: r.choice([r.uniform(-5.0, 30.0), 0.0, 5.0, 20.0]),
    "cqi": lambda r: float(r.randint(0, 15)),
    "last_kbps": lambda r: r.choice([r.lognormvariate(7, 1.5), 150.0, 700.0, 0.0, float("nan")]),
    "last_age_s": lambda r: r.choice([r.uniform(0.0, 300.0), 0, 3, float("inf")]),
    "last_ms": lambda r: r.uniform(50.0, 5000.0),
    "last_bytes": lambda r: r.uniform(1000.0, 500_000.0),
    "last_rtt_ms": lambda r: r.uniform(20.0, 2000.0),
    "rtt_ms": lambda r: r.uniform(20.0, 3000.0),
    "downlink_kbps": lambda r: r.choice([r.uniform(10.0, 20_000.0), -1.0]),
    "cell_kbps": lambda r: r.uniform(10.0, 20_000.0),
    "cell_degraded_share": lambda r: r.random(),
    "cell_samples": lambda r: r.choice([0.0, 1.0, 3, r.uniform(0.0, 50.0)]),
    "speed": lambda r: r.uniform(0.0, 120.0),
    "save_data": lambda r: r.choice([0.0, 1.0, True, 1]),
    "device_memory": lambda r: r.choice([0.5, 2.0, 8.0]),
    "tcp_rtt_ms": lambda r: r.choice([r.uniform(0.01, 3000.0), float("nan")]),
    "tcp_min_rtt_ms": lambda r: r.uniform(0.01, 2000.0),
    "tcp_delivery_kbps": lambda r: r.uniform(10.0, 1e8),
    "weird": lambda r: r.choice([float("nan"), float("-inf"), None, [1], "s", 3]),
}


def _random_features(rng):
    return {name: make(rng) for name, make in _POOL.items() if rng.random() < 0.6}


def _random_label(x, rng):
    kbps = x.get("last_kbps")
    slow = kbps < 700 if isinstance(kbps, float) and not math.isnan(kbps) else rng.random() < 0.4
    return slow != (rng.random() < 0.1)


def _reference_edge_features(x, half_life=60.0):
    """EdgeFeatures.transform_one as its docstring states it, written plainly (the optimised one must agree)."""
    from edge.learning.model import LAST_KBPS_BANDS, RADIO_BANDS, VOCABULARIES, RuleModel

    out = {}
    for name, value in x.items():
        if isinstance(value, str):
            if value in VOCABULARIES.get(name, ()):
                out[f"{name}={value}"] = 1.0
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            continue
        v = float(value)
        if name == "tcp_rtt_ms":  # the server's TCP figures: bands only, and only these two
            out[f"tcp_rtt_ms_band={sum(v >= edge for edge in (50, 100, 210, 400, 1170, 1670))}"] = 1.0
            continue
        if name == "tcp_goodput_kbps":
            out[f"tcp_goodput_kbps_band={sum(v >= edge for edge in LAST_KBPS_BANDS)}"] = 1.0
            continue
        if name in ("tcp_rttvar_ms", "tcp_min_rtt_ms", "tcp_delivery_kbps", "tcp_app_limited"):
            continue
        if name in ("last_kbps", "downlink_kbps", "cell_kbps", "client_kbps_avg"):
            out[name] = math.log10(max(v, 1.0))
        elif name in (
            "last_age_s", "last_ms", "last_bytes", "last_rtt_ms", "rtt_ms", "speed", "cell_samples",
        ):  # fmt: skip
            out[name] = math.log1p(max(v, 0.0))
        else:
            out[name] = v
        if name in RADIO_BANDS:
            out[f"{name}_band={sum(v >= edge for edge in RADIO_BANDS[name])}"] = 1.0
    if "last_kbps" in out:
        age = x.get("last_age_s")
        fresh = 0.5 ** (float(age) / half_life) if isinstance(age, (int, float)) else 0.5
        out["last_fresh"] = fresh
        out["last_kbps_fresh"] = (out["last_kbps"] - 3.0) * fresh
        out[f"last_band={sum(float(x['last_kbps']) >= edge for edge in LAST_KBPS_BANDS)}"] = fresh
    else:
        out["no_last"] = 1.0
    if "cell_degraded_share" in out:
        samples = x.get("cell_samples")
        n = float(samples) if isinstance(samples, (int, float)) else 0.0
        out["cell_share_conf"] = (out["cell_degraded_share"] - 0.5) * (n / (n + 3.0))
    else:
        out["no_cell"] = 1.0
    if "tcp_rtt_ms" not in x or not math.isfinite(float(x["tcp_rtt_ms"])):
        out["no_tcp"] = 1.0
    p = RuleModel().predict(x)
    if p is not None:
        p = min(max(p, 0.01), 0.99)
        out["rules"] = math.log(p / (1.0 - p))
    return out


def test_edge_features_match_the_plain_definition():
    rng = random.Random(11)
    features = EdgeFeatures()
    for _ in range(2000):
        x = _random_features(rng)
        # same keys in the same order (the order fixes the estimator's float sums), same floats
        assert list(features.transform_one(x).items()) == list(_reference_edge_features(x).items()), x



def test_edge_features_compiled_input_passes_match_the_loop_and_the_plain_definition():
    """Layouts seen often get straight-line code (edge.learning.model.unrolled.compile_inputs): the same keys,
    order and floats (down to the sign of a zero) as the loop, and as the plain definition, whatever the values."""
    from edge.learning.model import river as edge_river
    from edge.learning.model.river import _input_pass
    from edge.learning.model.unrolled import compile_inputs

    rng = random.Random(12)
    features = EdgeFeatures()
    layouts = [tuple(_random_features(rng)) for _ in range(6)] + [tuple(_POOL), (), ("radio",), (7, "rsrp")]
    for layout in layouts:
        compiled = compile_inputs(layout, edge_river._PLAN, edge_river._ONE_HOT_KEYS, edge_river._STEPS)
        for _ in range(150):
            x = {name: _POOL.get(name, _POOL["weird"])(rng) for name in layout}
            out, tcp = compiled(x.values())
            assert [(k, repr(v)) for k, v in out.items()] == [(k, repr(v)) for k, v in _input_pass(x)[0].items()], x
            assert tcp == _input_pass(x)[1]
            assert list(features.transform_one(x).items()) == list(_reference_edge_features(x).items()), x
    assert edge_river._INPUT_PASSES.get(tuple(_POOL)) is not None  # compiled in use by transform_one after 8 sightings

def _plain_river(estimator):
    """River's own pipeline, driven as RiverModel.predict and .learn would be: predict, then learn."""
    pipeline = make_pipeline(estimator)
    seen = {False: 0, True: 0}

    def step(x, y):
        p = None
        if seen[False] and seen[True]:
            proba = pipeline.predict_proba_one(x)
            p = min(max(float(proba.get(True, 0.0)), 0.0), 1.0) if proba else None
        pipeline.learn_one(x, y)
        seen[y] += 1
        return p

    return pipeline, step


def _predict_then_learn(model, x, y, calls):
    """RiverModel's prediction from before it learns (x, y): in one call, or as predict() then learn()."""
    if calls == "one pass":
        return model.predict_then_learn(x, y)
    p = model.predict(x)
    model.learn(x, y)
    return p


# RiverModel drives the pipeline's steps itself (no Pipeline bookkeeping, the scaler's transforms in one
# pass, edge.learning.model.logreg for the default estimator): the numbers must be River's own, to the bit,
# in ChampionChallenger's one call (predict_then_learn) and in separate predict and learn calls alike.
@pytest.mark.parametrize("calls", ["one pass", "separate"])
@pytest.mark.parametrize(("estimator", "n"), [("logreg", 600), ("hat", 300), ("arf", 150)])
def test_predict_then_learn_is_river_predict_then_learn_bit_for_bit(estimator, n, calls):
    model = RiverModel(estimator)
    pipeline, plain_step = _plain_river(estimator)
    rng = random.Random(5 if calls == "one pass" else 9)
    predicted = 0
    for _ in range(n):
        x = _random_features(rng)
        y = _random_label(x, rng)
        expected = plain_step(x, y)
        assert _predict_then_learn(model, x, y, calls) == expected  # exact: no approx
        predicted += expected is not None
    assert predicted > n // 2
    assert model._split is not None  # the one-pass path was the one tested
    assert model._logreg == (estimator == "logreg")  # and edge.learning.model.logreg's, for logreg
    assert (type(model._fused) is ScaledLogReg) == (estimator == "logreg")  # the flat learner's (edge.learning.model.linear)
    probes = [_random_features(rng) for _ in range(50)]
    assert [model.pipeline.predict_proba_one(x) for x in probes] == [pipeline.predict_proba_one(x) for x in probes]
    if estimator == "logreg":
        ours, theirs = model.pipeline.steps, pipeline.steps
        assert dict(ours["LogisticRegression"]._weights) == dict(theirs["LogisticRegression"]._weights)
        assert ours["LogisticRegression"].intercept == theirs["LogisticRegression"].intercept
        for stat in ("counts", "means", "vars"):
            assert getattr(ours["StandardScaler"], stat) == getattr(theirs["StandardScaler"], stat)


def test_champion_challenger_learns_as_the_two_separate_calls():
    """ChampionChallenger.learn (one feature pass) gives what predict() then learn() give."""

    class TwoCalls(RiverModel):
        def _split_pipeline(self):
            return None  # always the predict(); learn() fallback

    fast = ChampionChallenger(RiverModel(), min_labels=100, window=200, every=10, export_metrics=False)
    slow = ChampionChallenger(TwoCalls(), min_labels=100, window=200, every=10, export_metrics=False)
    rng = random.Random(9)
    for _ in range(500):
        x = _random_features(rng)
        y = _random_label(x, rng)
        assert fast.predict(x) == slow.predict(x)
        fast.learn(x, y)
        slow.learn(x, y)
    assert fast.snapshot() == slow.snapshot()
    assert fast.evaluation._pos["model"] == slow.evaluation._pos["model"]
    assert fast.evaluation._neg["model"] == slow.evaluation._neg["model"]


@pytest.mark.parametrize("calls", ["one pass", "separate"])
def test_predict_then_learn_keeps_river_learn_during_predict_semantics(calls):
    from river import compose

    model, (_, plain_step) = RiverModel(), _plain_river("logreg")
    rng = random.Random(4)
    with compose.learn_during_predict():  # River's own calls are taken
        for _ in range(100):
            x = _random_features(rng)
            y = _random_label(x, rng)
            expected = plain_step(x, y)
            assert _predict_then_learn(model, x, y, calls) == expected


def test_river_model_pickles_without_its_step_cache():
    model = RiverModel()
    for x, y in _stream(50, random.Random(3)):
        model.predict_then_learn(x, y)
    assert model._split is not None
    restored = pickle.loads(pickle.dumps(model))
    assert set(vars(restored)) == {"estimator", "pipeline", "seen", "prior"}  # the layout (+ prior; older files load)
    for x, y in _stream(50, random.Random(4)):
        assert restored.predict_then_learn(x, y) == model.predict_then_learn(x, y)


# --- Evaluation ---------------------------------------------------------------------------------


def _brute_auc(y, p):
    pos = [q for q, t in zip(p, y) if t]
    neg = [q for q, t in zip(p, y) if not t]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def test_exact_auc_matches_pairwise_definition():
    rng = random.Random(3)
    for _ in range(20):
        y = [rng.random() < 0.3 for _ in range(60)] + [True, False]
        p = [rng.choice([None, 0.1, 0.5, 0.7, rng.random()]) for _ in y]
        assert roc_auc(y, p) == _brute_auc(y, [0.5 if q is None else q for q in p])  # exact: ranks are half-integers


def test_scores_and_log_loss():
    assert log_loss([], []) is None
    s = scores([True, False], [None, None])
    assert s["roc_auc"] == 0.5 and s["recall"] == 1.0  # None is scored as 0.5, flagged at 0.5


def test_rolling_evaluation_forgets_old_labels():
    ev = RollingEvaluation(("a",), window=50, every=10)
    for i in range(100):  # perfect first …
        ev.update(i % 2 == 0, {"a": 0.9 if i % 2 == 0 else 0.1})
    assert ev.roc_auc("a") == 1.0
    for i in range(50):  # … then exactly wrong: the window holds only the wrong ones
        ev.update(i % 2 == 0, {"a": 0.1 if i % 2 == 0 else 0.9})
    assert ev.roc_auc("a") == 0.0
    assert ev.labels == 150 and ev.positives == 75 and ev.in_window == 50


# --- Champion / challenger ----------------------------------------------------------------------


def _stream(n, rng, flipped=False):
    """Rules can't tell these apart in phase 1 (same radio, no hints); the CQI can.

    In phase 2 (``flipped``) the CQI relation inverts and the browsers send ECT hints,
    which the rules read correctly: the learned model is wrong, the rules right.
    """
    for _ in range(n):
        degraded = rng.random() < 0.4
        cqi = rng.uniform(1, 6) if degraded != flipped else rng.uniform(9, 15)
        x = {"radio": "lte", "cqi": cqi}
        if flipped:
            x["ect"] = "2g" if degraded else "4g"
        yield x, degraded


def test_champion_switches_to_the_model_and_back_under_drift(metric):
    rng = random.Random(7)
    cc = ChampionChallenger(min_labels=100, window=200, every=10, demotion_margin=0.0, half_life=100)
    assert cc.source == "rules"
    history = []
    for x, y in _stream(600, rng):
        cc.learn(x, y)
        history.append(cc.source)
    assert history[150] == "rules"  # not before min_labels
    assert cc.source == "model"
    assert cc.predict({"radio": "lte", "cqi": 2.0}) > 0.5 > cc.predict({"radio": "lte", "cqi": 14.0})
    assert metric("edge_model_champion", model="model") == 1.0
    assert metric("edge_model_roc_auc", model="model") > 0.9
    # A drift faster than the model can follow: it stops learning (a fast learner relearns this
    # flip within a few labels and stays the better candidate over the evaluation's memory).
    cc.model.predict_then_learn = lambda x, y, *rules_p: cc.model.predict(x)
    for x, y in _stream(300, rng, flipped=True):
        cc.learn(x, y)
    assert cc.source == "rules"
    assert metric("edge_model_champion", model="rules") == 1.0
    assert cc.drifts >= 1
    p_rules = cc.rules.predict({"ect": "2g", "cqi": 14.0})
    assert p_rules == pytest.approx(0.88)
    assert cc.predict({"ect": "2g", "cqi": 14.0}) == cc.calibrators["rules"](p_rules) > 0.5  # the rules decide again


def test_snapshot_is_json(metric):
    cc = ChampionChallenger(min_labels=10, window=50, every=5, export_metrics=False)
    snap = cc.snapshot()
    assert snap["champion"] == "rules" and snap["labels"] == 0 and set(snap["roc_auc"].values()) == {None}
    for x, y in _stream(40, random.Random(1)):
        cc.learn(x, y)
    snap = orjson.loads(orjson.dumps(cc.snapshot()))
    assert set(snap) >= {"champion", "labels", "positive_rate", "roc_auc", "log_loss", "drifts"}
    assert snap["labels"] == 40 and 0 < snap["positive_rate"] < 1
    assert set(snap["roc_auc"]) == set(DEFAULT_CANDIDATES) and snap["candidates"] == list(DEFAULT_CANDIDATES)


def test_champion_with_unknown_model_prediction_falls_back_to_rules():
    cc = ChampionChallenger(RiverModel(), export_metrics=False)  # no prior
    cc._champion = "model"  # e.g. restored, but the model has not seen both classes
    assert cc.predict({"ect": "2g"}) == pytest.approx(0.88)


# --- Checkpoints --------------------------------------------------------------------------------


@pytest.fixture
def trained():
    cc = ChampionChallenger(min_labels=50, window=100, every=10, export_metrics=False)
    for x, y in _stream(200, random.Random(2)):
        cc.learn(x, y)
    cc.extra["note"] = "kept"
    return cc


PROBES = [{"radio": "lte", "cqi": c} for c in (1.0, 5.0, 9.0, 14.0)] + [{}, {"ect": "2g"}]


@pytest.mark.parametrize("key", [None, b"secret"])
def test_checkpoint_round_trip_gives_same_predictions(tmp_path, trained, key):
    path = tmp_path / "model.ckpt"
    trained.save(path, key=key)
    restored = ChampionChallenger.load(path, key=key)
    assert [restored.predict(x) for x in PROBES] == [trained.predict(x) for x in PROBES]
    assert restored.snapshot() == trained.snapshot()
    assert restored.extra == {"note": "kept"}
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]  # no temp file left behind
    # and it keeps learning the same way
    for x, y in _stream(20, random.Random(5)):
        restored.learn(x, y)
        trained.learn(x, y)
    assert [restored.predict(x) for x in PROBES] == [trained.predict(x) for x in PROBES]


def test_corrupt_checkpoint_names_the_file(tmp_path, trained):
    path = tmp_path / "model.ckpt"
    trained.save(path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.ckpt.*digest mismatch"):
        ChampionChallenger.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad magic"),
        (b"\x80\x04K\x01.", "bad magic"),  # a bare pickle is never loaded
        (b"EDGE-CHECKPOINT\nnot json\n", "corrupt header"),
        (b'EDGE-CHECKPOINT\n{"kind":"champion-challenger","format":99}\n', "incompatible format 99"),
    ],
)
def test_invalid_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        ChampionChallenger.load(path)
    assert str(path) in str(info.value)


def test_truncated_and_missing_and_wrong_key(tmp_path, trained):
    path = tmp_path / "m.ckpt"
    trained.save(path, key=b"k1")
    with pytest.raises(CheckpointError, match="digest mismatch"):
        ChampionChallenger.load(path, key=b"k2")
    with pytest.raises(CheckpointError, match="expected sha256"):
        ChampionChallenger.load(path)  # a keyed file needs its key
    trained.save(path)
    with pytest.raises(CheckpointError, match="expected hmac-sha256"):
        ChampionChallenger.load(path, key=b"k1")  # an unkeyed file could be forged: refused
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        ChampionChallenger.load(path)
    with pytest.raises(CheckpointError, match="cannot read"):
        ChampionChallenger.load(tmp_path / "nope.ckpt")


def test_checkpoint_from_another_river_series_is_refused(tmp_path, trained):
    path = tmp_path / "m.ckpt"
    with mock.patch("edge.learning.model.checkpoints._river_series", return_value="0.19"):
        trained.save(path)
    with pytest.raises(CheckpointError, match="River '0.19'"):
        ChampionChallenger.load(path)
