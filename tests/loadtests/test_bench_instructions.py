"""loadtests/bench_instructions.py, the instruction count per page, runs end to end (real processes under valgrind).

It checks that each case is counted from its own dump and that the counts measure the work asked of
each proxy, not how fast anything is: counts are the benchmark's output.
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


def test_bench_instructions_counts_every_case(tmp_path):
    if not shutil.which("valgrind"):
        pytest.fail("valgrind is missing: scripts/system-deps.sh installs it (make test runs it)")
    out = tmp_path / "counts.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "bench_instructions.py"), "--requests", "40", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {row["case"]: row for row in json.loads(out.read_text())["rows"]}
    expected = {"python floor", "edge"} | ({"nginx"} if shutil.which("nginx") or Path("/usr/sbin/nginx").exists() else set())
    assert set(rows) == expected
    for row in rows.values():
        assert row["pages"] == 40 and 0 <= row["copied"] < row["instructions"], row
        assert row["rest"] == row["instructions"] - row["copied"]
    # Every proxy copies the ~135 KB page at least once per page in large blocks (counted a byte each)...
    assert all(row["copied"] / row["pages"] > 100_000 for case, row in rows.items() if case != "nginx"), rows
    # ...and edge decides, signs a token and counts on every page, which the floor does not.
    assert rows["edge"]["rest"] > rows["python floor"]["rest"], rows
    assert "rest × nginx" in run.stdout and "python floor" in run.stdout
