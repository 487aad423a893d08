"""promtool on the scrape configs and rules, promtool's rule unit tests, and the rules' own conventions."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from _deploy import OPERATIONS, PROMETHEUS_DIR, RULE_FILES, RULE_TESTS, load_yaml, rules, run_tool


def test_promtool_check_static_config(promtool: str) -> None:
    result = run_tool(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_kubernetes_config(promtool: str, tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes discovery, so promtool refuses
    ``kubernetes_sd_configs``. Check everything else (relabel regexes, rule files, fields) with
    the discovery blocks swapped for static ones; test_kubernetes.py runs the relabelling itself."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus-kubernetes.yml")
    swapped = copy.deepcopy(config)
    for block in [*swapped["scrape_configs"], *swapped["alerting"]["alertmanagers"]]:
        assert "kubernetes_sd_configs" in block
        block.pop("kubernetes_sd_configs")
        block["static_configs"] = [{"targets": ["pod.invalid:9090"]}]
    swapped["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    path = tmp_path / "prometheus-kubernetes.yml"
    path.write_text(yaml.safe_dump(swapped), encoding="utf-8")
    result = run_tool(promtool, "check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_configs_scrape_job_edge_and_load_the_rules() -> None:
    for name in ("prometheus.yml", "prometheus-kubernetes.yml"):
        config = load_yaml(PROMETHEUS_DIR / name)
        # EdgeDown selects job="edge"; the fleet's rules and panels tell learners apart by job="edge-learner".
        assert [job["job_name"] for job in config["scrape_configs"]] == ["edge", "edge-learner"], name
        assert config["rule_files"] == ["rules/recording.yml", "rules/alerts.yml"], name


def test_promtool_check_rules(promtool: str) -> None:
    result = run_tool(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool: str) -> None:
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/rules/tests/"
    result = run_tool(promtool, "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_cases() -> dict[str, dict[str, int]]:
    """alertname → number of promtool cases expecting it to fire and to stay silent."""
    cases: dict[str, dict[str, int]] = {}
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                counts = cases.setdefault(case["alertname"], {"firing": 0, "silent": 0})
                counts["firing" if case.get("exp_alerts") else "silent"] += 1
    return cases


@pytest.mark.parametrize("alert", [r["alert"] for r in rules("alert")])
def test_every_alert_has_firing_and_silent_unit_tests(alert: str) -> None:
    counts = _alert_cases().get(alert, {"firing": 0, "silent": 0})
    assert counts["firing"] >= 1, f"{alert}: no promtool test case where it fires"
    assert counts["silent"] >= 1, f"{alert}: no promtool test case where it stays silent"


@pytest.mark.parametrize("alert", rules("alert"), ids=lambda r: r["alert"])
def test_every_alert_has_annotations_severity_and_a_runbook_section(alert: dict) -> None:
    name = alert["alert"]
    annotations = alert.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key), f"{name}: missing annotation {key}"
    assert alert.get("labels", {}).get("severity") in {"critical", "warning"}, name
    # GitHub's anchor for the heading "### EdgeDown" is "#edgedown".
    assert annotations["runbook_url"] == f"docs/operations.md#{name.lower()}", name
    headings = re.findall(r"^### (\S+)\s*$", OPERATIONS.read_text(encoding="utf-8"), flags=re.M)
    assert name in headings, f"docs/operations.md has no '### {name}' runbook section"


def test_the_required_alerts_exist() -> None:
    names = {r["alert"] for r in rules("alert")}
    required = {
        "EdgeFailOpenRateHigh",
        "EdgeUpstreamErrorsHigh",
        "EdgeLatencyP99OverTarget",
        "EdgeModelWorseThanRules",
        "EdgeNoLabels",
        "EdgeLiteShareJump",
        "EdgeFeedbackRejectionsSpike",
    }
    assert required <= names, required - names


def test_the_fleet_alerts_exist_and_read_learners_by_job() -> None:
    alerts = {r["alert"]: r for r in rules("alert")}
    for name in ("EdgeStateDisconnected", "EdgeModelVersionSkew", "EdgeLearnerStreamLag", "EdgeNoLearner", "EdgeStateErrors"):
        assert name in alerts, name
    # Sidecars export edge_learner_leader 0 too: only job "edge-learner" says whether a learner leads or is there at all.
    assert 'absent(edge_learner_leader{job="edge-learner"})' in alerts["EdgeNoLearner"]["expr"]
    assert 'edge_state_model_version{job!="edge-learner"}' in alerts["EdgeModelVersionSkew"]["expr"]


def test_recording_rule_names_follow_level_metric_operations() -> None:
    for rule in rules("record"):
        assert re.fullmatch(r"[a-z_]+:edge_[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
