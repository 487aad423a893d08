"""loadtests/bench.py, the benchmark command of the README, runs end to end (short, real processes, real wrk).

It checks that every case is measured and named right (the script refuses a case whose edge serves
another tier than the case says), not how fast anything is: timings belong to the benchmark's own
output, not to assertions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_bench_runs_every_case_and_writes_its_table_as_json(tmp_path):
    if not shutil.which("wrk"):
        pytest.fail("wrk is missing: scripts/system-deps.sh installs it (make test runs it)")
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "bench.py"), "--duration", "1", "--warmup", "1",
         "--concurrency", "1", "4", "--workers", "1", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    cases = {(row["case"], row["concurrency"]) for row in report["rows"]}
    expected = {
        "direct", "edge full x1", "edge full x2", "edge lite x1", "lite uncached", "python floor x2",
        "direct dynamic", "lite dynamic", "direct dynamic gzip", "lite dynamic gzip", "python floor",
        "python floor + edge work", "python floor + edge work x2",
    } | ({"nginx", "nginx dynamic"} if shutil.which("nginx") or Path("/usr/sbin/nginx").exists() else set())  # fmt: skip
    assert cases == {(case, c) for case in expected for c in (1, 4)}
    for row in report["rows"]:
        assert row["requests"] > 0 and row["rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
        if row["case"].startswith(("edge", "python floor")):  # the proxy's CPU: edge's (both workers), the floor's (both)
            assert row["proxy_cpu_ms_per_request"] > 0, row
    # Each dynamic case's added p50 is over its own direct case (the dynamic storefront, gzip or not).
    baselines = {row["case"]: row["baseline"] for row in report["rows"]}
    assert baselines["lite dynamic"] == "direct dynamic" and baselines["lite dynamic gzip"] == "direct dynamic gzip"
    assert baselines["edge lite x1"] == "direct" and baselines["python floor"] == "direct"
    # Each ratio is to nginx in front of the same storefront: the dynamic rows to nginx dynamic's.
    by_case = {(row["case"], row["concurrency"]): row for row in report["rows"]}
    if "nginx" in expected:
        for c in (1, 4):
            lite, nginx = by_case["lite dynamic", c], by_case["nginx dynamic", c]
            if nginx["added_p50_ms"] > 0:
                assert lite["added_p50_vs_nginx"] == pytest.approx(lite["added_p50_ms"] / nginx["added_p50_ms"])
            assert by_case["lite dynamic gzip", c]["added_p50_vs_nginx"] is None
    assert report["edge_peak_rss_mb"]["edge x1"] > 10 and report["edge_peak_rss_mb"]["edge dynamic"] > 10
    assert report["edge_peak_rss_mb"]["edge x2"] > report["edge_peak_rss_mb"]["edge x1"]  # its two workers' (and the supervisor's)
    assert {row["workers"] for row in report["rows"] if row["case"] == "python floor x2"} == {2}
    assert {row["workers"] for row in report["rows"] if row["case"] == "python floor + edge work x2"} == {2}
    # The printed table carries the same rows.
    for case in expected:
        assert case in run.stdout
