"""Stage 3's online learner: a River pipeline over the feature dict, learning one label at a time.

:class:`EdgeFeatures` is the model's own preprocessing; :func:`make_pipeline` builds
:class:`EdgeFeatures` → ``StandardScaler`` → one of :data:`ESTIMATORS` (logistic regression by default;
see ``docs/learning.md`` for why); :class:`RiverModel` serves and trains it (optionally from a prior,
:mod:`edge.learning.prior`).

    >>> model = RiverModel()
    >>> model.predict({"radio": "lte"}) is None      # cold start: unknown
    True
    >>> for _ in range(20):
    ...     model.learn({"radio": "edge", "last_kbps": 90.0}, True)
    ...     model.learn({"radio": "nr", "last_kbps": 40000.0}, False)
    >>> model.predict({"radio": "edge", "last_kbps": 80.0}) > 0.5 > model.predict({"radio": "nr", "last_kbps": 30000.0})
    True
"""

from __future__ import annotations

import math
import os
from bisect import bisect_right
from pathlib import Path
from typing import Any

from river import base, compose, forest, linear_model, optim, preprocessing, tree

from edge.learning.model import logreg
from edge.learning.model.linear import ScaledLogReg
from edge.learning.model.rules import RuleModel
from edge.learning.model.scaler import WelfordScaler
from edge.learning.model.unrolled import Layouts, compile_inputs
from edge.learning.prior import Prior, apply_prior, load_prior
from edge.pipeline.features import Features
from edge.pipeline.signals import ECT_VALUES, RADIO_CLASSES

__all__ = [
    "EdgeFeatures",
    "make_pipeline",
    "ESTIMATORS",
    "RiverModel",
    "VOCABULARIES",
    "RADIO_BANDS",
    "LAST_KBPS_BANDS",
    "FRESHNESS_HALF_LIFE_S",
]

#: The small, fixed vocabularies one-hot encoded by :class:`EdgeFeatures`. Any other string
#: value is dropped, so the encoding stays bounded whatever clients send. Cell ids are never
#: features: per-cell statistics (``cell_kbps``, ``cell_degraded_share``, ``cell_samples``) are.
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "device_class": ("phone", "tablet", "desktop", "bot"),
    "os": ("android", "ios", "windows", "macos", "linux", "kaios", "other"),
    "ect": ECT_VALUES,
    "radio": RADIO_CLASSES,
}
#: Throughputs (kbit/s) are roughly log-normal: the model sees log10 of them.
_LOG_KBPS = ("last_kbps", "downlink_kbps", "cell_kbps", "client_kbps_avg")
#: Heavy-tailed non-negative figures: the model sees log1p of them.
_LOG1P = (
    "last_age_s", "last_ms", "last_bytes", "last_rtt_ms", "rtt_ms", "speed", "cell_samples",
)
#: The server's view of the shopper's TCP connection (edge.pipeline.client_rtt) reaches the model in
#: bands only: a continuous figure would be scaled by its spread, and on a LAN or loopback the spread
#: is sub-millisecond jitter, which the scaler would blow up into large swings of p between two
#: connections of one client. Round trip (ms): Chromium's ECT edges in TCP terms (210 3g, 1170 2g,
#: 1670 slow-2g, as the rules read them) and round values below; goodput as the last throughput.
TCP_RTT_BANDS = (50.0, 100.0, 210.0, 400.0, 1170.0, 1670.0)
_TCP_BANDED = {"tcp_rtt_ms": TCP_RTT_BANDS, "tcp_goodput_kbps": (150.0, 350.0, 700.0, 1500.0, 3000.0, 8000.0)}
#: Left to the rules or unused by the model: one-sample or per-connection figures that are mostly noise.
_TCP_UNUSED = frozenset({"tcp_rttvar_ms", "tcp_min_rtt_ms", "tcp_delivery_kbps", "tcp_app_limited"})
#: A last-request measurement loses half its relevance every this many seconds (think time is tens of seconds).
FRESHNESS_HALF_LIFE_S = 60.0
#: Centre for log10 throughput in the interaction terms (1 Mbit/s).
_LOG_KBPS_CENTRE = 3.0


