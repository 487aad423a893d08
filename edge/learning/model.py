"""Stage 3: predict p(degraded) for a request.

A :class:`NetworkModel` maps a feature dict (see :mod:`edge.pipeline.features`) to the
probability that the client's network is degraded, or ``None`` when it has no
basis to say (cold start, no signals): ``None`` serves the full page.

:class:`RuleModel` is the baseline, built on published thresholds: Chromium's
effective-connection-type table (``net/nqe/network_quality_estimator_params.cc``)

============  ===============  ===================
class         HTTP RTT ≥       or downlink <
============  ===============  ===================
slow-2g       2000 ms          50 kbit/s
2g            1400 ms          70 kbit/s
3g            270 ms           700 kbit/s
4g            otherwise
============  ===============  ===================

applied to the browser's own hints (``ECT``, ``RTT``, ``Downlink``), to the
throughput of the client's last request (bytes·8/ms), to the radio type
(GPRS/EDGE are 2G, UMTS 3G) and to the cell's recent degraded share. Each piece
of evidence gives a probability; the prediction is their weighted mean, with
direct measurements weighted above inferences from the radio type.

    >>> model = RuleModel()
    >>> model.predict({}) is None
    True
    >>> model.predict({"ect": "2g"})
    0.88
    >>> round(model.predict({"radio": "edge", "last_kbps": 80.0, "last_bytes": 40000.0}), 3)
    0.745
    >>> model.predict({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0})
    0.1

:class:`RiverModel` is the online learner: a River pipeline over the same feature dict
(:class:`EdgeFeatures` → ``StandardScaler`` → logistic regression by default; see
``docs/learning.md`` for why that estimator). :class:`ChampionChallenger` serves the rule
model's or the River model's prediction, whichever has the better rolling ROC-AUC on the
latest labels, evaluates both as it learns, and checkpoints itself.

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

import hashlib
import hmac
import math
import os
import pickle
import tempfile
from bisect import bisect_right
from collections import Counter, deque
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
import river
from river import base, compose, drift, forest, linear_model, optim, preprocessing, tree

from edge.core.metrics import MODEL_CHAMPION, MODEL_DRIFTS, MODEL_LOG_LOSS, MODEL_ROC_AUC
from edge.learning.evaluation import RollingEvaluation
from edge.learning.prior import DEFAULT_PRIOR, Prior, PriorError, apply_prior, load_prior
from edge.pipeline.features import Features
from edge.pipeline.signals import ECT_VALUES, RADIO_CLASSES

__all__ = [
    "NetworkModel",
    "RuleModel",
    "NullModel",
    "RiverModel",
    "ChampionChallenger",
    "EdgeFeatures",
    "CheckpointError",
    "PriorError",
    "DEFAULT_PRIOR",
    "CANDIDATES",
    "FIXED_CANDIDATES",
    "DEFAULT_CANDIDATES",
    "make_pipeline",
    "ESTIMATORS",
    "MODELS",
    "ect_class",
    "ECT_DEGRADED_P",
    "fast_evidence",
]

#: Probability that a connection of this effective type is degraded (below 700 kbit/s).
#: Chromium's "3g" class *is* the band below 700 kbit/s or above 270 ms RTT, so it lands above 0.5.
ECT_DEGRADED_P = {"slow-2g": 0.97, "2g": 0.88, "3g": 0.70, "4g": 0.10}

#: Radio access technology → evidence (p, weight). 2G radios cannot reach 700 kbit/s; HSPA
#: and LTE can be anything from poor to good, so they weigh little.
_RADIO_EVIDENCE = {
    "gprs": (0.97, 1.0),
    "edge": (0.88, 1.0),
    "umts": (0.70, 1.0),
    "hspa": (0.50, 0.5),
    "lte": (0.15, 0.5),
    "nr": (0.10, 0.5),
}

#: Chromium's "3g" HTTP RTT: a round trip at least this long is evidence of a slow network.
SLOW_RTT_MS = 270.0
#: Chromium's "2g" HTTP RTT: a whole request (round trips and transfer) at least this long is.
SLOW_REQUEST_MS = 1400.0
#: Cells need this many (decayed) recent measurements before their share counts fully.
CELL_FULL_WEIGHT_SAMPLES = 10.0


def ect_class(rtt_ms: float | None = None, downlink_kbps: float | None = None) -> str | None:
    """Chromium's effective connection type for an RTT and/or downlink.

    >>> ect_class(rtt_ms=1500), ect_class(downlink_kbps=600), ect_class(rtt_ms=100, downlink_kbps=5000)
    ('2g', '3g', '4g')
    >>> ect_class() is None
    True
    """
    if rtt_ms is None and downlink_kbps is None:
        return None
    rtt = rtt_ms if rtt_ms is not None else 0.0
    down = downlink_kbps if downlink_kbps is not None else float("inf")
    if rtt >= 2000 or down < 50:
        return "slow-2g"
    if rtt >= 1400 or down < 70:
        return "2g"
    if rtt >= 270 or down < 700:
        return "3g"
    return "4g"


@runtime_checkable
class NetworkModel(Protocol):
    """What edge needs of a predictor."""

    #: Short name, used as the decision source label (``rules``, ``model``).
    source: str

    def predict(self, x: Features) -> float | None:
        """p(degraded) in [0, 1] for features ``x``, or ``None`` when unknown."""
        ...

    def learn(self, x: Features, degraded: bool) -> None:
        """Update from one labelled request (a no-op for fixed models)."""
        ...


class RuleModel:
    """The published-thresholds baseline described in the module docstring. Does not learn."""

    source = "rules"

    def predict(self, x: Features) -> float | None:
        # Each piece of evidence adds p·w to ``total`` and w to ``weight``, in this order (the
        # order fixes the float sums; the River model's "rules" feature is built from this).
        total = weight = 0.0
        get = x.get
        # The browser's own estimate: ECT if sent, else classify its RTT/Downlink hints.
        ect = get("ect")
        if not (isinstance(ect, str) and ect in ECT_DEGRADED_P):  # an unknown value is no hint
            rtt, down = get("rtt_ms"), get("downlink_kbps")
            ect = ect_class(
                rtt if isinstance(rtt, float) else None, down if isinstance(down, float) else None
            )
        if ect is not None:
            total += ECT_DEGRADED_P[ect] * 2.0
            weight += 2.0
        # The client's last request: a real measurement of its network, weighted highest.
        # last_kbps is only set when it measures throughput (edge.pipeline.signals.app_throughput, the beacon's
        # 16 KB floor). A round trip alone only ever says "slow": a fast one can still be a thin link.
        last_kbps, last_ms, last_rtt = get("last_kbps"), get("last_ms"), get("last_rtt_ms")
        if not isinstance(last_rtt, float):
            last_rtt = None
        if isinstance(last_kbps, float):
            total += ECT_DEGRADED_P[ect_class(rtt_ms=last_rtt, downlink_kbps=last_kbps) or "4g"] * 3.0
            weight += 3.0
        elif last_rtt is not None and last_rtt >= SLOW_RTT_MS:
            total += ECT_DEGRADED_P[ect_class(rtt_ms=last_rtt) or "3g"] * 3.0
            weight += 3.0
        elif isinstance(last_ms, float) and last_ms >= SLOW_REQUEST_MS:
            # A whole request this slow is at least 2g-like, whatever its size.
            total += ECT_DEGRADED_P[ect_class(rtt_ms=last_ms) or "2g"] * 1.0
            weight += 1.0
        radio = get("radio")
        if isinstance(radio, str) and radio in _RADIO_EVIDENCE:
            p, w = _RADIO_EVIDENCE[radio]
            total += p * w
            weight += w
        share, samples = get("cell_degraded_share"), get("cell_samples")
        if isinstance(share, float) and isinstance(samples, float) and samples:
            w = min(samples / CELL_FULL_WEIGHT_SAMPLES, 1.0)
            total += share * w
            weight += w
        if weight == 0.0:
            return None
        return total / weight

    def learn(self, x: Features, degraded: bool) -> None:
        return None


class NullModel:
    """Never has an opinion: every request is served the full page (``--model off``)."""

    source = "none"

    def predict(self, x: Features) -> float | None:
        return None

    def learn(self, x: Features, degraded: bool) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# The online River model
# ---------------------------------------------------------------------------------------------

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
_LOG1P = ("last_age_s", "last_ms", "last_bytes", "last_rtt_ms", "rtt_ms", "speed", "cell_samples")
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
    - derived: missing-indicators for the last request and the cell statistics (absent keys
      are normal: a scaled absent feature contributes nothing to a linear model, the
      indicator lets it learn what "unknown" means); the last throughput weighted by its
      freshness (a minute-old measurement says less than a second-old one); the cell's
      degraded share weighted by how many recent samples back it; one-hot bands of the radio
      figures and of the last throughput (:data:`RADIO_BANDS`, :data:`LAST_KBPS_BANDS`: a
      linear model gets their non-linear effect); and the rule baseline's log-odds
      (``rules``), so the model starts from the published thresholds and learns how far to
      trust them;
    - other numbers pass through as floats (so River's estimator checks, which use their
      own data sets, apply), other strings are dropped.

    >>> EdgeFeatures().transform_one({"radio": "lte", "os": "beos", "last_kbps": 1000.0, "last_age_s": 0.0})
    {'radio=lte': 1.0, 'last_kbps': 3.0, 'last_age_s': 0.0, 'last_fresh': 1.0, 'last_kbps_fresh': 0.0,
     'last_band=3': 1.0, 'no_cell': 1.0, 'rules': -2.12...}
    """

    def __init__(self, freshness_half_life_s: float = FRESHNESS_HALF_LIFE_S, rules: bool = True) -> None:
        self.freshness_half_life_s = freshness_half_life_s
        self.rules = rules
        self._rule_model = RuleModel()

    def transform_one(self, x: dict) -> dict:
        # Runs once per prediction and once per label: the lookups are precomputed
        # (_ONE_HOT_KEYS, _NUMERIC_SCALE, _BAND_KEYS), the output (keys, their order, values)
        # is what the plain rules in the class docstring give.
        out: dict[str, float] = {}
        one_hot, scale_of, bands_of, isfinite = _ONE_HOT_KEYS, _NUMERIC_SCALE, _BAND_KEYS, math.isfinite
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
            if not isfinite(v):
                continue
            scale = scale_of.get(name)
            if scale is None:
                out[name] = v
            elif scale is _LOG10:
                out[name] = math.log10(max(v, 1.0))
            else:
                out[name] = math.log1p(max(v, 0.0))
            banded = bands_of.get(name)
            if banded is not None:
                out[banded[1][bisect_right(banded[0], v)]] = 1.0
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
        if self.rules:
            p = self._rule_model.predict(x)
            if p is not None:
                p = min(max(p, 0.01), 0.99)
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
_LAST_BAND_KEYS = tuple(f"last_band={i}" for i in range(len(_ascending(LAST_KBPS_BANDS, "last_kbps")) + 1))


