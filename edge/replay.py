"""Replay real cellular traces (G-NetTrack Pro CSV exports) through edge's own feature, label and model code.

Each file is one client (one phone's session); all sessions are interleaved in timestamp
order, so per-cell statistics learned from one client serve the others, as on a live edge.

**Requests.** In the default *page-view* framing a client's first request is its first
sample, and each next page view comes a think time later (uniform in ``think_time``,
seeded per client; if the trace has no sample at that second, the next sample). With
``think_time=(0, 0)`` (``--think-time 0``), the *stream* framing, every downloading second
(``State`` D) is a request.

**Labels** measure the network, not the app (:data:`NEAR_ZERO_KBPS`, :data:`LABEL_SECONDS`,
:data:`LABEL_HORIZON_S`). A *label second* is a second in which the phone is downloading
(``State`` D), its ``DL_bitrate`` is at least 10 kbit/s (below that, a video player with a
full buffer is trickling, which says nothing about the network) and no ``PINGAVG`` value is
recorded at t−1, t or t+1 (the measurement tool's own pings dent throughput). A page view's
measurement is the mean ``DL_bitrate`` of the first :data:`LABEL_SECONDS` label seconds in
the :data:`LABEL_HORIZON_S` seconds from its start (a stream request's: its own second); the
label is :class:`edge.labels.LabelRule` applied to it. A request with no label second in its
horizon gets no label and is not scored. The label *arrives* (the model learns from it, the
cell statistics and the client's last-request signal take it in) at the end of its last
measured second, never earlier.

**Features** come only from the past and from what the phone reports now, through the same
code as live traffic: the current sample's radio figures go through an ``Edge-Cell`` header
and :func:`edge.signals.read_signals` (``NetworkMode`` → ``radio``, ``RSRP``, ``RSRQ``,
``SNR`` → ``sinr``, ``CQI``, ``Speed``, the cell id); the previous page view's measurement
is the last-request signal (``last_kbps``, ``last_age_s``, ``last_cell_id``, as the signed
last-measurement cookie carries it); the cell's statistics come from a
:class:`edge.towers.TowerTable` fed with every client's arrived labels; then
:func:`edge.features.to_features`. The ``PING*`` columns are never features (edge never
sees them). Several rows sharing one second are aggregated (numbers averaged, the last
cell and radio kept, downloading if any row is).

**Cell id.** ``RAWCELLID`` (eNodeB/gNodeB × 256 + sector: globally meaningful) when present,
else ``NODEHEX``+``CellID``, else ``CellID``, prefixed with ``Operatorname``.

Run it as ``edge replay FILES...`` or ``python -m edge.replay FILES...``.
"""

from __future__ import annotations

import bisect
import calendar
import csv
import gzip
import math
import random
import re
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from edge.evaluation import scores
from edge.feedback import client_average
from edge.features import Features, to_features
from edge.labels import LabelRule
from edge.model import ESTIMATORS, NetworkModel, RiverModel, RuleModel
from edge.signals import read_signals
from edge.towers import TowerTable

__all__ = [
    "replay",
    "replay_command",
    "read_trace",
    "ReplayReport",
    "Trace",
    "TraceFormatError",
    "ConnectionClass",
    "REQUIRED_COLUMNS",
    "NEAR_ZERO_KBPS",
    "LABEL_SECONDS",
    "LABEL_HORIZON_S",
    "COLD_START_GAP_S",
]

#: Columns without which a file is not a usable G-NetTrack export.
REQUIRED_COLUMNS = ("Timestamp", "CellID", "NetworkMode", "DL_bitrate", "State")
#: Below this a downloading second is a full video buffer trickling, not the network's capacity.
NEAR_ZERO_KBPS = 10.0
#: A page view's measurement: the mean of its first few label seconds…
LABEL_SECONDS = 3
#: …within this many seconds of the request (a page load is over by then).
LABEL_HORIZON_S = 10
#: A request after this long without one is a cold start (no fresh history for the client).
COLD_START_GAP_S = 300.0
#: Serving threshold on p(degraded) for precision/recall.
SERVING_THRESHOLD = 0.5