#: Radio-quality bands (one-hot): throughput is not linear in channel quality. Edges follow the usual
#: field bands (RSRP excellent ≥ −85 … poor < −115 dBm; SINR < 0 … ≥ 20 dB; CQI's 0–15 index).
RADIO_BANDS: dict[str, tuple[float, ...]] = {
    "cqi": (4.0, 7.0, 10.0, 13.0),
    "sinr": (0.0, 5.0, 10.0, 20.0),
    "rsrp": (-115.0, -105.0, -95.0, -85.0),
    "rsrq": (-15.0, -12.0, -9.0),
}
#: Last-request throughput bands (kbit/s): Chromium's 2g/3g edges and round multiples above them.
LAST_KBPS_BANDS = (150.0, 350.0, 700.0, 1500.0, 3000.0, 8000.0)


class EdgeFeatures(base.Transformer):
    """The River model's own preprocessing of an :func:`edge.pipeline.features.to_features` dict.

    - the categoricals of :data:`VOCABULARIES` become one-hot ``name=value`` features
      (unknown values are dropped: bounded whatever a client sends);
    - throughputs become ``log10`` (kbit/s), heavy-tailed figures ``log1p``;
    - derived: missing-indicators for the last request, the cell statistics and the server's TCP
      round trip (``no_last``, ``no_cell``, ``no_tcp``; absent keys
      are normal: a scaled absent feature contributes nothing to a linear model, the
      indicator lets it learn what "unknown" means); the last throughput weighted by its
      freshness (a minute-old measurement says less than a second-old one); the cell's
      degraded share weighted by how many recent samples back it; one-hot bands of the radio
      figures and of the last throughput (:data:`RADIO_BANDS`, :data:`LAST_KBPS_BANDS`: a
      linear model gets their non-linear effect); the server's TCP round trip and goodput in bands
      only (:data:`TCP_RTT_BANDS`: never a continuous figure the scaler would stretch from
      loopback jitter); and the rule baseline's log-odds
      (``rules``), so the model starts from the published thresholds and learns how far to
      trust them;
    - other numbers pass through as floats (so River's estimator checks, which use their
      own data sets, apply), other strings are dropped.

    >>> EdgeFeatures().transform_one({"radio": "lte", "os": "beos", "last_kbps": 1000.0, "last_age_s": 0.0})
    {'radio=lte': 1.0, 'last_kbps': 3.0, 'last_age_s': 0.0, 'last_fresh': 1.0, 'last_kbps_fresh': 0.0,
     'last_band=3': 1.0, 'no_cell': 1.0, 'no_tcp': 1.0, 'rules': -0.51...}
    """

    def __init__(self, freshness_half_life_s: float = FRESHNESS_HALF_LIFE_S, rules: bool = True) -> None:
        self.freshness_half_life_s = freshness_half_life_s
        self.rules = rules
        self._rule_model = RuleModel()

    def transform_one(self, x: dict) -> dict:
        return self.transform_with_rules(x, self._rule_model.predict(x) if self.rules else None)

    def transform_with_rules(self, x: dict, p: float | None) -> dict:
        """``transform_one(x)`` given ``p``, the rule baseline's prediction for ``x`` (``RuleModel().predict(x)``,
        which the champion/challenger has already computed for the label: it is not computed twice)."""
        # Per prediction and label: _input_pass as straight-line code for a layout seen often (…model.unrolled).
        run = _INPUT_PASSES.get(layout := tuple(x)) or _INPUT_PASSES.seen(layout)
        out, has_tcp_rtt = _input_pass(x) if run is None else run(x.values())
        if "last_kbps" in out:
            age = x.get("last_age_s")
            fresh = 0.5 ** (float(age) / self.freshness_half_life_s) if isinstance(age, (int, float)) else 0.5
            out["last_fresh"] = fresh
            out["last_kbps_fresh"] = (out["last_kbps"] - _LOG_KBPS_CENTRE) * fresh
            out[_LAST_BAND_KEYS[bisect_right(LAST_KBPS_BANDS, float(x["last_kbps"]))]] = fresh
        else:
            out["no_last"] = 1.0
        if "cell_degraded_share" in out:
            samples = x.get("cell_samples")
            n = float(samples) if isinstance(samples, (int, float)) else 0.0
            confidence = n / (n + 3.0)
            out["cell_share_conf"] = (out["cell_degraded_share"] - 0.5) * confidence
        else:
            out["no_cell"] = 1.0
        if not has_tcp_rtt:
            out["no_tcp"] = 1.0  # no server-side round trip (replayed traces, in-process, a failed read)
        if p is not None and self.rules:
            p = 0.01 if p < 0.01 else 0.99 if p > 0.99 else p
            out["rules"] = math.log(p / (1.0 - p))
        return out


