"""Replay real cellular traces through edge's own feature, label and model code.

Traces are read by :mod:`edge.offline.traces`: G-NetTrack Pro CSV exports, the Norway 3G logs (JSON
and raw form), Mahimahi link traces and per-second throughput logs, detected from their
content or named with ``--format``. Each file is one client (one phone's session); all
sessions are interleaved in timestamp order, so per-cell statistics learned from one client
serve the others, as on a live edge. A trace without cell or device columns is replayed with
the features it has: the client's own past measurements (the rest stays missing).

**Requests.** In the default *page-view* framing a client's first request is its first
sample, and each next page view comes a think time later (uniform in ``think_time``,
seeded per client; if the trace has no sample at that second, the next sample). With
``think_time=(0, 0)`` (``--think-time 0``), the *stream* framing, every downloading second
is a request.

**Labels** measure the network, not the app (:data:`NEAR_ZERO_KBPS`, :data:`LABEL_SECONDS`,
:data:`LABEL_HORIZON_S`). A *label second* is a second in which the phone is downloading
(G-NetTrack ``State`` D; every second of the other formats), its throughput is at least
10 kbit/s (below that, a video player with a full buffer is trickling, which says nothing
about the network; in a *saturated* trace — a greedy download or a link's capacity, every
format but G-NetTrack — a near-zero second is an outage and counts) and no ``PINGAVG``
value is recorded at t−1, t or t+1 (the measurement tool's own pings dent throughput). A
page view's measurement is the mean throughput of the first :data:`LABEL_SECONDS` label
seconds in the :data:`LABEL_HORIZON_S` seconds from its start (a stream request's: its own
second); the label is :class:`edge.pipeline.labels.LabelRule` applied to it. A request with no label
second in its horizon gets no label and is not scored. The label *arrives* (the model learns
from it, the cell statistics and the client's last-request signal take it in) at the end of
its last measured second, never earlier.

**Features** come only from the past and from what the phone reports now, through the same
code as live traffic: the current sample's radio figures go through an ``Edge-Cell`` header
and :func:`edge.pipeline.signals.read_signals` (``NetworkMode`` → ``radio``, ``RSRP``, ``RSRQ``,
``SNR`` → ``sinr``, ``CQI``, ``Speed``, the cell id); the previous page view's measurement
is the last-request signal (``last_kbps``, ``last_age_s``, ``last_cell_id``, as the signed
last-measurement cookie carries it); the cell's statistics come from a
:class:`edge.pipeline.towers.TowerTable` fed with every client's arrived labels; then
:func:`edge.pipeline.features.to_features`. The ``PING*`` columns are never features (edge never
sees them).

**What is scored.** The River model under test, the baselines (:data:`BASELINES`), and the
*deployed decision*: the model ``edge serve --model auto`` builds (``MODELS["auto"]``, the
champion/challenger, switching included), learning from the same arrived labels, and the
tier the policy's thresholds give its p (the demo policy by default). Every ROC-AUC comes
with its number of positives and a 95% percentile-bootstrap interval over the scored
requests (:func:`edge.learning.evaluation.bootstrap_roc_aucs`, the same resamples for every row).

**Train, then evaluate** (:func:`replay_train_eval`): the models learn online through one
set of traces, then a second set is replayed twice from that state: *frozen* (the River
model and the deployed model no longer learn; the cell table and the clients' histories,
which are inputs rather than learning, still fill) and *online* (learning continues).

Run it as ``edge replay FILES...`` or ``python -m edge.offline.replay FILES...``.
"""

from __future__ import annotations

import bisect
import copy
import glob
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from edge.core.errors import PolicyError
from edge.core.settings import DEFAULT_POLICY
from edge.learning.evaluation import BOOTSTRAP_RESAMPLES, bootstrap_roc_aucs, reliability, scores
from edge.learning.feedback import client_average
from edge.learning.model import ESTIMATORS, MODELS, ChampionChallenger, NetworkModel, RiverModel, RuleModel, client_average_p
from edge.learning.prior import DEFAULT_PRIOR, PriorError, load_prior
from edge.offline.traces import FORMATS, REQUIRED_COLUMNS, Sample, Trace, TraceFormatError, detect_format
from edge.offline.traces import read_trace as _read_trace
from edge.pipeline.features import Features, to_features
from edge.pipeline.labels import LabelRule
from edge.pipeline.policy import RoutePlan, load_policy
from edge.pipeline.signals import read_signals
from edge.pipeline.towers import TowerTable

__all__ = [
    "replay",
    "replay_train_eval",
    "replay_command",
    "read_trace",
    "detect_format",
    "ReplayReport",
    "TrainEvalReport",
    "Trace",
    "Sample",
    "TraceFormatError",
    "ConnectionClass",
    "FORMATS",
    "REQUIRED_COLUMNS",
    "NEAR_ZERO_KBPS",
    "LABEL_SECONDS",
    "LABEL_HORIZON_S",
    "COLD_START_GAP_S",
]