def make_pipeline(estimator: str = "logreg", seed: int = 0) -> base.Classifier:
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
    return EdgeFeatures() | preprocessing.StandardScaler() | clf


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
            loaded = prior if isinstance(prior, Prior) else load_prior(prior)
            apply_prior(self.pipeline, loaded)
            self.prior = loaded.name

    #: Checkpoints written before priors existed restore without one.
    prior: str | None = None

    def predict(self, x: Features) -> float | None:
        if not (self.seen[False] and self.seen[True]) and self.prior is None:
            return None
        proba = self.pipeline.predict_proba_one(x)
        if not proba:
            return None
        p = proba.get(True, 0.0)
        return min(max(float(p), 0.0), 1.0)

    def learn(self, x: Features, degraded: bool) -> None:
        y = bool(degraded)
        self.pipeline.learn_one(x, y)
        self.seen[y] += 1

    def predict_then_learn(self, x: Features, degraded: bool) -> float | None:
        """``p = self.predict(x); self.learn(x, degraded); return p``, with one :class:`EdgeFeatures` pass.

        The prequential step (:meth:`ChampionChallenger.learn`). :class:`EdgeFeatures` is
        stateless (it learns nothing), so its output for ``x`` is the same before and after
        learning: it is computed once, and the later steps are called as River's
        ``Pipeline.predict_proba_one`` then ``Pipeline.learn_one`` call them (each unsupervised
        transformer learns ``x`` before transforming it; the estimator learns the result). The
        numbers are those of the two calls, bit for bit (``tests/learning/test_learning.py`` checks it).
        A pipeline of another shape, or River's ``learn_during_predict`` mode, takes the two calls.
        """
        steps = self._split_pipeline()
        if steps is None or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            p = self.predict(x)
            self.learn(x, degraded)
            return p
        features, transformers, estimator = steps
        y = bool(degraded)
        z = features.transform_one(x)
        p = None
        if (self.seen[False] and self.seen[True]) or self.prior is not None:  # as predict()
            zp = z
            for step in transformers:
                zp = step.transform_one(zp)
            proba = estimator.predict_proba_one(zp)
            if proba:
                p = min(max(float(proba.get(True, 0.0)), 0.0), 1.0)
        for step in transformers:  # as Pipeline.learn_one (EdgeFeatures.learn_one is a no-op)
            step.learn_one(z)
            z = step.transform_one(z)
        estimator.learn_one(z, y)
        self.seen[y] += 1
        return p

    # The pipeline's steps as (EdgeFeatures, unsupervised transformers, estimator), or None when
    # predict_then_learn cannot take its one-pass path; cached per pipeline object, never pickled.
    _split: tuple[EdgeFeatures, tuple[base.Transformer, ...], base.Classifier] | None = None
    _split_of: object = None

    def _split_pipeline(self) -> tuple[EdgeFeatures, tuple[base.Transformer, ...], base.Classifier] | None:
        pipeline = self.pipeline
        if self._split_of is not pipeline:
            self._split, self._split_of = _split_pipeline(pipeline), pipeline
        return self._split

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # checkpoints keep the layout they always had
        state.pop("_split", None)
        state.pop("_split_of", None)
        return state

    @property
    def labels(self) -> int:
        return self.seen[False] + self.seen[True]


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


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored (missing, corrupt, tampered with or incompatible); names the file."""


#: Bump when the pickled state's layout changes; older files are refused, never half-read.
CHECKPOINT_FORMAT = 1
_MAGIC = b"EDGE-CHECKPOINT\n"
_MAX_HEADER = 4096


def _river_series() -> str:
    return ".".join(river.__version__.split(".")[:2])


#: The switching rule (ChampionChallenger): no election before the window holds this many labels …
ELECTION_MIN_LABELS = 100
#: … with at least this many of each class …
ELECTION_MIN_CLASS_LABELS = 20
#: … and a challenger must beat the champion's rolling ROC-AUC by more than this.
ELECTION_MARGIN = 0.02
#: A champion other than the rules is demoted once its rolling ROC-AUC falls this far below the rules'.
DEMOTION_MARGIN = 0.01
#: A candidate can be elected only when the evaluation window's labels come from at least this many
#: distinct clients (edge.learning.trust.client_group) ...
ELECTION_MIN_CLIENTS = 10
#: ... and no client (nor the labels whose claims contradict what edge observed) is more than this share of them.
ELECTION_MAX_CLIENT_SHARE = 0.2
#: Kept for checkpoints pickled when the envelope capped p at this value; the envelope now caps the
#: tier (ChampionChallenger.tier_ceiling): such a shopper may get lite, never minimal.
ENVELOPE_MAX_P = 0.5
#: A last measurement this recent (s) is fresh evidence; this fast (kbit/s, twice the 700 kbit/s label
#: threshold) is a fast network.
ENVELOPE_FRESH_S = 300.0
ENVELOPE_FAST_KBPS = 1400.0


def fast_evidence(x: Features) -> bool:
    """Strong, fresh evidence of a fast network in ``x``: the browser's own hints for this request say
    4G (``ECT: 4g``, or RTT/Downlink hints in Chromium's 4G band) and no fresh measurement says slow,
    or a fresh measurement of the client's last request says fast.

    >>> fast_evidence({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0}), fast_evidence({"ect": "3g"})
    (True, False)
    >>> fast_evidence({"ect": "4g", "last_kbps": 300.0, "last_age_s": 5.0})   # measured slow just now
    False
    >>> fast_evidence({"last_kbps": 20000.0, "last_age_s": 30.0}), fast_evidence({"last_kbps": 20000.0, "last_age_s": 3600.0})
    (True, False)
    """
    get = x.get
    last_kbps, age = get("last_kbps"), get("last_age_s")
    fresh = isinstance(last_kbps, float) and not (isinstance(age, (int, float)) and age > ENVELOPE_FRESH_S)
    if fresh:
        last_rtt = get("last_rtt_ms")
        slow_rtt = isinstance(last_rtt, float) and last_rtt >= SLOW_RTT_MS
        if last_kbps < ENVELOPE_FAST_KBPS / 2 or slow_rtt:
            return False  # a fresh measurement says slow: no envelope
        if last_kbps >= ENVELOPE_FAST_KBPS:
            return True
    ect = get("ect")
    if not (isinstance(ect, str) and ect in ECT_DEGRADED_P):
        rtt, down = get("rtt_ms"), get("downlink_kbps")
        if not (isinstance(rtt, float) or isinstance(down, float)):
            return False
        ect = ect_class(rtt if isinstance(rtt, float) else None, down if isinstance(down, float) else None)
    return ect == "4g"


#: The label threshold (kbit/s) the fixed throughput candidates are centred on (``edge.pipeline.labels``' default).
CANDIDATE_THRESHOLD_KBPS = 700.0


def last_request_p(x: Features) -> float | None:
    """The client's last measured throughput alone: ``T / (T + kbps)``, 0.5 at the label threshold T.

    >>> last_request_p({"last_kbps": 700.0}), last_request_p({}) is None
    (0.5, True)
    """
    kbps = x.get("last_kbps")
    if not isinstance(kbps, float) or not math.isfinite(kbps):
        return None
    return CANDIDATE_THRESHOLD_KBPS / (CANDIDATE_THRESHOLD_KBPS + max(kbps, 0.0))


def client_average_p(x: Features) -> float | None:
    """The client's smoothed throughput (the measurement cookie's geometric moving average, the
    connection-class idea; ``edge.learning.feedback.client_average``), scored as :func:`last_request_p`."""
    kbps = x.get("client_kbps_avg")
    if not isinstance(kbps, float) or not math.isfinite(kbps):
        return None
    return CANDIDATE_THRESHOLD_KBPS / (CANDIDATE_THRESHOLD_KBPS + max(kbps, 0.0))


def cell_share_p(x: Features) -> float | None:
    """The cell's recent degraded share (what :class:`edge.pipeline.towers.TowerTable` shows this client)."""
    share = x.get("cell_degraded_share")
    return min(max(share, 0.0), 1.0) if isinstance(share, float) and math.isfinite(share) else None


