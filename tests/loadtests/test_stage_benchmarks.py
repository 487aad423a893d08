"""Each stage of the adaptive step under pytest-benchmark, on the demo home page (loadtests/bench_stages.py's cases).

In ``make test`` each stage runs for a short while and its result is checked (a stage that
breaks fails here); the timings are reported, never asserted. For figures::

    .venv/bin/python -m pytest tests/loadtests/test_stage_benchmarks.py --benchmark-max-time=1
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))

import bench_stages  # noqa: E402

from edge.pipeline.policy import Decision  # noqa: E402
from edge.pipeline.signals import Signals  # noqa: E402

STATE: dict = {}
_, CASES = bench_stages.stage_cases(STATE)
PAGE_BYTES = len(bench_stages.demo_page())
LEARNS = ("model learn (+ eval)", "river learn alone")


def _check(name: str, result: object) -> None:
    """What each stage must give back: the benchmark measures working code, not a broken shortcut."""
    if name == "signals":
        assert isinstance(result, Signals) and result.ect == "3g" and result.cell_id == "404-45-1207-88123"
    elif name == "features":
        assert isinstance(result, dict) and result
    elif name in ("model predict", "river predict alone", "model predict (River in force)"):
        # The model has learned 3000 labels before it is timed: it must answer, not abstain.
        assert isinstance(result, float) and 0.0 < result < 1.0, result
        if name == "model predict (River in force)":  # elected by its labels, and serving x from the River model
            in_force, x = STATE["river_in_force"], STATE["x"]
            assert in_force.source == in_force.source_for(x) == "model"
            assert result == in_force.calibrators["model"](in_force.model.predict(x))
    elif name in LEARNS:
        assert result is None  # learning returns nothing; test_stage checks what it did
    elif name == "decide (policy)":
        assert isinstance(result, Decision) and result.tier in ("full", "lite", "minimal")
    elif name == "token sign":
        assert isinstance(result, str) and result.count(".") >= 1
    elif name == "token verify":
        assert isinstance(result, dict) and result["d"] == "lite"
    elif name in ("rewrite full (splice)", "full splice, streamed"):
        assert b"edge-switch" in result and len(result) > PAGE_BYTES
    elif name in ("rewrite lite", "lite, cache hit", "lite, dynamic page", "rewrite minimal", "whole step at lite"):
        assert b"edge-switch" in result and len(result) < PAGE_BYTES / 2
    else:
        pytest.fail(f"no check for stage {name!r}")


@pytest.mark.benchmark(max_time=0.2, min_rounds=20, warmup=False)
@pytest.mark.parametrize("name", list(CASES))
def test_stage(benchmark, name):
    model, x = STATE["model"], STATE["x"]
    river_p, labels = model.model.predict(x), model.snapshot()["labels"]
    result = benchmark(CASES[name])
    _check(name, result)
    if name in LEARNS:
        # Every timed call taught "degraded" at x: the River model's p(x) rose. The champion–challenger's
        # learn also counts the labels (its evaluation); River's own learn alone does not.
        assert model.model.predict(x) > river_p
        learned = model.snapshot()["labels"] - labels
        assert learned >= 1 if name == "model learn (+ eval)" else learned == 0, learned