#: Below this a downloading second is a full video buffer trickling, not the network's capacity
#: (in a saturated trace it is an outage, and a label second).
NEAR_ZERO_KBPS = 10.0
#: A page view's measurement: the mean of its first few label seconds…
LABEL_SECONDS = 3
#: …within this many seconds of the request (a page load is over by then).
LABEL_HORIZON_S = 10
#: A request after this long without one is a cold start (no fresh history for the client).
COLD_START_GAP_S = 300.0
#: Serving threshold on p(degraded) for precision/recall.
SERVING_THRESHOLD = 0.5
#: The model ``edge serve`` deploys by default.
DEFAULT_DEPLOYED = "auto"

#: One second of a trace (the record of :mod:`edge.offline.traces`; the old name).
Second = Sample


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read one trace file (see :func:`edge.offline.traces.read_trace`): format ``fmt``, or detected from the content."""
    return _read_trace(path, fmt)


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


class ConnectionClass:
    """Facebook's network-connection-class: an exponential geometric moving average of throughput.

    Decay 0.05, with the library's cut-over (a plain running geometric mean for the first
    ``ceil(1/decay)`` samples). Classes POOR < 150, MODERATE < 550, GOOD < 2000 kbit/s, else
    EXCELLENT, mapped to a p(degraded) score (:data:`SCORES`); unknown before any sample.

        >>> cc = ConnectionClass()
        >>> cc.predict() is None
        True
        >>> cc.add(100.0); cc.add(400.0); cc.klass(), round(cc.value)
        ('MODERATE', 207)
    """

    #: Class → p(degraded). Monotone in the class (what AUC sees); POOR and MODERATE lie below
    #: the 700 kbit/s label threshold, GOOD straddles it.
    SCORES = {"POOR": 0.9, "MODERATE": 0.75, "GOOD": 0.4, "EXCELLENT": 0.1}

    def __init__(self, decay: float = 0.05) -> None:
        self.decay = decay
        self.cutover = math.ceil(1.0 / decay)
        self.value: float | None = None
        self.count = 0

    def add(self, kbps: float) -> None:
        kbps = max(kbps, 1.0)
        keep = 1.0 - self.decay
        if self.value is None:
            self.value = kbps
        elif self.count > self.cutover:
            self.value = math.exp(keep * math.log(self.value) + self.decay * math.log(kbps))
        else:
            retained = keep * self.count / (self.count + 1.0)
            self.value = math.exp(retained * math.log(self.value) + (1.0 - retained) * math.log(kbps))
        self.count += 1

    def klass(self) -> str | None:
        if self.value is None:
            return None
        if self.value < 150:
            return "POOR"
        if self.value < 550:
            return "MODERATE"
        if self.value < 2000:
            return "GOOD"
        return "EXCELLENT"

    def predict(self) -> float | None:
        k = self.klass()
        return None if k is None else self.SCORES[k]


def _last_request_p(x: Features, threshold_kbps: float) -> float | None:
    """Last-request throughput alone: p = T / (T + kbps), 0.5 at the label threshold T."""
    kbps = x.get("last_kbps")
    if not isinstance(kbps, float):
        return None
    return threshold_kbps / (threshold_kbps + max(kbps, 0.0))


def _cell_share_p(x: Features) -> float | None:
    share = x.get("cell_degraded_share")
    return share if isinstance(share, float) else None


BASELINES = ("rules", "connection_class", "last_request", "client_average", "cell_share")

# ---------------------------------------------------------------------------------------------
# Requests and labels
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    client: int
    t: float
    second: Sample
    kbps: float | None  # the measurement (None: no label)
    arrival: float
    x: Features | None = None
    cell: str | None = None  # the cell id as edge read it from the request
    y: bool | None = None
    scored: int = -1  # index into the score arrays


@dataclass(slots=True)
class _Client:
    last_kbps: float | None = None
    kbps_avg: float | None = None  # as the measurement cookie keeps it (edge.learning.feedback.measurement_cookie)
    last_t: float = 0.0
    last_cell: str | None = None
    previous_request: float | None = None
    connection_class: ConnectionClass = field(default_factory=ConnectionClass)


_LABEL_COUNTS = ("downloading_seconds", "dropped_near_zero", "dropped_ping", "label_seconds")


def _label_seconds(trace: Trace) -> tuple[list[bool], dict[str, int]]:
    """Which seconds may measure the network, and how many downloading seconds each rule dropped."""
    seconds = trace.seconds
    pings = {s.t for s in seconds if s.ping}
    valid = []
    counts = dict.fromkeys(_LABEL_COUNTS, 0)
    for s in seconds:
        ok = False
        if s.downloading:
            counts["downloading_seconds"] += 1
            if s.kbps is None or (s.kbps < NEAR_ZERO_KBPS and not trace.saturated):
                counts["dropped_near_zero"] += 1
            elif s.t in pings or (s.t - 1) in pings or (s.t + 1) in pings:
                counts["dropped_ping"] += 1
            else:
                ok = True
                counts["label_seconds"] += 1
        valid.append(ok)
    return valid, counts


def _requests(
    client: int, trace: Trace, valid: list[bool], think_time: tuple[float, float], rng: random.Random
) -> list[_Request]:
    seconds = trace.seconds
    out: list[_Request] = []
    if not seconds:
        return out
    if think_time == (0.0, 0.0):  # stream framing: one request per downloading second
        for s, ok in zip(seconds, valid):
            if s.downloading:
                out.append(_Request(client, float(s.t), s, s.kbps if ok else None, float(s.t + 1)))
        return out
    times = [s.t for s in seconds]
    lo, hi = think_time
    t = float(times[0])
    while True:
        i = bisect.bisect_left(times, math.ceil(t))
        if i >= len(times):
            break
        start = times[i]
        measured: list[float] = []
        end = start
        j = i
        while j < len(times) and times[j] < start + LABEL_HORIZON_S and len(measured) < LABEL_SECONDS:
            if valid[j]:
                measured.append(seconds[j].kbps)  # type: ignore[arg-type]
                end = times[j]
            j += 1
        kbps = sum(measured) / len(measured) if measured else None
        out.append(_Request(client, float(start), seconds[i], kbps, float(end + 1)))
        t = start + rng.uniform(lo, hi)
    return out


_Event = tuple[float, int, int, _Request]


def _schedule(
    traces: Sequence[Trace], think_time: tuple[float, float], seed: int
) -> tuple[list[_Event], int, dict[str, int]]:
    """Every client's requests (kind 1) and label arrivals (kind 0), in time order; page views; label counts."""
    label_counts = dict.fromkeys(_LABEL_COUNTS, 0)
    events: list[_Event] = []
    page_views = 0
    for client, trace in enumerate(traces):
        valid, counts = _label_seconds(trace)
        for k, v in counts.items():
            label_counts[k] += v
        rng = random.Random(f"{seed}:{client}")
        for req in _requests(client, trace, valid, think_time, rng):
            page_views += 1
            events.append((req.t, 1, len(events), req))
            if req.kbps is not None:
                events.append((req.arrival, 0, len(events), req))  # arrivals sort before requests at the same time
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return events, page_views, label_counts