def _ascending(edges: tuple[float, ...], name: str) -> tuple[float, ...]:
    if list(edges) != sorted(edges):
        raise ValueError(f"{name}: band edges must be ascending, got {edges}")
    return edges


# Precomputed lookups for EdgeFeatures.transform_one. A band index is the number of edges at or
# below the value, i.e. bisect_right over the ascending edges.
_LOG10, _LOG1P_SCALE = "log10", "log1p"
_NUMERIC_SCALE: dict[str, str] = {**dict.fromkeys(_LOG1P, _LOG1P_SCALE), **dict.fromkeys(_LOG_KBPS, _LOG10)}
_ONE_HOT_KEYS: dict[str, dict[str, str]] = {
    name: {value: f"{name}={value}" for value in vocabulary} for name, vocabulary in VOCABULARIES.items()
}
_BAND_KEYS: dict[str, tuple[tuple[float, ...], tuple[str, ...]]] = {
    name: (_ascending(edges, name), tuple(f"{name}_band={i}" for i in range(len(edges) + 1)))
    for name, edges in RADIO_BANDS.items()
}
_TCP_BAND_KEYS: dict[str, tuple[tuple[float, ...], tuple[str, ...]]] = {
    name: (_ascending(edges, name), tuple(f"{name}_band={i}" for i in range(len(edges) + 1)))
    for name, edges in _TCP_BANDED.items()
}
#: What EdgeFeatures.transform_one does with a number under each name: (step, band edges, band keys).
#: A name not in the plan passes through as a float.
_BANDED, _TCP_BAND, _UNUSED = "banded", "tcp band", "unused"
_PLAN: dict[str, tuple[str, tuple[float, ...], tuple[str, ...]]] = {
    **{name: (scale, (), ()) for name, scale in _NUMERIC_SCALE.items()},
    **{name: (_BANDED, edges, keys) for name, (edges, keys) in _BAND_KEYS.items()},
    **{name: (_TCP_BAND, edges, keys) for name, (edges, keys) in _TCP_BAND_KEYS.items()},
    **{name: (_UNUSED, (), ()) for name in _TCP_UNUSED},
}
#: The inputs' pass compiled per layout of input names (edge.learning.model.unrolled), for layouts seen often.
_STEPS = {c: c for c in (_LOG10, _LOG1P_SCALE, _BANDED, _TCP_BAND, _UNUSED)}
_INPUT_PASSES = Layouts(lambda layout: compile_inputs(layout, _PLAN, _ONE_HOT_KEYS, _STEPS), after=8, limit=256)
_LAST_BAND_KEYS = tuple(f"last_band={i}" for i in range(len(_ascending(LAST_KBPS_BANDS, "last_kbps")) + 1))
_TAIL_KEYS = frozenset({"last_fresh", "last_kbps_fresh", "no_last", "cell_share_conf", "no_cell", "no_tcp", "rules"})
_TABLES = dict(plan=_PLAN, one_hot=_ONE_HOT_KEYS, codes=_STEPS, tail_keys=_TAIL_KEYS, last_bands=LAST_KBPS_BANDS, last_band_keys=_LAST_BAND_KEYS, centre=_LOG_KBPS_CENTRE)


