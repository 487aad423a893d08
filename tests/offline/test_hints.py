"""Synthesised Chromium hints for replayed clients (edge/offline/hints.py) and ``edge replay --hints``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from edge.offline.hints import ChromiumHints
from edge.offline.replay import replay, replay_command
from edge.pipeline.signals import read_signals

EXCERPTS = Path(__file__).resolve().parents[1] / "data" / "traces"


def test_no_observation_no_hints():
    h = ChromiumHints([10.0, 11.0], [300.0, 300.0])
    assert h.at(10.0) == {} and h.at(5.0) == {}  # only seconds strictly before count
    assert h.at(11.0) == {"ECT": "3g", "Downlink": "0.3"}


def test_the_estimate_is_a_time_weighted_median():
    # Old fast seconds, then a few recent slow ones: the half-life (60 s) lets the recent ones win.
    times = [float(t) for t in range(0, 5)] + [300.0, 301.0, 302.0]
    kbps = [20000.0] * 5 + [60.0] * 3
    assert ChromiumHints(times, kbps).estimate(303.0) == 60.0
    # The same slow seconds as old as the fast ones: the majority wins.
    assert ChromiumHints([float(t) for t in range(8)], kbps).estimate(8.0) == 20000.0


@pytest.mark.parametrize(
    ("kbps", "ect", "downlink"),
    [(30.0, "slow-2g", "0.025"), (60.0, "2g", "0.05"), (640.0, "3g", "0.65"), (712.0, "4g", "0.7"), (50000.0, "4g", "10")],
)
def test_rounding_and_ect_as_chromium(kbps, ect, downlink):
    assert ChromiumHints([0.0], [kbps]).at(1.0) == {"ECT": ect, "Downlink": downlink}


def test_edge_reads_the_synthesised_headers():
    hints = ChromiumHints([0.0], [640.0]).at(1.0)
    s = read_signals({k.lower(): v for k, v in hints.items()})
    assert (s.ect, s.downlink_kbps, s.rtt_ms) == ("3g", 650.0, None)


def test_replay_with_hints_scores_both_ways():
    files = sorted((EXCERPTS / "gnettrack").glob("*.gz"))
    plain = replay(files, bootstrap=0)
    report = replay(files, bootstrap=50, hints=True)
    h = report.hints
    assert h is not None and plain.hints is None
    # Without hints: exactly the report's own rows (the same pass).
    assert h["without"]["deployed"]["roc_auc"] == report.deployed["roc_auc"] == plain.deployed["roc_auc"]
    assert h["without"]["model"]["roc_auc"] == report.model["roc_auc"]
    assert 0.5 < h["with_hints_share"] < 1.0  # every client's first page has none
    for row in ("deployed", "model", "rules"):
        assert 0.0 <= h["with"][row]["roc_auc"] <= 1.0
    # The rules read ECT: with hints they rank differently from without.
    assert h["with"]["rules"]["roc_auc"] != h["without"]["rules"]["roc_auc"]


def test_the_command_prints_the_hints_block():
    files = [str(p) for p in sorted((EXCERPTS / "norway").glob("*.json.gz"))]
    text = CliRunner().invoke(replay_command, ["--bootstrap", "0", "--hints", *files])
    assert text.exit_code == 0, text.output
    assert "browser hints (synthesised ECT/Downlink" in text.output and "without hints (Safari, Firefox)" in text.output
    out = orjson.loads(CliRunner().invoke(replay_command, ["--json", "--bootstrap", "0", "--hints", *files]).output)
    assert set(out["hints"]["with"]) == {"deployed", "model", "rules"}
    refused = CliRunner().invoke(replay_command, ["--hints", "--train", files[0], files[1]])
    assert refused.exit_code == 2 and "--hints" in refused.output