# ---------------------------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------------------------

#: The rows every replay scores, besides the deployed decision.
_SCORED = ("model",) + BASELINES


@dataclass
class _Pass:
    """What one replay pass collected: a label per scored request and each predictor's p for it."""

    ys: list[bool] = field(default_factory=list)
    cold: list[bool] = field(default_factory=list)
    preds: dict[str, list[float | None]] = field(default_factory=lambda: {n: [] for n in (*_SCORED, "deployed")})
    sources: list[str] = field(default_factory=list)  # who decided, for the deployed model
    ceilings: list[str | None] = field(default_factory=list)  # the deployed model's safety envelope per request
    predict_ns: list[int] = field(default_factory=list)
    rules_ns: list[int] = field(default_factory=list)
    deployed_ns: list[int] = field(default_factory=list)
    learn_ns: dict[int, int] = field(default_factory=dict)
    deployed_learn_ns: dict[int, int] = field(default_factory=dict)
    page_views: int = 0
    labels: dict[str, int] = field(default_factory=dict)


class _Replayer:
    """The state a replay carries from request to request (and from a training pass to evaluation)."""

    def __init__(self, model: NetworkModel, deployed: NetworkModel, threshold_kbps: float) -> None:
        self.model = model
        self.deployed = deployed
        self.rules = RuleModel()
        self.towers = TowerTable()
        self.rule = LabelRule(threshold_kbps=threshold_kbps)
        self.threshold_kbps = threshold_kbps
        self.clock: float | None = None  # the last event time, so that a later pass never goes back in time

    def run(self, traces: Sequence[Trace], think_time: tuple[float, float], seed: int, *, learn: bool = True) -> _Pass:
        events, page_views, label_counts = _schedule(traces, think_time, seed)
        out = _Pass(page_views=page_views, labels=label_counts)
        offset = 0.0
        if self.clock is not None and events and events[0][0] <= self.clock:
            offset = self.clock + COLD_START_GAP_S - events[0][0]
        clients = [_Client() for _ in traces]
        for t, kind, _, req in events:
            now = t + offset
            if kind == 1:
                self._request(req, now, clients[req.client], out)
            else:
                self._arrival(req, now, clients[req.client], out, learn)
            self.clock = now
        return out

    def _request(self, req: _Request, now: float, state: _Client, out: _Pass) -> None:
        """A request: predict from the past only."""
        header = req.second.edge_cell()
        signals = read_signals({"edge-cell": header} if header else {})
        if state.last_kbps is not None:
            signals.last_kbps = state.last_kbps
            signals.last_age_s = max(0.0, now - state.last_t)
            signals.last_cell_id = state.last_cell
            signals.client_kbps_avg = state.kbps_avg
        cell = self.towers.lookup(signals.cell_id, now) if signals.cell_id else None
        x = to_features(signals, cell)
        is_cold = state.previous_request is None or now - state.previous_request > COLD_START_GAP_S
        state.previous_request = now
        if req.kbps is None:
            return  # no label: nothing to score or learn
        req.x, req.cell = x, signals.cell_id
        req.y = self.rule.degraded(kbps=req.kbps)
        clock = time.perf_counter_ns
        t0 = clock()
        p = self.model.predict(x)
        t1 = clock()
        p_rules = self.rules.predict(x)
        t2 = clock()
        p_deployed = self.deployed.predict(x)
        t3 = clock()
        out.predict_ns.append(t1 - t0)
        out.rules_ns.append(t2 - t1)
        out.deployed_ns.append(t3 - t2)
        req.scored = len(out.ys)
        out.ys.append(bool(req.y))
        out.cold.append(is_cold)
        preds = out.preds
        preds["model"].append(p)
        preds["rules"].append(p_rules)
        preds["connection_class"].append(state.connection_class.predict())
        preds["last_request"].append(_last_request_p(x, self.threshold_kbps))
        preds["client_average"].append(client_average_p(x))
        preds["cell_share"].append(_cell_share_p(x))
        preds["deployed"].append(p_deployed)
        out.sources.append(str(getattr(self.deployed, "source", "model")))
        ceiling = getattr(self.deployed, "tier_ceiling", None)
        out.ceilings.append(ceiling(x) if ceiling is not None else None)

    def _arrival(self, req: _Request, now: float, state: _Client, out: _Pass, learn: bool) -> None:
        """The label arrives: learn, and let the cell and the client's history take it in."""
        assert req.x is not None and req.kbps is not None
        y = bool(req.y)
        if learn:
            clock = time.perf_counter_ns
            t0 = clock()
            self.model.learn(req.x, y)
            t1 = clock()
            self.deployed.learn(req.x, y)
            t2 = clock()
            out.learn_ns[req.scored] = t1 - t0
            out.deployed_learn_ns[req.scored] = t2 - t1
        if req.cell:
            self.towers.observe(req.cell, req.kbps, y, now)
        state.last_kbps, state.last_t, state.last_cell = req.kbps, now, req.cell
        state.kbps_avg = client_average(state.kbps_avg, req.kbps)
        state.connection_class.add(req.kbps)


