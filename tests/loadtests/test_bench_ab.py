"""loadtests/bench_ab.py, the README's A/B of edge source trees, runs end to end (one short round, real wrk).

It checks the report names every target and round, and that flags after a tree reach that edge (``b`` runs
two workers); the figures belong to the script's output, not to assertions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_bench_ab_reports_each_tree_against_nginx():
    if not shutil.which("wrk") or not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.skip("wrk and nginx are needed (scripts/system-deps.sh)")
    run = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "bench_ab.py"), "--edge", f"a={ROOT}", "--edge", f"b={ROOT} --workers 2",
         "--rounds", "2", "--duration", "1", "--concurrency", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("c=1: direct ") and "nginx" in lines[0]
    assert [line.split()[0] for line in lines[1:3]] == ["a", "b"] and all("x nginx" in line for line in lines[1:3])
    assert [line.split()[1] for line in lines[3:5]] == ["a:", "b:"] and all(line.count("|") == 1 for line in lines[3:5])
    # CPU and context switches per request, for each edge: numbers, read from all of its processes.
    switches = [float(re.search(r"([\d.]+) switches/req", line).group(1)) for line in lines[1:3]]
    assert all(s >= 0 for s in switches), lines
    assert "edge: 2 workers on" in run.stderr  # (b's supervisor: the flags after its tree reached it)
