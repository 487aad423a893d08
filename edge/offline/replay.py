"""Replay real cellular traces through edge's own feature, label and model code.

Traces are read by :mod:`edge.offline.traces`: G-NetTrack Pro CSV exports, the Norway 3G logs (JSON
and raw form), Mahimahi link traces and per-second throughput logs, detected from their
content or named with ``--format``. Each file is one client (one phone's session); all
sessions are interleaved in timestamp order, so per-cell statistics learned from one client
serve the others, as on a live edge. A trace without cell or device columns is replayed with
the features it has: the client's own past measurements (the rest stays missing).

How it is built: :mod:`edge.offline.simulation` (the requests, labels and features, in time order),
:mod:`edge.offline.baselines` (the simple predictors), :mod:`edge.offline.report` (the scores,
intervals, tiers and tables); this module runs them (:func:`replay`, :func:`replay_train_eval`) and is
the command.

**Train, then evaluate** (:func:`replay_train_eval`): the models learn online through one
set of traces, then a second set is replayed twice from that state: *frozen* (the River
model and the deployed model no longer learn; the cell table and the clients' histories,
which are inputs rather than learning, still fill) and *online* (learning continues).

Run it as ``edge replay FILES...`` or ``python -m edge.offline.replay FILES...``.
"""

from __future__ import annotations

import copy
import glob
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from edge.core.errors import PolicyError
from edge.core.settings import DEFAULT_POLICY, Settings
from edge.learning.evaluation import BOOTSTRAP_RESAMPLES
from edge.learning.model import ESTIMATORS, MODELS, ChampionChallenger, NetworkModel, RiverModel
from edge.learning.prior import DEFAULT_PRIOR, PriorError, load_prior
from edge.offline.baselines import BASELINES, ConnectionClass
from edge.offline.hints import hints_block
from edge.offline.report import (
    SERVING_THRESHOLD,
    Options,
    ReplayReport,
    TrainEvalReport,
    build_report,
    format_report,
    format_train_eval,
    round_figures,
)
from edge.offline.simulation import COLD_START_GAP_S, LABEL_HORIZON_S, LABEL_SECONDS, NEAR_ZERO_KBPS, Replayer
from edge.offline.stability import TierStability
from edge.offline.traces import FORMATS, REQUIRED_COLUMNS, Sample, Trace, TraceFormatError, detect_format
from edge.offline.traces import read_trace as _read_trace
from edge.pipeline.policy import load_policy

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
    # From edge.offline.baselines and edge.offline.report, importable here as before the split.
    "BASELINES",
    "SERVING_THRESHOLD",
    "format_report",
    "format_train_eval",
]

#: The model ``edge serve`` deploys by default.
DEFAULT_DEPLOYED = "auto"

#: One second of a trace (the record of :mod:`edge.offline.traces`; the old name).
Second = Sample


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read one trace file (see :func:`edge.offline.traces.read_trace`): format ``fmt``, or detected from the content."""
    return _read_trace(path, fmt)


def _deployed_model(name: str) -> NetworkModel:
    """The model ``edge serve --model NAME`` builds (``edge.runtime.app.make_model`` without a checkpoint), metrics export off."""
    factory = MODELS[name]
    try:
        return factory(export_metrics=False)
    except TypeError:  # a model without metrics of its own
        return factory()


def _stability() -> TierStability:
    """The stable-tier rule as ``edge serve`` runs it by default (``Settings``' margin and dwell time)."""
    defaults = Settings()
    return TierStability(defaults.tier_margin, defaults.tier_dwell_s)


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
) -> tuple[Replayer, Options]:
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
    opts = Options(
        think_time=(float(lo), float(hi)),
        seed=seed,
        threshold_kbps=threshold_kbps,
        tiers=loaded.default,
        policy_name=loaded.name,
        deployed_name=deployed,
        bootstrap=bootstrap,
        bootstrap_seed=bootstrap_seed,
        prior=loaded_prior.name if loaded_prior is not None else None,
        policy=loaded,
        stability=_stability(),
    )
    return Replayer(model, deployed_model, threshold_kbps), opts


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
    hints: bool = False,
) -> ReplayReport:
    """Replay trace files (see the module docstring) and score the model, the baselines and the deployed decision.

    ``model_factory`` builds the learner under test (default: ``RiverModel(estimator)``);
    ``deployed`` names the model ``edge serve --model`` would run (``deployed_factory``
    overrides it); ``policy`` gives the tier thresholds (default: the demo policy); ``fmt``
    the trace format (default: detected per file); ``bootstrap`` resamples per interval;
    ``prior`` the River model's prior (:mod:`edge.learning.prior`): ``None``/``"none"`` (as ``edge serve``
    runs), ``"default"`` (the shipped file) or a file; the model under test and ``auto``'s River
    candidate both start from it. ``hints``: also replay every client as Chromium with synthesised
    hints, from fresh models, and report both AUCs (:mod:`edge.offline.hints`; the report's ``hints``).
    """
    started = time.perf_counter()
    replayer, opts = _setup(
        think_time, seed, threshold_kbps, estimator, model_factory, deployed, deployed_factory, policy, bootstrap, bootstrap_seed,
        prior,
    )
    traces = [read_trace(p, fmt) for p in paths]
    out = replayer.run(traces, opts.think_time, seed)
    report = build_report(out, traces, replayer, opts, started)
    if hints:
        hinted, _ = _setup(
            think_time, seed, threshold_kbps, estimator, model_factory, deployed, deployed_factory, policy, bootstrap,
            bootstrap_seed, prior,
        )
        hinted.hints = True
        report.hints = round_figures(hints_block(out, hinted.run(traces, opts.think_time, seed), bootstrap, bootstrap_seed))
        report.wall_s = round(time.perf_counter() - started, 2)
    return report


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
    train_report = build_report(out, train_traces, replayer, opts, started)
    frozen = copy.deepcopy(replayer)
    started = time.perf_counter()
    out = frozen.run(eval_traces, opts.think_time, seed, learn=False)
    frozen_report = build_report(out, eval_traces, frozen, opts, started)
    started = time.perf_counter()
    out = replayer.run(eval_traces, opts.think_time, seed, learn=True)
    online_report = build_report(out, eval_traces, replayer, opts, started)
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
@click.option(
    "--hints",
    is_flag=True,
    help="Replay again with Chromium's ECT/Downlink hints synthesised from each trace's recent throughput "
    "(edge/offline/hints.py) and report the AUCs with and without them (Safari and Firefox send none).",
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
    hints: bool,
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
    if hints and train_files:
        raise click.UsageError("--hints replays one set of traces; it does not combine with --train")
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
            report = replay(eval_files, hints=hints, **options)
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