@dataclass
class ReplayReport:
    """What a replay measured. ``to_dict()`` is the ``--json`` output."""

    framing: dict[str, Any]
    model: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    requests: int
    positive_rate: float | None
    cold_start_requests: int
    page_views: int
    labels: dict[str, int]
    files: int
    rows: int
    rows_skipped: int
    wall_s: float
    #: The deployed decision: the metrics of its p, who decided, its tiers under the policy.
    deployed: dict[str, Any] = field(default_factory=dict)
    positives: int = 0
    formats: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployed": self.deployed,
            "model": self.model,
            "baselines": self.baselines,
            "requests": self.requests,
            "positives": self.positives,
            "positive_rate": self.positive_rate,
            "framing": self.framing,
            "cold_start_requests": self.cold_start_requests,
            "page_views": self.page_views,
            "labels": self.labels,
            "files": self.files,
            "formats": self.formats,
            "rows": self.rows,
            "rows_skipped": self.rows_skipped,
            "wall_s": self.wall_s,
        }


@dataclass
class TrainEvalReport:
    """Train on one set of traces, evaluate on another: the training pass, then frozen and online evaluation."""

    train: ReplayReport
    frozen: ReplayReport
    online: ReplayReport

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train.to_dict(), "frozen": self.frozen.to_dict(), "online": self.online.to_dict()}


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, tuple | list):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class _Options:
    think_time: tuple[float, float]
    seed: int
    threshold_kbps: float
    tiers: RoutePlan
    policy_name: str
    deployed_name: str
    bootstrap: int
    bootstrap_seed: int
    prior: str | None = None


def _metrics(out: _Pass, name: str, intervals: dict[str, Any], cold_intervals: dict[str, Any]) -> dict[str, Any]:
    ys, preds = out.ys, out.preds[name]
    s: dict[str, Any] = scores(ys, preds, SERVING_THRESHOLD)
    s["positives"] = sum(ys)
    s["roc_auc_ci"] = intervals.get(name)
    cold_y = [y for y, c in zip(ys, out.cold) if c]
    cold_p = [p for p, c in zip(preds, out.cold) if c]
    s["cold_start_roc_auc"] = scores(cold_y, cold_p)["roc_auc"] if cold_y else None
    s["cold_start_n"] = len(cold_y)
    s["cold_start_positives"] = sum(cold_y)
    s["cold_start_roc_auc_ci"] = cold_intervals.get(name)
    s["coverage"] = sum(1 for p in preds if p is not None) / len(ys) if ys else None
    if name in ("model", "deployed"):
        s["reliability"] = reliability(ys, preds)
    return s