_TIMESTAMP = re.compile(r"^\s*(\d{4})\.(\d{1,2})\.(\d{1,2})_(\d{1,2})\.(\d{1,2})\.(\d{1,2})\s*$")
_SAFE_ID = re.compile(r"[^A-Za-z0-9:._-]")
#: G-NetTrack column → Edge-Cell member (the header the app sends live).
_RADIO_FIGURES = (("RSRP", "rsrp"), ("RSRQ", "rsrq"), ("SNR", "sinr"), ("CQI", "cqi"), ("Speed", "speed"))


class TraceFormatError(ValueError):
    """A file that is not a G-NetTrack export (names the file)."""


# ---------------------------------------------------------------------------------------------
# Reading traces
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Second:
    """One second of one trace, rows aggregated."""

    t: int
    downloading: bool = False
    kbps: float | None = None  # mean DL_bitrate over the second's downloading rows
    ping: bool = False  # a PINGAVG value was recorded in this second
    cell_id: str | None = None
    mode: str | None = None
    figures: dict[str, float] = field(default_factory=dict)

    def edge_cell(self) -> str:
        """The ``Edge-Cell`` header an app on this phone would send now."""
        parts = []
        if self.cell_id:
            parts.append(f'id="{self.cell_id}"')
        if self.mode:
            parts.append(f'radio="{self.mode}"')
        for name, value in self.figures.items():
            parts.append(f"{name}={value:.1f}")
        return ", ".join(parts)


@dataclass(slots=True)
class Trace:
    """One G-NetTrack file: one client."""

    name: str
    seconds: list[Second]
    rows: int = 0
    rows_skipped: int = 0
    truncated: bool = False


