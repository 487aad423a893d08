"""loadtests/bench_redis_clients.py runs end to end with redis-py alone (tiny counts, a real redis-server).

It checks that every operation is measured for redis-py and that each client this interpreter lacks is
named as skipped, not how fast anything is: the script itself checks each client's replies (every
EVALSHA accepted, the 100 entries read back as written, the values fetched) before timing anything.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPS = {"flush_1", "flush_64", "xread_100", "get_version", "get_model"}

pytestmark = pytest.mark.integration


def test_bench_redis_clients_measures_every_operation_for_redis_py(tmp_path):
    if not shutil.which("redis-server") and not Path("/usr/bin/redis-server").exists():
        pytest.fail("redis-server is missing: scripts/system-deps.sh installs it (make test runs it)")
    out = tmp_path / "clients.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "bench_redis_clients.py"), "--rounds", "1", "--reps", "10", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    report = json.loads(out.read_text())
    measured = {(row["client"], row["op"]) for row in report["rows"]}
    assert {("redis-py", op) for op in OPS} <= measured
    assert all(row["ratio"] == 1.0 for row in report["rows"] if row["client"] == "redis-py")
    assert set(report["clients"]) == {client for client, _ in measured}
    assert report["clients"]["redis-py"]["parser"] in {"_AsyncRESP2Parser", "_AsyncRESP3Parser"}  # the pure parser, forced
    for module, client in (("valkey", "valkey"), ("coredis", "coredis")):
        if importlib.util.find_spec(module) is None:
            assert client not in report["clients"]
            assert f"skipped {client}: not installed" in run.stdout
    assert "XREAD 100" in run.stdout