def _median_us(values: Iterable[int]) -> float | None:
    values = list(values)
    return round(statistics.median(values) / 1000.0, 2) if values else None


def _tiers(out: _Pass, plan: RoutePlan, policy_name: str) -> dict[str, Any]:
    """The tier the policy's thresholds give each deployed p (no p: full; the envelope's ceiling applied), against the label."""

    def tier_of(p: float | None, ceiling: str | None) -> str:
        tier = plan.tier_for(p) if p is not None else "full"
        return "lite" if ceiling == "lite" and tier == "minimal" else tier

    tiers = [tier_of(p, c) for p, c in zip(out.preds["deployed"], out.ceilings)]
    served = Counter(tiers)
    fine = degraded = lite_when_fine = full_when_degraded = 0
    for y, tier in zip(out.ys, tiers):
        if y:
            degraded += 1
            full_when_degraded += tier == "full"
        else:
            fine += 1
            lite_when_fine += tier != "full"
    return {
        "policy": policy_name,
        "lite_threshold": plan.lite_threshold,
        "minimal_threshold": plan.minimal_threshold,
        "served": {t: served.get(t, 0) for t in ("full", "lite", "minimal")},
        "fine": fine,
        "lite_when_fine": lite_when_fine / fine if fine else None,
        "degraded": degraded,
        "full_when_degraded": full_when_degraded / degraded if degraded else None,
    }


def _report(out: _Pass, traces: Sequence[Trace], replayer: _Replayer, opts: _Options, started: float) -> ReplayReport:
    ys = out.ys
    names = (*_SCORED, "deployed")
    intervals = bootstrap_roc_aucs(ys, {n: out.preds[n] for n in names}, resamples=opts.bootstrap, seed=opts.bootstrap_seed)
    cold_y = [y for y, c in zip(ys, out.cold) if c]
    cold_intervals = bootstrap_roc_aucs(
        cold_y,
        {n: [p for p, c in zip(out.preds[n], out.cold) if c] for n in names},
        resamples=opts.bootstrap,
        seed=opts.bootstrap_seed,
    )

    def summary(name: str) -> dict[str, Any]:
        return {k: _round(v) for k, v in _metrics(out, name, intervals, cold_intervals).items()}

    model = summary("model")
    if out.predict_ns:
        model["cost_us_median"] = _median_us(out.predict_ns[i] + out.learn_ns.get(i, 0) for i in range(len(out.predict_ns)))
        model["predict_us_median"] = _median_us(out.predict_ns)
        model["learn_us_median"] = _median_us(out.learn_ns.values())
    baselines = {name: summary(name) for name in BASELINES}
    baselines["rules"]["cost_us_median"] = _median_us(out.rules_ns)
    deployed = summary("deployed")
    deployed["model"] = opts.deployed_name
    if out.deployed_ns:
        deployed["cost_us_median"] = _median_us(
            out.deployed_ns[i] + out.deployed_learn_ns.get(i, 0) for i in range(len(out.deployed_ns))
        )
    source_counts = Counter(out.sources)
    deployed["decided_by"] = {k: _round(v / len(ys)) for k, v in sorted(source_counts.items())} if ys else {}
    deployed["switches"] = sum(1 for a, b in zip(out.sources, out.sources[1:]) if a != b)
    deployed["final_source"] = getattr(replayer.deployed, "source", None)
    deployed["tiers"] = {k: _round(v) for k, v in _tiers(out, opts.tiers, opts.policy_name).items()}
    lo, hi = opts.think_time
    stream = (lo, hi) == (0, 0)
    framing = {
        "kind": "stream" if stream else "page_view",
        "think_time_s": [lo, hi],
        "seed": opts.seed,
        "threshold_kbps": opts.threshold_kbps,
        "label_seconds": 1 if stream else LABEL_SECONDS,
        "label_horizon_s": 1 if stream else LABEL_HORIZON_S,
        "estimator": getattr(replayer.model, "estimator", type(replayer.model).__name__),
        "deployed": opts.deployed_name,
        "prior": opts.prior,
        "bootstrap": {"resamples": opts.bootstrap, "confidence": 0.95, "seed": opts.bootstrap_seed},
    }
    return ReplayReport(
        framing=framing,
        model=model,
        baselines=baselines,
        deployed=deployed,
        requests=len(ys),
        positives=sum(ys),
        positive_rate=round(sum(ys) / len(ys), 4) if ys else None,
        cold_start_requests=sum(out.cold),
        page_views=out.page_views,
        labels=out.labels,
        files=len(traces),
        formats=dict(sorted(Counter(t.format for t in traces).items())),
        rows=sum(t.rows for t in traces),
        rows_skipped=sum(t.rows_skipped for t in traces),
        wall_s=round(time.perf_counter() - started, 2),
    )


