"""edge.learning.model.judging: the generated per-candidates pass against its loop, bit for bit."""

from __future__ import annotations

import copy
import random

from edge.learning.model.champion import CANDIDATES, DEFAULT_CANDIDATES, ChampionChallenger
from edge.learning.model.judging import _COMPILED, candidate_predictions, candidate_predictions_loop


def _state(cc: ChampionChallenger) -> str:
    calibrators = {name: {k: getattr(c, k) for k in c.__slots__} for name, c in (cc.calibrators or {}).items()}
    return repr((calibrators, None if cc.stacker is None else cc.stacker.__getstate__()))


def test_the_straight_line_pass_is_the_loop_bit_for_bit():
    """Twins fed the same labels (learned and observed, calibrators settling, the stacker started afresh):
    every prediction and every calibrator's and the stacker's state, to the bit."""
    rng = random.Random(5)
    values = [None, 0.0, 1.0, 0.5, 1e-300, 1 - 1e-16]

    def p() -> float | None:
        return rng.choice(values) if rng.random() < 0.15 else rng.random()

    for candidates in [DEFAULT_CANDIDATES, CANDIDATES, ("rules", "model")]:
        ours = ChampionChallenger(candidates=candidates, export_metrics=False)
        reference = copy.deepcopy(ours)
        for i in range(1500):
            x = {"last_kbps": rng.choice([None, rng.lognormvariate(7, 1.2)]), "client_kbps_avg": rng.choice([None, rng.lognormvariate(7, 1)])}
            x["cell_degraded_share"] = rng.choice([None, rng.random()])
            x = {k: v for k, v in x.items() if v is not None}
            y, learn, p_rules, p_model = rng.random() < 0.35, rng.random() < 0.8, p(), p()
            if i == 700:
                ours.stacker = reference.stacker = None
            a = candidate_predictions(ours, x, y, learn, p_rules, p_model, ours._calibrators())
            b = candidate_predictions_loop(reference, x, y, learn, p_rules, p_model, reference._calibrators())
            assert repr(a) == repr(b)
        assert _state(ours) == _state(reference)
        assert ours.calibrators is not None and ours.calibrators["rules"].labels > 300  # settled on the way
        assert candidates in _COMPILED