def _open_text(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", newline="", encoding="utf-8", errors="replace")
    return open(path, newline="", encoding="utf-8", errors="replace")


def _number(raw: str) -> float | None:
    raw = raw.strip()
    if not raw or raw == "-":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_trace(path: str | Path) -> Trace:
    """Parse one G-NetTrack Pro export (plain or gzip) into per-second samples.

    Rows whose timestamp, ``DL_bitrate`` or field count cannot be parsed are skipped and
    counted; a truncated gzip keeps what was read. A file without the required columns
    raises :class:`TraceFormatError`.
    """
    path = Path(path)
    by_second: dict[int, Second] = {}
    sums: dict[int, dict[str, list[float]]] = {}
    trace = Trace(name=path.name, seconds=[])
    try:
        f = _open_text(path)
    except OSError as exc:
        raise TraceFormatError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
        except (OSError, EOFError, zlib.error, csv.Error, UnicodeError) as exc:
            raise TraceFormatError(f"{path}: not a G-NetTrack export (unreadable: {exc})") from exc
        if header is None:
            raise TraceFormatError(f"{path}: not a G-NetTrack export (empty file)")
        columns = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise TraceFormatError(f"{path}: not a G-NetTrack export (missing columns: {', '.join(missing)})")
        width = len(header)
        i_ts, i_dl, i_state = columns["Timestamp"], columns["DL_bitrate"], columns["State"]
        i_mode, i_cell = columns["NetworkMode"], columns["CellID"]
        i_ping = columns.get("PINGAVG")
        i_raw, i_node, i_op = columns.get("RAWCELLID"), columns.get("NODEHEX"), columns.get("Operatorname")
        figure_idx = [(columns[c], name) for c, name in _RADIO_FIGURES if c in columns]
        last_ts, last_t = None, 0
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except (OSError, EOFError, zlib.error) as exc:  # truncated/corrupt gzip: keep what we have
                trace.truncated = True
                del exc
                break
            except csv.Error:
                trace.rows += 1
                trace.rows_skipped += 1
                continue
            if not row:
                continue
            trace.rows += 1
            if len(row) != width:
                trace.rows_skipped += 1
                continue
            ts = row[i_ts]
            if ts != last_ts:
                m = _TIMESTAMP.match(ts)
                if m is None:
                    trace.rows_skipped += 1
                    continue
                try:
                    last_t = calendar.timegm(tuple(int(g) for g in m.groups()) + (0, 0, 0))  # type: ignore[arg-type]
                except (ValueError, OverflowError):
                    trace.rows_skipped += 1
                    continue
                last_ts = ts
            t = last_t
            dl_raw = row[i_dl].strip()
            dl = _number(dl_raw)
            if dl is None and dl_raw not in ("", "-") or (dl is not None and dl < 0):
                trace.rows_skipped += 1
                continue
            sec = by_second.get(t)
            if sec is None:
                sec = by_second[t] = Second(t)
                sums[t] = {}
            acc = sums[t]
            if row[i_state].strip() == "D":
                sec.downloading = True
                if dl is not None:
                    acc.setdefault("_dl", []).append(dl)
            if i_ping is not None and _number(row[i_ping]) is not None:
                sec.ping = True
            mode = row[i_mode].strip().lower()
            if mode and mode != "-":
                sec.mode = _SAFE_ID.sub("", mode)[:16] or None
            cell = _cell_id(row, i_cell, i_raw, i_node, i_op)
            if cell is not None:
                sec.cell_id = cell
            for idx, name in figure_idx:
                value = _number(row[idx])
                if value is not None:
                    acc.setdefault(name, []).append(value)
    for t in sorted(by_second):
        sec = by_second[t]
        for name, values in sums[t].items():
            if name == "_dl":
                sec.kbps = sum(values) / len(values)
            else:
                sec.figures[name] = sum(values) / len(values)
        trace.seconds.append(sec)
    return trace


def _cell_id(row: list[str], i_cell: int, i_raw: int | None, i_node: int | None, i_op: int | None) -> str | None:
    def get(i: int | None) -> str:
        if i is None:
            return ""
        v = row[i].strip()
        return "" if v == "-" else _SAFE_ID.sub("", v)

    raw, node, cell, op = get(i_raw), get(i_node), get(i_cell), get(i_op)
    if raw:
        ident = raw
    elif node and cell:
        ident = f"{node}-{cell}"
    elif cell:
        ident = cell
    else:
        return None
    return f"{op}:{ident}"[:64] if op else ident[:64]


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


BASELINES = ("rules", "connection_class", "last_request", "cell_share")

# ---------------------------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    client: int
    t: float
    second: Second
    kbps: float | None  # the measurement (None: no label)
    arrival: float
    x: Features | None = None
    cell: str | None = None  # the cell id as edge read it from the request
    y: bool | None = None
    scored: int = -1  # index into the score arrays


@dataclass(slots=True)
class _Client:
    last_kbps: float | None = None
    kbps_avg: float | None = None  # as the measurement cookie keeps it (edge.feedback.measurement_cookie)
    last_t: float = 0.0
    last_cell: str | None = None
    previous_request: float | None = None
    connection_class: ConnectionClass = field(default_factory=ConnectionClass)


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "baselines": self.baselines,
            "requests": self.requests,
            "positive_rate": self.positive_rate,
            "framing": self.framing,
            "cold_start_requests": self.cold_start_requests,
            "page_views": self.page_views,
            "labels": self.labels,
            "files": self.files,
            "rows": self.rows,
            "rows_skipped": self.rows_skipped,
            "wall_s": self.wall_s,
        }


def _label_seconds(seconds: Sequence[Second]) -> tuple[list[bool], dict[str, int]]:
    """Which seconds may measure the network, and how many downloading seconds each rule dropped."""
    pings = {s.t for s in seconds if s.ping}
    valid = []
    counts = {"downloading_seconds": 0, "dropped_near_zero": 0, "dropped_ping": 0, "label_seconds": 0}
    for s in seconds:
        ok = False
        if s.downloading:
            counts["downloading_seconds"] += 1
            if s.kbps is None or s.kbps < NEAR_ZERO_KBPS:
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