#: The fixed (non-learning) candidates of :class:`ChampionChallenger`, besides the rules and the River model.
FIXED_CANDIDATES = {"last_request": last_request_p, "client_average": client_average_p, "cell_share": cell_share_p}
#: Every candidate the champion/challenger can score and elect; ``rules`` is the default champion.
CANDIDATES = ("model", "rules", *FIXED_CANDIDATES)
#: The candidates ``--model auto`` scores and elects by default. The client average and the cell share
#: are left out by measurement: electable on the video traces, they added switches and cost 0.01–0.04
#: ROC-AUC (docs/learning.md); they remain replay baselines.
DEFAULT_CANDIDATES = ("model", "rules", "last_request")


def _auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's (1982) standard error of a ROC-AUC from this many positives and negatives.

    >>> round(_auc_se(0.7, 50, 50), 3), round(_auc_se(0.7, 500, 500), 3)
    (0.052, 0.016)
    """
    if positives < 1 or negatives < 1:
        return 1.0
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


class ChampionChallenger:
    """Serve the best of several candidates, judged on the latest labels; the rules until one has earned it.

    The candidates (:data:`CANDIDATES`): the rule baseline, the River model, and the fixed
    predictors edge can compute from the request alone (:data:`FIXED_CANDIDATES`: the last
    request's throughput, the client's smoothed throughput, the cell's degraded share).

    ``learn(x, degraded)`` is predict-then-learn: every candidate predicts ``x`` first, the
    predictions go into a :class:`~edge.learning.evaluation.RollingEvaluation` (a ``None`` — no opinion —
    is scored as 0.5 there, for evaluation only), then the River model learns and ADWIN watches
    its absolute error for drift.

    **The switching rule**, applied at each AUC refresh (every ``every`` labels), on the window's
    exact ROC-AUCs (all candidates scored on the same labels):

    1. no change before the window holds ``min_labels`` labels with at least ``min_class_labels``
       of each class (an AUC from a handful of positives is noise);
    2. a champion other than the rules is demoted to the rules as soon as its AUC falls more than
       ``demotion_margin`` below the rules' (at once: the rules are the safe default);
    3. the candidate with the best AUC replaces the champion only if it beats the champion's AUC
       by more than ``margin`` — or more than the noise of the two AUCs on the window's labels
       (Hanley–McNeil standard errors, combined), when that is larger — and only when the window's
       labels come from diverse senders (below).

    Going from A to B needs B > A + margin and back needs A > B + margin: two candidates within
    the margin of each other never flap. ``predict`` returns the champion's p; a champion without
    an opinion on ``x`` (a cold start for the throughput candidates) leaves it to the rules.

    Labels from the feedback loop say who sent them (``learn(x, y, client=...)``, see
    :mod:`edge.learning.trust`) and whether their claims were consistent with what edge observed
    (``trusted``). A candidate is elected only when the window's attributed labels come from
    at least ``min_clients`` distinct clients, none of them (nor the untrusted labels together) more
    than ``max_client_share`` of them: a burst of labels from a few clients cannot elect one, however
    well it fits them. Labels without a client (the offline ``edge replay``, tests) are not counted.
    The **safety envelope**: while a candidate other than the rules decides, a request with strong,
    fresh evidence of a fast network (:func:`fast_evidence`) is never served the minimal page:
    :meth:`tier_ceiling` says ``"lite"`` and the policy's decision honours it. The envelope caps the
    tier, not p, so p still ranks requests as the candidate scored them (a clipped p would tie them all).

    >>> cc = ChampionChallenger(min_labels=50, window=100, every=10, export_metrics=False)
    >>> cc.source
    'rules'
    >>> for i in range(60):   # the rules cannot tell these apart; the model can
    ...     cc.learn({"radio": "lte", "cqi": 3.0}, True)
    ...     cc.learn({"radio": "lte", "cqi": 14.0}, False)
    >>> cc.source, cc.snapshot()["labels"]
    ('model', 120)
    """

    def __init__(
        self,
        model: RiverModel | None = None,
        rules: NetworkModel | None = None,
        *,
        min_labels: int = ELECTION_MIN_LABELS,
        min_class_labels: int = ELECTION_MIN_CLASS_LABELS,
        margin: float = ELECTION_MARGIN,
        demotion_margin: float = DEMOTION_MARGIN,
        window: int = 1000,
        every: int = 25,
        drift_delta: float = 0.002,
        export_metrics: bool = True,
        min_clients: int = ELECTION_MIN_CLIENTS,
        max_client_share: float = ELECTION_MAX_CLIENT_SHARE,
        envelope_p: float = ENVELOPE_MAX_P,
        candidates: tuple[str, ...] = DEFAULT_CANDIDATES,
    ) -> None:
        unknown = [c for c in candidates if c not in CANDIDATES]
        if unknown or "rules" not in candidates:
            raise ValueError(f"candidates must include 'rules' and come from {CANDIDATES}, got {candidates}")
        # No prior by default: measured, a prior trained without the evaluation set cost the video
        # traces 0.013–0.022 ROC-AUC (docs/model-card.md); RiverModel(prior=DEFAULT_PRIOR) starts from one.
        self.model = model if model is not None else RiverModel()
        self.rules = rules if rules is not None else RuleModel()
        self.min_labels = min_labels
        self.min_class_labels = min_class_labels
        self.margin = margin
        self.demotion_margin = demotion_margin
        self.evaluation = RollingEvaluation(candidates, window=window, every=every)
        self.drift = drift.ADWIN(delta=drift_delta)
        self.drifts = 0
        self.export_metrics = export_metrics
        self._champion = "rules"
        self.switches = 0
        self.extra: dict[str, Any] = {}
        self.min_clients = min_clients
        self.max_client_share = max_client_share
        self.envelope_p = envelope_p
        self._window = window
        self._senders: deque[str | None] = deque()  # per label in the window: its client, "" if untrusted, None if unattributed
        self._sender_counts: Counter[str] = Counter()
        self._export()

    # Checkpoints written before the election looked at senders (or at more candidates) restore with
    # these; their evaluation window keeps the two candidates it had (model and rules).
    min_clients = ELECTION_MIN_CLIENTS
    max_client_share = ELECTION_MAX_CLIENT_SHARE
    envelope_p = ENVELOPE_MAX_P
    min_class_labels = 0
    demotion_margin = 0.0
    switches = 0
    _window = 1000
    _senders: deque[str | None] | None = None
    _sender_counts: Counter[str] | None = None

    # -- NetworkModel ----------------------------------------------------------------------
    @property
    def source(self) -> str:
        """Which candidate decides now: ``"rules"``, ``"model"`` or one of :data:`FIXED_CANDIDATES`."""
        return self._champion

    def predict(self, x: Features) -> float | None:
        champion = self._champion
        if champion != "rules":
            p = self.model.predict(x) if champion == "model" else FIXED_CANDIDATES[champion](x)
            if p is not None:
                return p
        return self.rules.predict(x)

    def tier_ceiling(self, x: Features) -> str | None:
        """The richest tier ``x`` may be served, by the safety envelope: ``"lite"`` (never minimal) while a
        learned candidate decides and ``x`` carries strong, fresh evidence of a fast network; else None.

        >>> cc = ChampionChallenger(export_metrics=False)
        >>> cc._champion = "model"
        >>> cc.tier_ceiling({"ect": "4g"}), cc.tier_ceiling({"ect": "2g"})
        ('lite', None)
        """
        if self._champion != "rules" and fast_evidence(x):
            return "lite"
        return None

    def learn(self, x: Features, degraded: bool, client: str | None = None, trusted: bool = True) -> None:
        """Predict-then-learn one label; ``client`` sent it, ``trusted``: its claims were consistent."""
        self._track_sender(None if client is None else (client if trusted else ""))
        y = bool(degraded)
        # The River model predicts x, then learns it (one feature pass: RiverModel.predict_then_learn);
        # the evaluation gets its prediction from before it learned.
        p_model = self.model.predict_then_learn(x, y)
        predictions = {"model": p_model, "rules": self.rules.predict(x)}
        for name, candidate in FIXED_CANDIDATES.items():
            predictions[name] = candidate(x)
        refreshed = self.evaluation.update(y, predictions)
        if p_model is not None:
            self.drift.update(abs(float(y) - p_model))
            if self.drift.drift_detected:
                self.drifts += 1
                if self.export_metrics:
                    MODEL_DRIFTS.inc()
        if refreshed:
            self._elect()
            self._export()

    def learn_from(self, x: Features, degraded: bool, client: str | None, trusted: bool) -> None:
        """:meth:`learn` for a label from the feedback loop (edge.learning.feedback): who sent it, whether it was plausible."""
        self.learn(x, degraded, client, trusted)

    # -- champion election -----------------------------------------------------------------
    def _track_sender(self, sender: str | None) -> None:
        if self._senders is None or self._sender_counts is None:
            self._senders, self._sender_counts = deque(), Counter()
        senders, counts = self._senders, self._sender_counts
        senders.append(sender)
        if sender is not None:
            counts[sender] += 1
        if len(senders) > self._window:
            old = senders.popleft()
            if old is not None:
                left = counts[old] - 1
                if left:
                    counts[old] = left
                else:
                    del counts[old]

    def senders_diverse(self) -> bool:
        """Whether the window's attributed labels come from enough clients for an election (see class doc)."""
        counts = self._sender_counts
        if not counts:
            return True  # no attributed labels: offline replay or tests
        total = sum(counts.values())
        clients = len(counts) - (1 if "" in counts else 0)
        return clients >= self.min_clients and max(counts.values()) <= self.max_client_share * total

    def _elect(self) -> None:
        """The switching rule of the class docstring, on the AUCs just refreshed."""
        ev = self.evaluation
        n, positives = ev.in_window, ev.window_positives
        if n < self.min_labels or min(positives, n - positives) < self.min_class_labels:
            return
        aucs = {m: ev.roc_auc(m) for m in ev.models}
        champion = self._champion
        rules_auc = aucs.get("rules")
        if rules_auc is None:
            return
        current = aucs.get(champion)
        if champion != "rules" and (current is None or current < rules_auc - self.demotion_margin):
            champion, current = "rules", rules_auc  # demoted at once
        challengers = [(auc, m) for m, auc in aucs.items() if m != champion and auc is not None]
        if challengers:
            best_auc, best = max(challengers)
            # The margin, or the noise of two AUCs on this many labels if that is larger (Hanley–McNeil).
            noise = math.hypot(_auc_se(best_auc, positives, n - positives), _auc_se(current, positives, n - positives))  # type: ignore[arg-type]
            if best_auc > current + max(self.margin, noise) and self.senders_diverse():  # type: ignore[operator]
                champion = best
        if champion != self._champion:
            self._champion = champion
            self.switches += 1

    def _export(self) -> None:
        if not self.export_metrics:
            return
        for name in self.evaluation.models:
            auc = self.evaluation.roc_auc(name)
            loss = self.evaluation.log_loss(name)
            MODEL_ROC_AUC.labels(name).set(auc if auc is not None else float("nan"))
            MODEL_LOG_LOSS.labels(name).set(loss if loss is not None else float("nan"))
            MODEL_CHAMPION.labels(name).set(1.0 if name == self._champion else 0.0)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary for ``GET /admin/model``."""
        ev = self.evaluation

        def _round(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "champion": self._champion,
            "estimator": self.model.estimator,
            "labels": ev.labels,
            "positives": ev.positives,
            "positive_rate": _round(ev.positive_rate),
            "window": ev.in_window,
            "min_labels": self.min_labels,
            "margin": self.margin,
            "roc_auc": {m: _round(ev.roc_auc(m)) for m in ev.models},
            "log_loss": {m: _round(ev.log_loss(m)) for m in ev.models},
            "drifts": self.drifts,
            "switches": self.switches,
            "candidates": list(ev.models),
            "prior": getattr(self.model, "prior", None),
            "window_clients": len([k for k in (self._sender_counts or {}) if k]),
        }

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, key: bytes | None = None) -> None:
        """Write a checkpoint atomically (temp file in the same directory, fsync, rename).

        The file is a magic line, a JSON header (format version, River series, digest) and a
        pickle of this object (River model, evaluation state, ADWIN and ``self.extra``, where
        the caller may put e.g. its TowerTable). With ``key`` the digest is an HMAC-SHA256, so
        :meth:`load` (given the same key) never unpickles a file someone else wrote; without
        it, a SHA-256 checksum that catches corruption only.
        """
        path = Path(path)
        payload = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        header = {
            "format": CHECKPOINT_FORMAT,
            "kind": "champion-challenger",
            "river": _river_series(),
            "digest": "hmac-sha256" if key else "sha256",
            "mac": _digest(payload, key),
            "length": len(payload),
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + orjson.dumps(header) + b"\n" + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with _suppress_oserror():
                os.unlink(tmp)
            raise
        with _suppress_oserror():
            dir_fd = os.open(path.parent or ".", os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, key: bytes | None = None) -> ChampionChallenger:
        """Restore a checkpoint written by :meth:`save`; :class:`CheckpointError` (naming the file) if it can't.

        The digest is verified before anything is unpickled. A file written with a key needs
        the key; a keyless file is refused when a key is given (it could have been forged).
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"checkpoint {path}: cannot read ({exc.strerror or exc})") from exc
        if not data.startswith(_MAGIC):
            raise CheckpointError(f"checkpoint {path}: not an edge checkpoint (bad magic)")
        end = data.find(b"\n", len(_MAGIC), len(_MAGIC) + _MAX_HEADER)
        if end < 0:
            raise CheckpointError(f"checkpoint {path}: corrupt header")
        try:
            header = orjson.loads(data[len(_MAGIC) : end])
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint {path}: corrupt header") from exc
        if not isinstance(header, dict) or header.get("kind") != "champion-challenger":
            raise CheckpointError(f"checkpoint {path}: corrupt header")
        if header.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"checkpoint {path}: incompatible format {header.get('format')!r} (this edge reads {CHECKPOINT_FORMAT})"
            )
        if header.get("river") != _river_series():
            raise CheckpointError(
                f"checkpoint {path}: written with River {header.get('river')!r}, this edge runs {_river_series()}"
            )
        payload = data[end + 1 :]
        if header.get("length") != len(payload):
            raise CheckpointError(f"checkpoint {path}: truncated ({len(payload)} of {header.get('length')} bytes)")
        expected_kind = "hmac-sha256" if key else "sha256"
        if header.get("digest") != expected_kind:
            raise CheckpointError(f"checkpoint {path}: digest is {header.get('digest')!r}, expected {expected_kind}")
        mac = header.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _digest(payload, key)):
            raise CheckpointError(f"checkpoint {path}: digest mismatch (corrupt or tampered with)")
        try:
            obj = pickle.loads(payload)  # noqa: S301 - verified digest above
        except Exception as exc:  # a verified but unreadable payload: an incompatible class layout
            raise CheckpointError(f"checkpoint {path}: incompatible contents ({type(exc).__name__}: {exc})") from exc
        if not isinstance(obj, cls):
            raise CheckpointError(f"checkpoint {path}: holds a {type(obj).__name__}, not a {cls.__name__}")
        obj._export()
        return obj


def _digest(payload: bytes, key: bytes | None) -> str:
    if key:
        return hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)  # type: ignore[arg-type]


#: Model choices by name (``--model``).
MODELS: dict[str, type] = {"rules": RuleModel, "off": NullModel, "river": RiverModel, "auto": ChampionChallenger}