def _deployed_model(name: str) -> NetworkModel:
    """The model ``edge serve --model NAME`` builds (``edge.runtime.app.make_model`` without a checkpoint), metrics export off."""
    factory = MODELS[name]
    try:
        return factory(export_metrics=False)
    except TypeError:  # a model without metrics of its own
        return factory()


def _setup(
    think_time: tuple[float, float],
    seed: int,
    threshold_kbps: float,
    estimator: str,
    model_factory: Callable[[], NetworkModel] | None,
    deployed: str,
    deployed_factory: Callable[[], NetworkModel] | None,
    policy: str | Path | None,
    bootstrap: int,
    bootstrap_seed: int,
    prior: str | Path | None = None,
) -> tuple[_Replayer, _Options]:
    lo, hi = think_time
    if lo < 0 or hi < lo:
        raise ValueError("think time must be 0 or LO,HI with 0 ≤ LO ≤ HI")
    if deployed not in MODELS and deployed_factory is None:
        raise ValueError(f"unknown model {deployed!r} (one of: {', '.join(MODELS)})")
    loaded = load_policy(policy if policy is not None else DEFAULT_POLICY)
    no_prior = prior in (None, "none")  # as --model auto runs (edge.learning.model.ChampionChallenger: no prior)
    loaded_prior = None if no_prior else load_prior(DEFAULT_PRIOR if prior == "default" else prior)  # type: ignore[arg-type]
    if model_factory is not None:
        model = model_factory()
    else:  # the River candidate as the deployed model holds it: from the same prior (logreg only)
        model = RiverModel(estimator, prior=loaded_prior if estimator == "logreg" else None)
    if deployed_factory is not None:
        deployed_model = deployed_factory()
    elif deployed == "auto" and not no_prior:  # MODELS["auto"] with its River candidate from a prior
        deployed_model = ChampionChallenger(RiverModel(prior=loaded_prior), export_metrics=False)
    else:
        deployed_model = _deployed_model(deployed)
    opts = _Options(
        think_time=(float(lo), float(hi)),
        seed=seed,
        threshold_kbps=threshold_kbps,
        tiers=loaded.default,
        policy_name=loaded.name,
        deployed_name=deployed,
        bootstrap=bootstrap,
        bootstrap_seed=bootstrap_seed,
        prior=loaded_prior.name if loaded_prior is not None else None,
    )
    return _Replayer(model, deployed_model, threshold_kbps), opts


def replay(
    paths: Iterable[str | Path],
    *,
    think_time: tuple[float, float] = (10.0, 60.0),
    seed: int = 0,
    threshold_kbps: float = 700.0,
    estimator: str = "logreg",
    model_factory: Callable[[], NetworkModel] | None = None,
    fmt: str | None = None,
    deployed: str = DEFAULT_DEPLOYED,
    deployed_factory: Callable[[], NetworkModel] | None = None,
    policy: str | Path | None = None,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    bootstrap_seed: int = 0,
    prior: str | Path | None = None,
) -> ReplayReport:
    """Replay trace files (see the module docstring) and score the model, the baselines and the deployed decision.

    ``model_factory`` builds the learner under test (default: ``RiverModel(estimator)``);
    ``deployed`` names the model ``edge serve --model`` would run (``deployed_factory``
    overrides it); ``policy`` gives the tier thresholds (default: the demo policy); ``fmt``
    the trace format (default: detected per file); ``bootstrap`` resamples per interval;
    ``prior`` the River model's prior (:mod:`edge.learning.prior`): ``None``/``"none"`` (as ``edge serve``
    runs), ``"default"`` (the shipped file) or a file; the model under test and ``auto``'s River
    candidate both start from it.
    """
    started = time.perf_counter()
    replayer, opts = _setup(
        think_time, seed, threshold_kbps, estimator, model_factory, deployed, deployed_factory, policy, bootstrap, bootstrap_seed,
        prior,
    )
    traces = [read_trace(p, fmt) for p in paths]
    out = replayer.run(traces, opts.think_time, seed)
    return _report(out, traces, replayer, opts, started)