def replay(
    paths: Iterable[str | Path],
    *,
    think_time: tuple[float, float] = (10.0, 60.0),
    seed: int = 0,
    threshold_kbps: float = 700.0,
    estimator: str = "logreg",
    model_factory: Callable[[], NetworkModel] | None = None,
) -> ReplayReport:
    """Replay G-NetTrack files (see the module docstring) and score the model and the baselines.

    ``model_factory`` builds the learner under test (default: ``RiverModel(estimator)``).
    """
    started = time.perf_counter()
    lo, hi = think_time
    if lo < 0 or hi < lo:
        raise ValueError("think time must be 0 or LO,HI with 0 ≤ LO ≤ HI")
    rule = LabelRule(threshold_kbps=threshold_kbps)
    traces = [read_trace(p) for p in paths]
    label_counts = {"downloading_seconds": 0, "dropped_near_zero": 0, "dropped_ping": 0, "label_seconds": 0}
    events: list[tuple[float, int, int, _Request]] = []
    seq = 0
    page_views = 0
    for client, trace in enumerate(traces):
        valid, counts = _label_seconds(trace.seconds)
        for k, v in counts.items():
            label_counts[k] += v
        rng = random.Random(f"{seed}:{client}")
        for req in _requests(client, trace, valid, (float(lo), float(hi)), rng):
            page_views += 1
            events.append((req.t, 1, seq, req))
            seq += 1
            if req.kbps is not None:
                events.append((req.arrival, 0, seq, req))  # arrivals sort before requests at the same time
                seq += 1
    events.sort(key=lambda e: (e[0], e[1], e[2]))

    model = model_factory() if model_factory is not None else RiverModel(estimator)
    rules = RuleModel()
    towers = TowerTable()
    clients = [_Client() for _ in traces]
    names = ("model",) + BASELINES
    preds: dict[str, list[float | None]] = {n: [] for n in names}
    ys: list[bool] = []
    cold: list[bool] = []
    predict_ns: list[int] = []
    learn_ns: dict[int, int] = {}
    rules_ns: list[int] = []
    clock = time.perf_counter_ns

    for now, kind, _, req in events:
        state = clients[req.client]
        if kind == 1:  # a request: predict from the past only
            signals = read_signals({"edge-cell": req.second.edge_cell()})
            if state.last_kbps is not None:
                signals.last_kbps = state.last_kbps
                signals.last_age_s = max(0.0, now - state.last_t)
                signals.last_cell_id = state.last_cell
                signals.client_kbps_avg = state.kbps_avg
            cell = towers.lookup(signals.cell_id, now) if signals.cell_id else None
            x = to_features(signals, cell)
            is_cold = state.previous_request is None or now - state.previous_request > COLD_START_GAP_S
            state.previous_request = now
            if req.kbps is None:
                continue  # no label: nothing to score or learn
            req.x, req.cell = x, signals.cell_id
            req.y = rule.degraded(kbps=req.kbps)
            t0 = clock()
            p = model.predict(x)
            t1 = clock()
            p_rules = rules.predict(x)
            t2 = clock()
            predict_ns.append(t1 - t0)
            rules_ns.append(t2 - t1)
            req.scored = len(ys)
            ys.append(bool(req.y))
            cold.append(is_cold)
            preds["model"].append(p)
            preds["rules"].append(p_rules)
            preds["connection_class"].append(state.connection_class.predict())
            preds["last_request"].append(_last_request_p(x, threshold_kbps))
            preds["cell_share"].append(_cell_share_p(x))
        else:  # the label arrives: learn, and let the cell and the client's history take it in
            assert req.x is not None and req.kbps is not None
            y = bool(req.y)
            t0 = clock()
            model.learn(req.x, y)
            learn_ns[req.scored] = clock() - t0
            cell_id = req.cell
            if cell_id:
                towers.observe(cell_id, req.kbps, y, now)
            state.last_kbps, state.last_t, state.last_cell = req.kbps, now, cell_id
            state.kbps_avg = client_average(state.kbps_avg, req.kbps)
            state.connection_class.add(req.kbps)

    def summary(name: str, cost_ns: list[int] | None) -> dict[str, Any]:
        s = scores(ys, preds[name], SERVING_THRESHOLD)
        cold_y = [y for y, c in zip(ys, cold) if c]
        cold_p = [p for p, c in zip(preds[name], cold) if c]
        s["cold_start_roc_auc"] = scores(cold_y, cold_p)["roc_auc"] if cold_y else None
        s["cold_start_n"] = len(cold_y)
        s["coverage"] = sum(1 for p in preds[name] if p is not None) / len(ys) if ys else None
        if cost_ns:
            s["cost_us_median"] = statistics.median(cost_ns) / 1000.0
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}

    model_cost = [predict_ns[i] + learn_ns.get(i, 0) for i in range(len(predict_ns))]
    model_summary = summary("model", model_cost)
    if predict_ns:
        model_summary["predict_us_median"] = round(statistics.median(predict_ns) / 1000.0, 2)
        model_summary["learn_us_median"] = round(statistics.median(list(learn_ns.values())) / 1000.0, 2)
    baselines = {name: summary(name, rules_ns if name == "rules" else None) for name in BASELINES}
    framing = {
        "kind": "stream" if (lo, hi) == (0, 0) else "page_view",
        "think_time_s": [lo, hi],
        "seed": seed,
        "threshold_kbps": threshold_kbps,
        "label_seconds": 1 if (lo, hi) == (0, 0) else LABEL_SECONDS,
        "label_horizon_s": 1 if (lo, hi) == (0, 0) else LABEL_HORIZON_S,
        "estimator": getattr(model, "estimator", type(model).__name__),
    }
    return ReplayReport(
        framing=framing,
        model=model_summary,
        baselines=baselines,
        requests=len(ys),
        positive_rate=round(sum(ys) / len(ys), 4) if ys else None,
        cold_start_requests=sum(cold),
        page_views=page_views,
        labels=label_counts,
        files=len(traces),
        rows=sum(t.rows for t in traces),
        rows_skipped=sum(t.rows_skipped for t in traces),
        wall_s=round(time.perf_counter() - started, 2),
    )


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


