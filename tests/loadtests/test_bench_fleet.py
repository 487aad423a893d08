"""loadtests/bench_fleet.py runs end to end (short, real processes: redis-server, three sidecars, wrk).

What it checks is what the figures mean, not how fast anything is: page requests make no Redis
writes (the only commands during a page load are the background reads), a beacon is one EVALSHA
that writes its nonce and its stream entry, and a slow cell seen on A changes C's decision.
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

#: What a sidecar sends Redis with no feedback arriving: the stream follower's XREAD, the version poll's GET, the
#: outbox's trim (XINFO GROUPS, then XTRIM); INFO and HELLO are the benchmark's own counter read and a connection's handshake.
BACKGROUND = {"xread", "get", "xinfo|groups", "xtrim", "info", "hello", "client|setinfo"}


def test_bench_fleet_measures_both_sides_and_pages_never_write_to_redis(tmp_path):
    for tool in ("wrk", "redis-server"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: scripts/system-deps.sh installs it (make test runs it)")
    out = tmp_path / "fleet.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "bench_fleet.py"), "--duration", "1", "--rounds", "1", "--trials", "3", "--beacons", "10", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures["cases"]) == {"direct", "off", "on"}
    assert all(case["non_2xx"] == 0 and case["rps_c16"] > 0 for case in figures["cases"].values())
    per_request = figures["redis_per_request"]
    assert per_request["requests"] > 0
    assert set(per_request["by_command"]) <= BACKGROUND, per_request["by_command"]
    per_beacon = figures["redis_per_beacon"]
    assert per_beacon["accepted"] == per_beacon["beacons"] == 10
    assert per_beacon["by_command"].get("xadd") == 10 and per_beacon["by_command"].get("set") == 10
    assert figures["beacon_to_decision_ms"]["trials"] == 3
    # The link stayed up: no failed exchange, no label accepted on the local guard alone, none dropped.
    assert figures["sidecar_a"] == {"edge_state_errors_total": 0, "edge_state_guard_fallbacks_total": 0, "edge_state_dropped_total": 0}
    assert "beacon on A → decision on C" in run.stdout