def replay_train_eval(
    train: Iterable[str | Path],
    evaluate: Iterable[str | Path],
    *,
    think_time: tuple[float, float] = (10.0, 60.0),
    seed: int = 0,
    threshold_kbps: float = 700.0,
    estimator: str = "logreg",
    model_factory: Callable[[], NetworkModel] | None = None,
    fmt: str | None = None,
    deployed: str = DEFAULT_DEPLOYED,
    deployed_factory: Callable[[], NetworkModel] | None = None,
    policy: str | Path | None = None,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    bootstrap_seed: int = 0,
    prior: str | Path | None = None,
) -> TrainEvalReport:
    """Learn online through the ``train`` traces, then replay the ``evaluate`` traces frozen and learning online.

    The evaluation traces are new clients; their clock is moved past the end of training when
    it would go back (the cell table decays with time). Both evaluation passes start from the
    same trained state and see the same page views as ``replay(evaluate, …)`` with the same seed.
    """
    started = time.perf_counter()
    replayer, opts = _setup(
        think_time, seed, threshold_kbps, estimator, model_factory, deployed, deployed_factory, policy, bootstrap, bootstrap_seed,
        prior,
    )
    train_traces = [read_trace(p, fmt) for p in train]
    eval_traces = [read_trace(p, fmt) for p in evaluate]
    out = replayer.run(train_traces, opts.think_time, seed)
    train_report = _report(out, train_traces, replayer, opts, started)
    frozen = copy.deepcopy(replayer)
    started = time.perf_counter()
    out = frozen.run(eval_traces, opts.think_time, seed, learn=False)
    frozen_report = _report(out, eval_traces, frozen, opts, started)
    started = time.perf_counter()
    out = replayer.run(eval_traces, opts.think_time, seed, learn=True)
    online_report = _report(out, eval_traces, replayer, opts, started)
    return TrainEvalReport(train=train_report, frozen=frozen_report, online=online_report)


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def _parse_think_time(value: str) -> tuple[float, float]:
    value = value.strip()
    try:
        if "," in value:
            lo_s, hi_s = value.split(",", 1)
            lo, hi = float(lo_s), float(hi_s)
        else:
            lo = hi = float(value)
    except ValueError:
        raise click.BadParameter("expected 0 or LO,HI in seconds, e.g. 10,60", param_hint="'--think-time'") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi < lo:
        raise click.BadParameter("expected 0 or LO,HI with 0 ≤ LO ≤ HI", param_hint="'--think-time'")
    if "," not in value and lo != 0:
        raise click.BadParameter("a single value must be 0 (stream framing); use LO,HI for page views", param_hint="'--think-time'")
    return lo, hi


def _fmt(v: Any, width: int = 8) -> str:
    if v is None:
        return "—".rjust(width)
    if isinstance(v, float):
        return f"{v:.3f}".rjust(width)
    return str(v).rjust(width)


def _ci(v: Any, width: int = 16) -> str:
    if not v:
        return "—".rjust(width)
    return f"[{v[0]:.3f}, {v[1]:.3f}]".rjust(width)


