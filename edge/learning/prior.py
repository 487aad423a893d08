"""A prior for the River model: logistic-regression weights shipped with the package.

A River model that starts from nothing needs hundreds of labels, and many positives, before it
ranks requests well: on a new network, or one where only 3 % of page views are degraded, it is
useless for a long time. A *prior* is the state of a River model (``EdgeFeatures |
StandardScaler | LogisticRegression``) trained offline on public traces: the scaler's running
means and variances and the regression's weights and intercept, in a small JSON file. A
:class:`~edge.learning.model.RiverModel` built with it predicts from its first request, and keeps
learning online from there (the same SGD as without a prior).

The file (``edge/learning/priors/*.json``, format :data:`PRIOR_FORMAT`)::

    {"format": "edge-prior/1", "estimator": "logreg", "river": "0.26",
     "trained_on": [...], "command": "...", "date": "...", "labels": N, "positives": N,
     "scaler": {"counts": {...}, "means": {...}, "vars": {...}},
     "weights": {"feature": w, ...}, "intercept": b}

The scaler's counts are capped at :data:`SCALER_MAX_COUNT` when loaded, so its means and
variances follow a new network within a few hundred labels rather than never. A file that
cannot be read, is not a prior, or holds a non-finite number is a :class:`PriorError` naming it.

Train one (the command the model card documents; one JSON file out)::

    python -m edge.offline.train_prior --out edge/learning/priors/public-traces.json TRACES...

It replays the traces as :mod:`edge.offline.replay` does (page views with seeds 0–3, and the stream
framing), collects every labelled request's features as they were at request time, shuffles
them (seeded) and lets a fresh River model learn them in that order, ``--epochs`` times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from edge.core.errors import EdgeError

__all__ = [
    "Prior",
    "PriorError",
    "load_prior",
    "apply_prior",
    "export_prior",
    "PRIOR_FORMAT",
    "PRIORS_DIR",
    "DEFAULT_PRIOR",
    "SCALER_MAX_COUNT",
]

PRIOR_FORMAT = "edge-prior/1"
#: Where the shipped priors live (package data).
PRIORS_DIR = Path(__file__).resolve().parent / "priors"
#: The prior ``--model auto`` starts its River model from: trained on every public trace set.
DEFAULT_PRIOR = PRIORS_DIR / "public-traces.json"
#: A loaded prior's scaler counts are capped here, so that it adapts to a new network's scale.
SCALER_MAX_COUNT = 1000
#: Files larger than this are not priors (a prior is a few KB).
_MAX_BYTES = 1 << 20


class PriorError(EdgeError, ValueError):
    """A prior file that cannot be used (missing, corrupt, not a prior, incompatible); names the file."""


@dataclass(frozen=True)
class Prior:
    """A loaded prior: where it came from, the scaler's state and the regression's."""

    path: str
    counts: dict[str, float]
    means: dict[str, float]
    vars: dict[str, float]
    weights: dict[str, float]
    intercept: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name


def _numbers(path: Path, data: Any, what: str) -> dict[str, float]:
    if not isinstance(data, dict):
        raise PriorError(f"prior {path}: {what} must be an object of feature → number")
    out: dict[str, float] = {}
    for k, v in data.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PriorError(f"prior {path}: {what}[{k!r}] is not a finite number")
        out[k] = float(v)
    return out


def load_prior(path: str | Path) -> Prior:
    """Read and check a prior file; :class:`PriorError` naming the file if it cannot be used."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PriorError(f"prior {path}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > _MAX_BYTES:
        raise PriorError(f"prior {path}: {len(data)} bytes, not a prior (at most {_MAX_BYTES})")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PriorError(f"prior {path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != PRIOR_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise PriorError(f"prior {path}: format {found!r}, expected {PRIOR_FORMAT!r}")
    if doc.get("estimator") != "logreg":
        raise PriorError(f"prior {path}: estimator {doc.get('estimator')!r}; only 'logreg' priors exist")
    scaler = doc.get("scaler")
    if not isinstance(scaler, dict):
        raise PriorError(f"prior {path}: no scaler state")
    counts = _numbers(path, scaler.get("counts"), "scaler.counts")
    means = _numbers(path, scaler.get("means"), "scaler.means")
    variances = _numbers(path, scaler.get("vars"), "scaler.vars")
    if set(counts) != set(means) or set(counts) != set(variances):
        raise PriorError(f"prior {path}: scaler counts, means and vars name different features")
    if any(v < 0 for v in variances.values()) or any(c < 0 for c in counts.values()):
        raise PriorError(f"prior {path}: negative scaler count or variance")
    weights = _numbers(path, doc.get("weights"), "weights")
    intercept = doc.get("intercept")
    if isinstance(intercept, bool) or not isinstance(intercept, (int, float)) or not math.isfinite(intercept):
        raise PriorError(f"prior {path}: intercept is not a finite number")
    if not weights:
        raise PriorError(f"prior {path}: no weights")
    meta = {k: v for k, v in doc.items() if k not in ("scaler", "weights", "intercept")}
    return Prior(str(path), counts, means, variances, weights, float(intercept), meta)


def apply_prior(pipeline: Any, prior: Prior) -> None:
    """Set a fresh ``EdgeFeatures | StandardScaler | LogisticRegression`` pipeline to the prior's state."""
    from river import linear_model, preprocessing

    from edge.learning.model.scaler import WelfordScaler

    steps = list(pipeline.steps.values())
    if len(steps) != 3 or not isinstance(steps[1], (WelfordScaler, preprocessing.StandardScaler)):
        raise PriorError(f"prior {prior.path}: the pipeline is not EdgeFeatures | StandardScaler | LogisticRegression")
    scaler, clf = steps[1], steps[2]
    if not isinstance(clf, linear_model.LogisticRegression):
        raise PriorError(f"prior {prior.path}: the estimator is not a logistic regression")
    for k, c in prior.counts.items():
        if isinstance(scaler, WelfordScaler):
            scaler.set(k, int(min(c, SCALER_MAX_COUNT)), prior.means[k], prior.vars[k])
        else:
            scaler.counts[k] = int(min(c, SCALER_MAX_COUNT))
            scaler.means[k] = prior.means[k]
            scaler.vars[k] = prior.vars[k]
    for k, w in prior.weights.items():
        clf._weights[k] = w
    clf.intercept = prior.intercept


def export_prior(model: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a trained logreg :class:`~edge.learning.model.RiverModel`'s state (see the module doc)."""
    steps = list(model.pipeline.steps.values())
    scaler, clf = steps[1], steps[2]
    r = lambda v: float(f"{v:.6g}")  # noqa: E731 - six significant digits: the file stays small and diffable
    return {
        "format": PRIOR_FORMAT,
        "estimator": "logreg",
        **meta,
        "scaler": {
            "counts": {k: int(v) for k, v in sorted(scaler.counts.items())},
            "means": {k: r(v) for k, v in sorted(scaler.means.items())},
            "vars": {k: r(v) for k, v in sorted(scaler.vars.items())},
        },
        "weights": {k: r(v) for k, v in sorted(clf._weights.to_dict().items())},
        "intercept": r(clf.intercept),
    }
