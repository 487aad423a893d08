"""The load report's rows per client (Chromium, the hint-less Safari and Firefox, the app), from a summary."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
from report import client_rows, render  # noqa: E402

SUMMARY = {
    "meta": {"profiles": ["regular2g", "4g"]},
    "counts": {
        "tier|regular2g|edge|safari|warmup|full": 1,
        "tier|regular2g|edge|safari|steady|lite": 3,
        "tier|regular2g|edge|safari|steady|full": 1,
        "tier|regular2g|edge|chromium|steady|lite": 4,
        "tier|4g|edge|firefox|steady|full": 2,
    },
    "pages": {
        "regular2g|edge": [
            [40000.0, 700000, "full", "warmup", "home", "safari"],
            [2000.0, 90000, "lite", "steady", "home", "safari"],
            [3000.0, 90000, "lite", "steady", "search", "safari"],
            [2500.0, 90000, "lite", "steady", "product", "safari"],
            [2200.0, 90000, "full", "steady", "product", "safari"],
            [1500.0, 90000, "lite", "steady", "home", "chromium"],
            [900.0, 5000, "-", "steady", "app-home", "app"],
        ],
        "4g|edge": [[800.0, 700000, "full", "steady", "home", "firefox"], [900.0, 700000, "full", "steady", "cart", "firefox"]],
    },
}


def test_rows_split_by_client():
    rows = {(r["profile"], r["client"]): r for r in client_rows(SUMMARY)}
    assert set(rows) == {("regular2g", "chromium"), ("regular2g", "safari"), ("4g", "firefox")}  # app-home left out
    safari = rows[("regular2g", "safari")]
    assert safari["pages"] == 5 and safari["steady"] == 4 and safari["lite_share"] == 0.75
    assert safari["p50_ms"] == 2500.0 and safari["p95_ms"] == 40000.0  # the full first page is the tail
    assert rows[("4g", "firefox")]["lite_share"] == 0.0


def test_render_prints_the_rows(tmp_path):
    text = render(SUMMARY, None, tmp_path / "run")
    line = next(line for line in text.splitlines() if line.split()[:2] == ["regular2g", "safari"])
    assert line.split()[2:] == ["5", "2.5s", "40.0s", "75%", "4"]
