"""What a replay measured: the scores, their intervals, the deployed decision's tiers, and the tables.

**What is scored.** The River model under test, the baselines (:data:`BASELINES`), and the
*deployed decision*: the model ``edge serve --model auto`` builds (``MODELS["auto"]``, the
champion/challenger, switching included), learning from the same arrived labels, and the
tier the policy's thresholds give its p (the demo policy by default). Every ROC-AUC comes
with its number of positives and a 95% percentile-bootstrap interval over the scored
requests (:func:`edge.learning.evaluation.bootstrap_roc_aucs`, the same resamples for every row).

:func:`build_report` turns a :class:`~edge.offline.simulation.Pass` into a :class:`ReplayReport` (``--json``
prints its ``to_dict()``); :func:`format_report` and :func:`format_train_eval` are the tables ``edge replay`` prints.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.learning.evaluation import bootstrap_roc_aucs, reliability, scores
from edge.offline.baselines import BASELINES
from edge.offline.hints import format_hints
from edge.offline.simulation import LABEL_HORIZON_S, LABEL_SECONDS, SCORED, Pass, Replayer
from edge.offline.stability import TierStability, format_stable_tiers, stable_tiers
from edge.offline.traces import Trace
from edge.pipeline.policy import Policy, RoutePlan

__all__ = ["round_figures", "ReplayReport", "TrainEvalReport", "Options", "build_report", "format_report", "format_train_eval", "SERVING_THRESHOLD"]

#: Serving threshold on p(degraded) for precision/recall.
SERVING_THRESHOLD = 0.5


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
    #: ``--hints``: the AUCs without and with synthesised browser hints (edge.offline.hints.hints_block).
    hints: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {"hints": self.hints} if self.hints is not None else {}
        return {
            **extra,
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


def round_figures(v: Any) -> Any:
    """Floats (also inside lists and dicts) to 4 places, as the report gives them."""
    return _round(v)


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, tuple | list):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class Options:
    """How a replay is framed and scored (what its report states)."""

    think_time: tuple[float, float]
    seed: int
    threshold_kbps: float
    tiers: RoutePlan
    policy_name: str
    deployed_name: str
    bootstrap: int
    bootstrap_seed: int
    prior: str | None = None
    #: The whole policy and the stable-tier rule, for the tiers with the rule (``deployed["stable_tiers"]``).
    policy: Policy | None = None
    stability: TierStability | None = None


def _metrics(out: Pass, name: str, intervals: dict[str, Any], cold_intervals: dict[str, Any]) -> dict[str, Any]:
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


def _tiers(out: Pass, plan: RoutePlan, policy_name: str) -> dict[str, Any]:
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


def build_report(out: Pass, traces: Sequence[Trace], replayer: Replayer, opts: Options, started: float) -> ReplayReport:
    ys = out.ys
    names = (*SCORED, "deployed")
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
    if opts.policy is not None and opts.stability is not None:
        deployed["stable_tiers"] = _round(
            stable_tiers(out.preds["deployed"], out.ceilings, ys, out.clients, out.times, opts.policy, opts.stability)
        )
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
        if "stable_tiers" in d:
            lines += format_stable_tiers(d["stable_tiers"])
    if report.hints is not None:
        lines += ["", *format_hints(report.hints)]
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