def _share(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def format_report(report: ReplayReport) -> str:
    """The human-readable tables ``edge replay`` prints."""
    f = report.framing
    formats = ", ".join(f"{n} {k}" for k, n in report.formats.items())
    lines = [
        f"framing: {f['kind']} (think time {f['think_time_s'][0]:g}–{f['think_time_s'][1]:g} s, seed {f['seed']}), "
        f"label threshold {f['threshold_kbps']:g} kbit/s, estimator {f['estimator']}",
        f"files {report.files} ({formats}), rows {report.rows} ({report.rows_skipped} skipped), "
        f"page views {report.page_views}, labelled requests {report.requests} "
        f"({report.positives} degraded, positive rate {_fmt(report.positive_rate, 0)}), cold-start {report.cold_start_requests}",
        "label seconds: {label_seconds} of {downloading_seconds} downloading seconds "
        "(dropped: {dropped_near_zero} near-zero, {dropped_ping} around pings)".format(**report.labels),
        "",
        f"{'':20}{'ROC-AUC':>8}{'95% CI':>16}{'pos':>6}{'logloss':>8}{'prec':>7}{'recall':>7}"
        f"{'cold AUC':>9}{'cover':>7}{'µs/req':>8}",
    ]
    rows = [(f"deployed ({report.deployed.get('model', '?')})", report.deployed), ("river model", report.model)]
    rows += list(report.baselines.items())
    for name, m in rows:
        lines.append(
            f"{name:20}{_fmt(m['roc_auc'])}{_ci(m['roc_auc_ci'])}{_fmt(m['positives'], 6)}{_fmt(m['log_loss'])}"
            f"{_fmt(m['precision'], 7)}{_fmt(m['recall'], 7)}{_fmt(m['cold_start_roc_auc'], 9)}"
            f"{_fmt(m['coverage'], 7)}{_fmt(m.get('cost_us_median'))}"
        )
    d = report.deployed
    if d:
        decided = ", ".join(f"{k} {_share(v)}" for k, v in d["decided_by"].items()) or "—"
        t = d["tiers"]
        served = t["served"]
        total = sum(served.values()) or 1
        lines += [
            "",
            f"deployed decision: decided by {decided}; {d['switches']} switches; champion at the end: {d['final_source']}",
            f"tiers under policy {t['policy']!r} (lite ≥ {t['lite_threshold']:g}, minimal ≥ {t['minimal_threshold']:g}): "
            f"full {_share(served['full'] / total)}, lite {_share(served['lite'] / total)}, "
            f"minimal {_share(served['minimal'] / total)}; served lite/minimal when fine {_share(t['lite_when_fine'])} "
            f"(of {t['fine']}), served full when degraded {_share(t['full_when_degraded'])} (of {t['degraded']})",
        ]
    b = f["bootstrap"]
    lines.append(
        f"(95% CI: percentile bootstrap over labelled requests, {b['resamples']} resamples, seed {b['seed']}; "
        f"wall time {report.wall_s:.1f} s)"
    )
    return "\n".join(lines)


def format_train_eval(report: TrainEvalReport) -> str:
    """The three blocks ``edge replay --train … --eval …`` prints."""
    return "\n\n".join(
        [
            "== training (learning online) ==\n" + format_report(report.train),
            "== evaluation, frozen (no learning) ==\n" + format_report(report.frozen),
            "== evaluation, learning online ==\n" + format_report(report.online),
        ]
    )


def _expand(patterns: Sequence[str], option: str) -> list[Path]:
    """Files named by ``--train``/``--eval``: each a file or a (quoted) glob pattern, matches sorted."""
    out: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_file():
            out.append(path)
            continue
        matches = sorted(Path(m) for m in glob.glob(pattern) if Path(m).is_file())
        if not matches:
            raise click.BadParameter(f"no file matches {pattern!r}", param_hint=f"'{option}'")
        out.extend(matches)
    return out


@click.command("replay")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--think-time",
    default="10,60",
    show_default=True,
    help="Seconds between a client's page views, uniform LO,HI; 0 = stream framing (every downloading second).",
)
@click.option("--threshold-kbps", type=float, default=700.0, show_default=True, help="Label: degraded below this.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the think times.")
@click.option("--estimator", type=click.Choice(ESTIMATORS), default=ESTIMATORS[0], show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Trace format of every file.  [default: detected from each file's content]",
)
@click.option(
    "--model",
    "deployed",
    type=click.Choice(sorted(MODELS)),
    default=DEFAULT_DEPLOYED,
    show_default=True,
    help="The deployed decision to score: the model `edge serve --model` would run.",
)
@click.option(
    "--policy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Policy whose tier thresholds turn the deployed p into tiers.  [default: the demo policy]",
)
@click.option(
    "--train",
    "train",
    multiple=True,
    metavar="FILE|GLOB",
    help="Learn online through these traces first (repeatable; quote globs), then evaluate on FILES/--eval, frozen and online.",
)
@click.option(
    "--eval",
    "evaluate",
    multiple=True,
    metavar="FILE|GLOB",
    help="Traces to evaluate on (repeatable; quote globs); added to FILES.",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(0, 100_000),
    default=BOOTSTRAP_RESAMPLES,
    show_default=True,
    help="Bootstrap resamples for each 95% AUC interval (0: none).",
)
@click.option(
    "--prior",
    default="none",
    show_default=True,
    metavar="none|default|FILE",
    help="The River model's prior (edge/learning/prior.py): none (as edge serve runs), the shipped one, or a prior JSON file "
    "(e.g. one trained without the evaluation set).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def replay_command(
    files: tuple[Path, ...],
    think_time: str,
    threshold_kbps: float,
    seed: int,
    estimator: str,
    fmt: str | None,
    deployed: str,
    policy: Path | None,
    train: tuple[str, ...],
    evaluate: tuple[str, ...],
    bootstrap: int,
    prior: str,
    as_json: bool,
) -> None:
    """Replay cellular traces (G-NetTrack CSV, Norway 3G JSON or log, Mahimahi, per-second throughput; plain or .gz)
    through edge's features, labels, model and deployed decision."""
    think = _parse_think_time(think_time)
    if not (math.isfinite(threshold_kbps) and threshold_kbps > 0):
        raise click.BadParameter("must be a positive number", param_hint="--threshold-kbps")
    eval_files = list(files) + _expand(evaluate, "--eval")
    train_files = _expand(train, "--train")
    if not eval_files:
        raise click.UsageError("no traces to replay: give FILES (or --eval)")
    options: dict[str, Any] = dict(
        think_time=think,
        seed=seed,
        threshold_kbps=threshold_kbps,
        estimator=estimator,
        fmt=fmt,
        deployed=deployed,
        policy=policy,
        bootstrap=bootstrap,
        prior=prior,
    )
    try:
        if train_files:
            report: ReplayReport | TrainEvalReport = replay_train_eval(train_files, eval_files, **options)
        else:
            report = replay(eval_files, **options)
    except (TraceFormatError, PolicyError, PriorError) as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
    elif isinstance(report, TrainEvalReport):
        click.echo(format_train_eval(report))
    else:
        click.echo(format_report(report))


if __name__ == "__main__":  # python -m edge.offline.replay FILES...
    replay_command.main(args=sys.argv[1:], prog_name="python -m edge.offline.replay")
