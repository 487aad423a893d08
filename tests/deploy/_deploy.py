"""Helpers for the deployment tests: paths into ``deploy/``, the promtool/prometheus binaries.

promtool and prometheus come from Debian's ``prometheus`` package, which
``scripts/system-deps.sh`` (run by ``make test`` and CI) installs. A test that needs
one skips only when it is missing, and says how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_FILES = [RULES_DIR / "recording.yml", RULES_DIR / "alerts.yml"]
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "edge.json"
MANIFEST = DEPLOY / "kubernetes" / "edge-sidecar.yaml"
#: A fleet on Redis: the learner (with the Secret "edge-state") and a Redis to try it with.
LEARNER_MANIFEST = DEPLOY / "kubernetes" / "edge-learner.yaml"
REDIS_MANIFEST = DEPLOY / "kubernetes" / "redis.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
MISSING_HINT = "install Debian's prometheus package: bash scripts/system-deps.sh"


def tool(name: str) -> str:
    """Path of ``name`` (promtool, prometheus) or skip the test, saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found on PATH; {MISSING_HINT}")
    return path


def run_tool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, returning its result (stdout and stderr captured as text)."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=120)


def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


#: Rule groups about a fleet on Redis (edge_state_*, edge_learner_*): a sidecar without --state has no series for them.
FLEET_GROUPS = {"edge.fleet", "edge.fleet.alerts"}


def rules(kind: str, fleet: bool | None = None) -> list[dict]:
    """Every rule of ``kind`` ("alert" or "record") in the rule files, in file order.

    ``fleet``: None, every rule; True, only the fleet's groups (FLEET_GROUPS); False, all but those.
    """
    found = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            if fleet is None or (group["name"] in FLEET_GROUPS) == fleet:
                found.extend(rule for rule in group["rules"] if kind in rule)
    return found
