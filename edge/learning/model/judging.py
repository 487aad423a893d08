"""The champion/challenger's per-label pass over its candidates, as straight-line code per tuple of candidates.

:func:`candidate_predictions` returns each candidate's prediction as the evaluation judges it (calibrated as
it would be served, by its calibrator as it stood before the label, which then learns it; the stacker's
own p, after which it learns the label), in the order of the evaluation's candidates. It runs a function
written out once per tuple of candidate names (as :mod:`edge.learning.model.unrolled` does for the
features): no loop, no name comparisons, and a settled calibrator's
:meth:`~edge.learning.calibration.ConfidenceCalibrator.serve_learn` inline (it only serves and counts).
:func:`candidate_predictions_loop` is the loop it replaces, kept as the reference the tests compare it with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.learning.calibration import SETTLED_AFTER, ConfidenceCalibrator
from edge.learning.model.candidates import FIXED_CANDIDATES, cell_share_p, client_average_p, last_request_p
from edge.learning.stacker import Stacker
from edge.pipeline.features import Features

if TYPE_CHECKING:
    from edge.learning.model.champion import ChampionChallenger

__all__ = ["candidate_predictions", "candidate_predictions_loop"]

_Judge = Callable[[Any, Features, bool, bool, "float | None", "float | None", dict[str, ConfidenceCalibrator]], list["float | None"]]
#: The compiled pass per tuple of candidate names (at most 64 kept).
_COMPILED: dict[tuple[str, ...], _Judge] = {}


def candidate_predictions(
    cc: ChampionChallenger, x: Features, y: bool, learn: bool, p_rules: float | None, p_model: float | None, calibrators: dict[str, ConfidenceCalibrator]
) -> list[float | None]:
    """The candidates' predictions of ``x`` as judged, in ``cc.evaluation.models``' order; the calibrators
    (when ``learn``) and the stacker (always) learn the label ``y``. The same as :func:`candidate_predictions_loop`."""
    models = cc.evaluation.models
    judge = _COMPILED.get(models)
    if judge is None:
        judge = _compile(models)
    return judge(cc, x, y, learn, p_rules, p_model, calibrators)


def candidate_predictions_loop(
    cc: ChampionChallenger, x: Features, y: bool, learn: bool, p_rules: float | None, p_model: float | None, calibrators: dict[str, ConfidenceCalibrator]
) -> list[float | None]:
    """:func:`candidate_predictions` as a loop over the candidates: the reference."""
    p_last = last_request_p(x)
    predictions: list[float | None] = []  # in the evaluation's order of candidates
    for name in cc.evaluation.models:
        if name == "stacker":
            # The stacker learns every label, observed ones too: it is part of the guard (how much
            # to trust which candidate here), not one of the frozen learners (observe's docstring).
            stacker = cc.stacker
            if stacker is None:
                stacker = cc.stacker = Stacker()
            inputs = (p_rules, p_model, p_last, client_average_p(x), cell_share_p(x))  # stacker.INPUTS' order
            predictions.append(stacker.learn_values(inputs, y))
            continue
        p = p_model if name == "model" else p_rules if name == "rules" else p_last if name == "last_request" else FIXED_CANDIDATES[name](x)
        calibrate = calibrators[name]
        predictions.append(calibrate.serve_learn(p, y) if learn else calibrate(p))
    return predictions


def _source(models: tuple[str, ...]) -> str:
    def body(learn: bool) -> list[str]:
        lines = []
        for k, name in enumerate(models):
            if name == "stacker":
                lines += [
                    "        stacker = cc.stacker",
                    "        if stacker is None:",
                    "            stacker = cc.stacker = Stacker()",
                    f"        q{k} = stacker.learn_values((p_rules, p_model, p_last, client_average_p(x), cell_share_p(x)), y)",
                ]
                continue
            p = {"model": "p_model", "rules": "p_rules", "last_request": "p_last"}.get(name, f"FIXED[{name!r}](x)")
            lines += [f"        p = {p}", f"        c = calibrators[{name!r}]"]
            if learn:  # ConfidenceCalibrator.serve_learn, its settled path inline
                lines += [
                    "        if p is None:",
                    f"            q{k} = None",
                    f"        elif c.labels >= {SETTLED_AFTER!r}:",
                    f"            q{k} = p if c.served == 1.0 else c(p)",
                    "            c.labels += 1",
                    "        else:",
                    f"            q{k} = c.serve_learn(p, y)",
                ]
            else:
                lines.append(f"        q{k} = c(p)")
        return lines

    out = "[" + "".join(f"q{k}, " for k in range(len(models))) + "]"
    lines = ["def judge(cc, x, y, learn, p_rules, p_model, calibrators):", "    p_last = last_request_p(x)", "    if learn:"]
    lines += body(True) + [f"        return {out}", "    else:"] + body(False) + [f"        return {out}", ""]
    return "\n".join(lines)


def _compile(models: tuple[str, ...]) -> _Judge:
    namespace: dict[str, Any] = {
        "FIXED": FIXED_CANDIDATES,
        "Stacker": Stacker,
        "last_request_p": last_request_p,
        "client_average_p": client_average_p,
        "cell_share_p": cell_share_p,
    }
    exec(compile(_source(models), "<edge.learning.model.judging straight-line pass>", "exec"), namespace)  # noqa: S102
    judge: _Judge = namespace["judge"]
    if len(_COMPILED) < 64:
        _COMPILED[models] = judge
    return judge