def _input_pass(x: dict) -> tuple[dict[str, float], bool]:
    """EdgeFeatures' loop over the inputs: (their features in order, whether a TCP round trip was read). The
    output (keys, order, values, the sign of a zero) is the class docstring's (tests/learning/test_learning.py)."""
    out: dict[str, float] = {}
    plan, one_hot, log10, log1p = _PLAN, _ONE_HOT_KEYS, math.log10, math.log1p
    has_tcp_rtt = False
    for name, value in x.items():
        if type(value) is float:  # the common case (edge.pipeline.features gives floats)
            v = value
        elif isinstance(value, str):
            keys = one_hot.get(name)
            if keys is not None:
                key = keys.get(value)
                if key is not None:
                    out[key] = 1.0
            continue
        elif isinstance(value, (int, float)):
            v = float(value)
        else:
            continue
        if v - v != 0.0:  # inf or nan: inf - inf and nan - nan are nan
            continue
        step = plan.get(name)
        if step is None:
            out[name] = v
            continue
        code, edges, band_keys = step
        if code is _LOG10:
            out[name] = log10(v if v >= 1.0 else 1.0)  # max(v, 1.0), as the rules say
        elif code is _LOG1P_SCALE:
            out[name] = log1p(v if v >= 0.0 else 0.0)  # max(v, 0.0): keeps -0.0 as max does
        elif code is _BANDED:
            out[name] = v
            out[band_keys[bisect_right(edges, v)]] = 1.0
        elif code is _TCP_BAND:
            out[band_keys[bisect_right(edges, v)]] = 1.0
            if name == "tcp_rtt_ms":
                has_tcp_rtt = True
        # _UNUSED: nothing
    return out, has_tcp_rtt


def make_pipeline(estimator: str = "logreg", seed: int = 0) -> compose.Pipeline:
    """The River pipeline for one estimator name of :data:`ESTIMATORS` (the single factory).

    >>> list(make_pipeline("logreg").steps)
    ['EdgeFeatures', 'StandardScaler', 'LogisticRegression']
    """
    if estimator == "logreg":
        clf: base.Classifier = linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4)
    elif estimator == "hat":
        clf = tree.HoeffdingAdaptiveTreeClassifier(grace_period=100, delta=1e-5, leaf_prediction="nba", seed=seed)
    elif estimator == "arf":
        clf = forest.ARFClassifier(n_models=10, grace_period=50, seed=seed)
    else:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    # The scaler is River's StandardScaler arithmetic with plain-dict storage (edge.learning.model.scaler),
    # under River's step name, as checkpoints and priors have always named it.
    return compose.Pipeline(EdgeFeatures(), (_SCALER_STEP, WelfordScaler()), clf)


_SCALER_STEP = "StandardScaler"


#: ``RiverModel.predict_then_learn``'s "no rules_p given" (None is a prediction: the rules had no opinion).
_NOT_GIVEN = object()

#: Estimators :func:`make_pipeline` builds; the first is the default (chosen by measurement, docs/learning.md).
ESTIMATORS = ("logreg", "hat", "arf")


