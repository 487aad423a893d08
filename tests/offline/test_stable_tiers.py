"""The stable-tier rule applied to replayed tiers (edge/offline/stability.py) and its rows in ``edge replay``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from edge.offline.replay import replay, replay_command
from edge.offline.stability import TierStability, stable_tiers
from edge.pipeline.policy import Policy

POLICY = Policy.from_toml("")  # lite ≥ 0.5, minimal ≥ 0.95
RULE = TierStability(margin=0.5, dwell_s=600.0)
EXCERPTS = Path(__file__).resolve().parents[1] / "data" / "traces"


def run(ps, ys=None, clients=None, times=None, ceilings=None, rule=RULE):
    n = len(ps)
    return stable_tiers(
        ps,
        ceilings or [None] * n,
        ys if ys is not None else [True] * n,
        clients or [0] * n,
        times if times is not None else [30.0 * i for i in range(n)],
        POLICY,
        rule,
    )


def test_noise_around_the_threshold_switches_far_less_with_the_rule():
    ps = [0.45, 0.56, 0.44, 0.57, 0.46, 0.55] * 3
    s = run(ps)
    assert s["without"]["switches"] == 17 and s["with"]["switches"] == 0
    assert s["without"]["switches_per_client"] == 17 and s["with"]["switches_per_client"] == 0
    assert s["held"]["pages"] == 9  # the nine lite pages the thresholds alone would serve


def test_a_real_change_switches_at_once_with_the_rule():
    ps = [0.1] * 5 + [0.9] * 5  # 4G, then 2G: two margins past the lite threshold
    s = run(ps, ys=[False] * 5 + [True] * 5)
    assert s["without"]["switches"] == s["with"]["switches"] == 1
    assert s["with"]["full_when_degraded"] == 0.0 and s["with"]["lite_when_fine"] == 0.0
    assert s["held"] == {"pages": 0, "made_right": 0, "made_wrong": 0}


def test_switches_are_counted_per_client_in_time_order():
    # Two steady clients interleaved: one always lite, one always full. Listed out of time order.
    ps = [0.9, 0.1, 0.9, 0.1, 0.9, 0.1]
    clients = [0, 1, 0, 1, 0, 1]
    times = [50.0, 10.0, 0.0, 60.0, 100.0, 120.0]
    s = run(ps, clients=clients, times=times)
    assert s["clients"] == 2 and s["without"]["switches"] == 0 and s["with"]["switches"] == 0
    assert s["without"]["served"] == {"full": 3, "lite": 3, "minimal": 0}


def test_the_dwell_time_runs_on_the_replay_clock():
    # Held lite against a p just under the threshold, until the choice is 600 s old.
    ps = [0.9, 0.45, 0.45, 0.45]
    held = run(ps, times=[0.0, 60.0, 120.0, 180.0])
    assert [held["with"]["served"]["lite"], held["with"]["switches"]] == [4, 0]
    expired = run(ps, times=[0.0, 60.0, 700.0, 760.0])
    assert [expired["with"]["served"]["lite"], expired["with"]["switches"]] == [2, 1]


def test_made_right_and_made_wrong():
    # Lite, then a p just under the threshold held lite: right when degraded, wrong when fine.
    s = run([0.9, 0.45, 0.45], ys=[True, True, False])
    assert s["held"] == {"pages": 2, "made_right": 1, "made_wrong": 1}
    assert s["without"]["wrong"] == pytest.approx(1 / 3) and s["with"]["wrong"] == pytest.approx(1 / 3)


def test_no_prediction_is_full_and_the_envelope_caps_minimal():
    s = run([None, 0.99, 0.99], ceilings=[None, "lite", "lite"])
    assert s["without"]["served"] == {"full": 1, "lite": 2, "minimal": 0}
    assert s["with"]["served"] == {"full": 1, "lite": 2, "minimal": 0}


def test_the_rule_off_changes_nothing():
    ps = [0.45, 0.55, 0.45, 0.55]
    s = run(ps, rule=TierStability(margin=0.0, dwell_s=600.0))
    assert s["with"] == s["without"] and s["held"]["pages"] == 0


@pytest.mark.parametrize("subset", ["gnettrack", "norway"])
def test_replay_reports_the_rule_on_real_excerpts(subset):
    files = sorted((EXCERPTS / subset).glob("*.gz"))
    report = replay(files, bootstrap=0)
    s = report.deployed["stable_tiers"]
    tiers = report.deployed["tiers"]
    assert (s["margin"], s["dwell_s"]) == (0.5, 600.0)  # edge serve's defaults
    assert s["pages"] == report.requests and s["clients"] == len(files)
    # Without the rule: exactly the tiers block the replay already reports.
    assert s["without"]["served"] == tiers["served"]
    assert s["without"]["lite_when_fine"] == tiers["lite_when_fine"]
    assert s["without"]["full_when_degraded"] == tiers["full_when_degraded"]
    assert s["with"]["switches"] <= s["without"]["switches"]
    assert sum(s["with"]["served"].values()) == report.requests


def test_the_command_prints_and_emits_the_rule(tmp_path):
    files = [str(p) for p in sorted((EXCERPTS / "gnettrack").glob("*.gz"))]
    text = CliRunner().invoke(replay_command, ["--bootstrap", "0", *files])
    assert text.exit_code == 0, text.output
    assert "stable tier (margin 0.5, dwell 600 s" in text.output and "with the rule" in text.output
    out = orjson.loads(CliRunner().invoke(replay_command, ["--json", "--bootstrap", "0", *files]).output)
    assert {"without", "with", "held"} <= set(out["deployed"]["stable_tiers"])
