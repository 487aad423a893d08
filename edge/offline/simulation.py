"""The replay's clock: each client's requests and label arrivals, and the state carried between them.

:class:`Replayer` plays a schedule of events in time order (requests, and the labels that arrive
after them); each request is predicted from the past only, through the same code as live traffic,
and each arrived label is learned. What a pass collected is a :class:`Pass`, which
:mod:`edge.offline.report` scores. :mod:`edge.offline.replay` is the entry point.

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
last-measurement cookie carries it, read by the middleware's own mapping,
:func:`edge.pipeline.signals.measurement_signals`); the cell's statistics come from a
:class:`edge.pipeline.towers.TowerTable` fed with every client's arrived labels; then
:func:`edge.pipeline.features.to_features`. The ``PING*`` columns are never features (edge never
sees them).
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.learning.feedback import client_average
from edge.learning.model import NetworkModel, Observing, RuleModel, client_average_p, tier_ceiling_of
from edge.offline.baselines import BASELINES, ConnectionClass, cell_share_p, last_request_p
from edge.offline.hints import ChromiumHints
from edge.offline.traces import Sample, Trace
from edge.pipeline.features import Features, to_features
from edge.pipeline.labels import LabelRule
from edge.pipeline.signals import measurement_signals, read_signals
from edge.pipeline.towers import TowerTable

__all__ = ["Replayer", "Pass", "SCORED", "NEAR_ZERO_KBPS", "LABEL_SECONDS", "LABEL_HORIZON_S", "COLD_START_GAP_S"]

#: Below this a downloading second is a full video buffer trickling, not the network's capacity
#: (in a saturated trace it is an outage, and a label second).
NEAR_ZERO_KBPS = 10.0
#: A page view's measurement: the mean of its first few label seconds…
LABEL_SECONDS = 3
#: …within this many seconds of the request (a page load is over by then).
LABEL_HORIZON_S = 10
#: A request after this long without one is a cold start (no fresh history for the client).
COLD_START_GAP_S = 300.0



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
SCORED = ("model",) + BASELINES


@dataclass
class Pass:
    """What one replay pass collected: a label per scored request and each predictor's p for it."""

    ys: list[bool] = field(default_factory=list)
    cold: list[bool] = field(default_factory=list)
    clients: list[int] = field(default_factory=list)  # which client (trace) each scored request came from
    times: list[float] = field(default_factory=list)  # the replay's clock at each scored request (s)
    hinted: list[bool] = field(default_factory=list)  # the request carried browser hints (Replayer.hints)
    preds: dict[str, list[float | None]] = field(default_factory=lambda: {n: [] for n in (*SCORED, "deployed")})
    sources: list[str] = field(default_factory=list)  # who decided, for the deployed model
    ceilings: list[str | None] = field(default_factory=list)  # the deployed model's safety envelope per request
    predict_ns: list[int] = field(default_factory=list)
    rules_ns: list[int] = field(default_factory=list)
    deployed_ns: list[int] = field(default_factory=list)
    learn_ns: dict[int, int] = field(default_factory=dict)
    deployed_learn_ns: dict[int, int] = field(default_factory=dict)
    page_views: int = 0
    labels: dict[str, int] = field(default_factory=dict)


def _chromium_hints(trace: Trace) -> ChromiumHints:
    """The hints Chromium would send on this trace: its label seconds are the phone's observed throughput."""
    valid, _ = _label_seconds(trace)
    seen = [(s.t, s.kbps) for s, ok in zip(trace.seconds, valid) if ok and s.kbps is not None]
    return ChromiumHints([float(t) for t, _ in seen], [k for _, k in seen])


class Replayer:
    """The state a replay carries from request to request (and from a training pass to evaluation)."""

    def __init__(self, model: NetworkModel, deployed: NetworkModel, threshold_kbps: float) -> None:
        self.model = model
        self.deployed = deployed
        self.rules = RuleModel()
        self.towers = TowerTable()
        self.rule = LabelRule(threshold_kbps=threshold_kbps)
        self.threshold_kbps = threshold_kbps
        self.clock: float | None = None  # the last event time, so that a later pass never goes back in time
        #: Replay every client as Chromium, with the hints its NQE would send (edge.offline.hints); off: hint-less.
        self.hints = False
        self._hints: list[ChromiumHints] = []

    def run(self, traces: Sequence[Trace], think_time: tuple[float, float], seed: int, *, learn: bool = True) -> Pass:
        events, page_views, label_counts = _schedule(traces, think_time, seed)
        out = Pass(page_views=page_views, labels=label_counts)
        offset = 0.0
        if self.clock is not None and events and events[0][0] <= self.clock:
            offset = self.clock + COLD_START_GAP_S - events[0][0]
        clients = [_Client() for _ in traces]
        self._hints = [_chromium_hints(trace) for trace in traces] if self.hints else []
        for t, kind, _, req in events:
            now = t + offset
            if kind == 1:
                self._request(req, now, clients[req.client], out)
            else:
                self._arrival(req, now, clients[req.client], out, learn)
            self.clock = now
        return out

    def _request(self, req: _Request, now: float, state: _Client, out: Pass) -> None:
        """A request: predict from the past only."""
        header = req.second.edge_cell()
        headers = {"edge-cell": header} if header else {}
        if self._hints:
            headers.update({k.lower(): v for k, v in self._hints[req.client].at(req.t).items()})
        signals = read_signals(headers)
        if state.last_kbps is not None:
            # What the signed last-measurement cookie would carry, read by the middleware's own mapping.
            cookie = {"k": state.last_kbps, "kt": state.last_t, "t": state.last_t, "c": state.last_cell, "a": state.kbps_avg}
            measurement_signals(signals, cookie, now)
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
        out.clients.append(req.client)
        out.hinted.append("ect" in x)
        out.times.append(now)
        preds = out.preds
        preds["model"].append(p)
        preds["rules"].append(p_rules)
        preds["connection_class"].append(state.connection_class.predict())
        preds["last_request"].append(last_request_p(x, self.threshold_kbps))
        preds["client_average"].append(client_average_p(x))
        preds["cell_share"].append(cell_share_p(x))
        preds["deployed"].append(p_deployed)
        source_for = getattr(self.deployed, "source_for", None)  # the support check may pass x to the rules
        out.sources.append(source_for(x) if source_for is not None else str(getattr(self.deployed, "source", "model")))
        out.ceilings.append(tier_ceiling_of(self.deployed, x))

    def _arrival(self, req: _Request, now: float, state: _Client, out: Pass, learn: bool) -> None:
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
        elif isinstance(self.deployed, Observing):
            self.deployed.observe(req.x, y)  # frozen learners, live guard (ChampionChallenger.observe)
        if req.cell:
            self.towers.observe(req.cell, req.kbps, y, now)
        state.last_kbps, state.last_t, state.last_cell = req.kbps, now, req.cell
        state.kbps_avg = client_average(state.kbps_avg, req.kbps)
        state.connection_class.add(req.kbps)