class RiverModel:
    """The online classifier: a River pipeline from :func:`make_pipeline`, learning one label at a time.

    ``predict`` returns ``None`` until the model has learned from at least one degraded and
    one non-degraded label (before that a classifier's 0.5, or its only class, means
    "unknown", and edge serves the full page) — unless it starts from a ``prior``
    (:mod:`edge.learning.prior`: a path, a loaded :class:`~edge.learning.prior.Prior`, or ``None`` for none), whose
    weights it predicts with from the first request and keeps learning from (logreg only).
    """

    source = "model"

    def __init__(self, estimator: str = "logreg", seed: int = 0, prior: str | os.PathLike[str] | Prior | None = None) -> None:
        self.estimator = estimator
        self.pipeline = make_pipeline(estimator, seed)
        self.seen = {False: 0, True: 0}
        self.prior: str | None = None
        if prior is not None:
            if estimator != "logreg":
                raise ValueError(f"a prior is logistic-regression weights; estimator {estimator!r} cannot start from one")
            loaded = prior if isinstance(prior, Prior) else load_prior(Path(prior))
            apply_prior(self.pipeline, loaded)
            self.prior = loaded.name

    #: Checkpoints written before priors existed restore without one.
    prior: str | None = None

    def predict(self, x: Features) -> float | None:
        if not (self.seen[False] and self.seen[True]) and self.prior is None:
            return None
        fused = self._fused_learner()
        if fused is not None:
            p = fused.predict_inputs(x, self._split[0], _TABLES)  # type: ignore[index]  # self._features; straight-line for a layout seen often
            return 0.0 if p < 0.0 else 1.0 if p > 1.0 else p
        steps = self._split_pipeline()
        if steps is None or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            proba = self.pipeline.predict_proba_one(x)
        else:  # River's Pipeline.predict_proba_one, step by step, without its per-call bookkeeping
            features, transformers, estimator = steps
            z = features.transform_one(x)
            for step in transformers:
                z = step.transform_one(z)
            if self._logreg:
                return min(max(float(logreg.predict_p(estimator, z)), 0.0), 1.0)
            proba = estimator.predict_proba_one(z)
        if not proba:
            return None
        p = proba.get(True, 0.0)
        return min(max(float(p), 0.0), 1.0)

    def learn(self, x: Features, degraded: bool) -> None:
        y = bool(degraded)
        fused = self._fused_learner()
        if fused is not None:
            fused.learn_inputs(x, self._split[0], _TABLES, y)  # type: ignore[index]  # self._features; one pass for a layout seen often
            self.seen[y] += 1
            return
        steps = self._split_pipeline()
        if steps is None or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            self.pipeline.learn_one(x, y)
        else:  # River's Pipeline.learn_one, step by step (see predict_then_learn)
            features, transformers, estimator = steps
            z = _learn_transform(transformers, features.transform_one(x))
            if self._logreg:
                logreg.learn_one(estimator, z, y)
            else:
                estimator.learn_one(z, y)
        self.seen[y] += 1

    def predict_then_learn(self, x: Features, degraded: bool, rules_p: float | None | object = _NOT_GIVEN) -> float | None:
        """``p = self.predict(x); self.learn(x, degraded); return p``, with one :class:`EdgeFeatures` pass.

        The prequential step (:meth:`ChampionChallenger.learn`). :class:`EdgeFeatures` is stateless, so its
        output for ``x`` is computed once; the default pipeline's flat learner takes it in one pass (for a layout
        of inputs seen often, transform and pass as one straight-line function: ``unrolled.compile_features_pass``),
        another's steps are called as River's ``Pipeline.predict_proba_one`` then ``learn_one`` call them.
        ``rules_p``, if given, is ``RuleModel().predict(x)`` (not computed again). The numbers are the two
        calls', bit for bit (tests/learning); River's ``learn_during_predict`` mode takes the two calls.
        """
        y = bool(degraded)
        fused = self._fused
        if type(fused) is not ScaledLogReg or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            fused = self._fused_learner()
        if fused is not None:  # the default pipeline: one pass (edge.learning.model.linear)
            features = self._split[0]  # type: ignore[index]  # self._features without the property call (set by _fused_learner)
            if rules_p is _NOT_GIVEN or type(features._rule_model) is not RuleModel:  # transform_one's p
                rules_p = features._rule_model.predict(x) if features.rules else None
            run = fused.features_pass(x, _TABLES)  # the transform and the learner's pass in one, for a layout seen often
            if run is None:
                p: float | None = fused.predict_learn(features.transform_with_rules(x, rules_p), y)  # type: ignore[arg-type]
            else:
                f = fused
                result = run(x, x.values(), rules_p, features.freshness_half_life_s, features.rules, f.count, f.mean, f.var, f.std, f.w, f.constant, f.index, f._slot)
                p = fused.finish(*result, y)
            seen = self.seen
            if not (seen[False] and seen[True]) and self.prior is None:  # as predict(): not ready
                p = None
            elif p is not None:
                p = 0.0 if p < 0.0 else 1.0 if p > 1.0 else p
            seen[y] += 1
            return p
        steps = self._split_pipeline()
        if steps is None or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            p = self.predict(x)
            self.learn(x, degraded)
            return p
        features, transformers, estimator = steps
        if rules_p is not _NOT_GIVEN and type(features._rule_model) is RuleModel:
            z = features.transform_with_rules(x, rules_p)  # type: ignore[arg-type]
        else:
            z = features.transform_one(x)
        p = None
        if (self.seen[False] and self.seen[True]) or self.prior is not None:  # as predict()
            if len(transformers) == 1 and type(transformers[0]) is WelfordScaler:
                zp, z = transformers[0].predict_learn_transform(z)
            else:
                zp = z
                for step in transformers:
                    zp = step.transform_one(zp)
                z = _learn_transform(transformers, z)
            if self._logreg:
                p = min(max(float(logreg.predict_p(estimator, zp)), 0.0), 1.0)
            else:
                proba = estimator.predict_proba_one(zp)
                if proba:
                    p = min(max(float(proba.get(True, 0.0)), 0.0), 1.0)
        else:
            z = _learn_transform(transformers, z)
        if self._logreg:
            logreg.learn_one(estimator, z, y)
        else:
            estimator.learn_one(z, y)
        self.seen[y] += 1
        return p

    # The pipeline's steps as (EdgeFeatures, unsupervised transformers, estimator), or None when
    # predict_then_learn cannot take its one-pass path; cached per pipeline object, never pickled.
    _split: tuple[EdgeFeatures, tuple[base.Transformer, ...], base.Classifier] | None = None
    _split_of: object = None
    _logreg = False  # the split's estimator is a logistic regression edge.learning.model.logreg drives
    # The default pipeline's scaler and logistic regression as one flat learner (edge.learning.model.linear),
    # holding their state between reads of ``pipeline``; False: this pipeline cannot have one. Never pickled.
    _fused: ScaledLogReg | None | bool = None

    @property
    def pipeline(self) -> compose.Pipeline:
        """The River pipeline, its scaler and estimator up to date: reading it hands the state back from
        the flat learner to River's objects (which the reader may change), and the next label reads it again."""
        fused = self.__dict__.pop("_fused", None)
        pipeline = self.__dict__["pipeline"]
        if isinstance(fused, ScaledLogReg):
            fused.write_back(pipeline.steps[_SCALER_STEP], list(pipeline.steps.values())[-1])
        return pipeline

    @pipeline.setter
    def pipeline(self, pipeline: compose.Pipeline) -> None:
        self.__dict__.pop("_fused", None)
        self.__dict__["pipeline"] = pipeline

    @property
    def _features(self) -> EdgeFeatures:
        return self._split[0]  # type: ignore[index]  # set whenever _fused_learner() returned one

    def _fused_learner(self) -> ScaledLogReg | None:
        """The flat learner for this pipeline (built from River's objects on first use), or None if it is
        not ``EdgeFeatures | WelfordScaler | plain LogisticRegression`` (or River learns during predict)."""
        fused = self._fused
        if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:  # River's own calls, on River's objects:
            if isinstance(fused, ScaledLogReg):
                self.pipeline  # noqa: B018  (reading it hands the state back)
            return None
        if isinstance(fused, ScaledLogReg):
            return fused
        if fused is False:
            return None
        steps = self._split_pipeline()
        if steps is None or not self._logreg or len(steps[1]) != 1 or type(steps[1][0]) is not WelfordScaler:
            self._fused = False
            return None
        fused = self._fused = ScaledLogReg.from_river(steps[1][0], steps[2])
        return fused

    def _split_pipeline(self) -> tuple[EdgeFeatures, tuple[base.Transformer, ...], base.Classifier] | None:
        pipeline = self.__dict__["pipeline"]
        if self._split_of is not pipeline:
            self._split, self._split_of = _split_pipeline(pipeline), pipeline
            self._logreg = self._split is not None and logreg.is_plain(self._split[2])
        return self._split

    def __getstate__(self) -> dict[str, Any]:
        fused = self._fused
        if isinstance(fused, ScaledLogReg):  # River's objects are what is pickled: bring them up to date
            pipeline = self.__dict__["pipeline"]
            fused.write_back(pipeline.steps[_SCALER_STEP], list(pipeline.steps.values())[-1])
        state = self.__dict__.copy()  # checkpoints keep the layout they always had
        state.pop("_split", None)
        state.pop("_split_of", None)
        state.pop("_logreg", None)
        state.pop("_fused", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # A checkpoint from before WelfordScaler holds River's StandardScaler: the same statistics,
        # moved into a WelfordScaler (the numbers from here on are those River's would have given).
        pipeline = self.__dict__["pipeline"]
        if isinstance(pipeline, compose.Pipeline) and any(_convertible(step) for step in pipeline.steps.values()):
            self.pipeline = compose.Pipeline(
                *((name, WelfordScaler.from_river(step) if _convertible(step) else step) for name, step in pipeline.steps.items())
            )

    @property
    def labels(self) -> int:
        return self.seen[False] + self.seen[True]


def _learn_transform(transformers: tuple[base.Transformer, ...], z: dict) -> dict:
    """Each transformer learns ``z`` then transforms it, as River's ``Pipeline.learn_one`` drives them
    (the default pipeline's :class:`~edge.learning.model.scaler.WelfordScaler` does both in one pass)."""
    for step in transformers:
        if type(step) is WelfordScaler:
            z = step.learn_transform(z)
        else:
            step.learn_one(z)
            z = step.transform_one(z)
    return z


def _convertible(step: object) -> bool:
    """A River ``StandardScaler`` that :meth:`WelfordScaler.from_river` converts (an older checkpoint's)."""
    return type(step) is preprocessing.StandardScaler and step.with_std and step.window_size is None


def _split_pipeline(
    pipeline: object,
) -> tuple[EdgeFeatures, tuple[base.Transformer, ...], base.Classifier] | None:
    """Split ``EdgeFeatures | transformer … | classifier`` into its parts, or None if it is not that shape.

    The middle steps must be plain unsupervised transformers (no union, anomaly filter or nested
    pipeline), whose ``transform_one`` returns a new dict, as River's own do; the first step exactly
    :class:`EdgeFeatures` (a subclass might keep state).
    """
    if not isinstance(pipeline, compose.Pipeline):
        return None
    steps = list(pipeline.steps.values())
    if len(steps) < 2 or type(steps[0]) is not EdgeFeatures:
        return None
    middle, estimator = tuple(steps[1:-1]), steps[-1]
    for step in middle:
        if (
            not isinstance(step, base.Transformer)
            or isinstance(step, (compose.Pipeline, compose.TransformerUnion, base.AnomalyFilter))
            or step._supervised
        ):
            return None
    if not isinstance(estimator, base.Classifier) or isinstance(estimator, (base.Transformer, base.AnomalyFilter)):
        return None
    return steps[0], middle, estimator