def format_report(report: ReplayReport) -> str:
    """The human-readable tables ``edge replay`` prints."""
    f = report.framing
    lines = [
        f"framing: {f['kind']} (think time {f['think_time_s'][0]:g}–{f['think_time_s'][1]:g} s, seed {f['seed']}), "
        f"label threshold {f['threshold_kbps']:g} kbit/s, estimator {f['estimator']}",
        f"files {report.files}, rows {report.rows} ({report.rows_skipped} skipped), page views {report.page_views}, "
        f"labelled requests {report.requests} (positive rate {_fmt(report.positive_rate, 0)}), "
        f"cold-start {report.cold_start_requests}",
        "label seconds: {label_seconds} of {downloading_seconds} downloading seconds "
        "(dropped: {dropped_near_zero} near-zero, {dropped_ping} around pings)".format(**report.labels),
        "",
        f"{'':18}{'ROC-AUC':>8}{'logloss':>8}{'prec':>8}{'recall':>8}{'cold AUC':>9}{'cover':>8}{'µs/req':>8}",
    ]
    rows = [("river model", report.model)] + list(report.baselines.items())
    for name, m in rows:
        lines.append(
            f"{name:18}{_fmt(m['roc_auc'])}{_fmt(m['log_loss'])}{_fmt(m['precision'])}{_fmt(m['recall'])}"
            f"{_fmt(m['cold_start_roc_auc'], 9)}{_fmt(m['coverage'])}{_fmt(m.get('cost_us_median'))}"
        )
    lines.append(f"(wall time {report.wall_s:.1f} s)")
    return "\n".join(lines)


@click.command("replay")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--think-time",
    default="10,60",
    show_default=True,
    help="Seconds between a client's page views, uniform LO,HI; 0 = stream framing (every downloading second).",
)
@click.option("--threshold-kbps", type=float, default=700.0, show_default=True, help="Label: degraded below this.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the think times.")
@click.option("--estimator", type=click.Choice(ESTIMATORS), default=ESTIMATORS[0], show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def replay_command(
    files: tuple[Path, ...], think_time: str, threshold_kbps: float, seed: int, estimator: str, as_json: bool
) -> None:
    """Replay G-NetTrack Pro CSV exports (plain or .gz) through edge's features, labels and model."""
    think = _parse_think_time(think_time)
    if not (math.isfinite(threshold_kbps) and threshold_kbps > 0):
        raise click.BadParameter("must be a positive number", param_hint="--threshold-kbps")
    try:
        report = replay(files, think_time=think, seed=seed, threshold_kbps=threshold_kbps, estimator=estimator)
    except TraceFormatError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
    else:
        click.echo(format_report(report))


if __name__ == "__main__":  # python -m edge.replay FILES...
    replay_command.main(args=sys.argv[1:], prog_name="python -m edge.replay")
