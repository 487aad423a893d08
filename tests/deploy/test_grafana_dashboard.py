"""The Grafana dashboard's structure and its provisioning files (its queries run in test_prometheus_integration.py)."""

from __future__ import annotations

import json
import re

from _deploy import DASHBOARD, DEPLOY, load_yaml

REQUIRED_ROWS = ["Traffic and tiers", "Latency per tier", "Bytes saved", "Model health", "Feedback and labels", "Reliability", "Resources", "Fleet state"]
#: The row that shows a fleet on Redis (docs/operations.md, "A fleet on Redis"); its queries run against a fleet.
FLEET_ROW = "Fleet state"


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _rows() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    current = None
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"], [])
        else:
            assert current is not None, f"panel {panel['title']!r} sits above the first row"
            current.append(panel)
    return rows


def test_rows_in_order_each_with_panels() -> None:
    rows = _rows()
    assert list(rows) == REQUIRED_ROWS
    assert all(rows[title] for title in REQUIRED_ROWS)


def test_rows_cover_what_sres_watch() -> None:
    text = {title: json.dumps(panels) for title, panels in _rows().items()}
    expected = {
        "Traffic and tiers": ["edge_requests_total", "source"],
        "Latency per tier": ["edge_request_duration_seconds", "edge_upstream_duration_seconds", "edge_rewrite_duration_seconds", "edge_rewrite_cache_total",
                             "edge_request_queue_seconds_total"],
        "Bytes saved": ["edge_served_bytes", "edge_upstream_bytes"],
        "Model health": ["edge_model_roc_auc", "edge_model_log_loss", "edge_model_champion", "edge_model_drift_detections_total", "edge_model_checkpoints_total"],
        "Feedback and labels": ["edge_labels_total", "edge_feedback_rejected_total", "by (source, label)", "by (reason)"],
        "Reliability": ["edge_fail_open_total", "by (stage)", "edge_upstream_errors_total", "by (kind)", "edge_policy_reloads_total"],
        "Resources": ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "edge_table_entries"],
        "Fleet state": [
            "edge_state_connected", "edge_learner_leader", "edge_state_stream_lag", "edge_learner_pending", "edge_state_model_version",
            "edge_state_errors", "by (op)", "edge_state_outbox", "edge_state_dropped_total", "edge_state_guard_fallbacks_total",
            "edge_state_sync_lag_seconds", "edge_state_snapshots_total", "edge_learner_labels_total",
        ],
    }
    for row, needles in expected.items():
        for needle in needles:
            assert needle in text[row], f"row {row!r} has no query with {needle!r}"


def test_panels_have_unique_ids_titles_and_fit_the_grid() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells


def _learner_query(expr: str) -> bool:
    """A query about the fleet's learners: every selector in it is job "edge-learner" (how both Prometheus configs scrape
    `edge learner`). `$instance`/`$pod` list sidecars, so it is not filtered by them."""
    selectors = re.findall(r"[a-z_:]+\{([^}]*)\}", expr)
    return bool(selectors) and all('job="edge-learner"' in labels for labels in selectors)


def test_every_query_uses_the_datasource_variable_and_the_instance_and_pod_filters() -> None:
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("description"), f"panel {panel['title']!r} has no description"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            if expr.startswith("tier:"):  # the constant latency targets
                continue
            if 'instance=~"$instance"' not in expr and _learner_query(expr):
                continue
            assert 'instance=~"$instance"' in expr and 'pod=~"$pod"' in expr, f"{panel['title']}: {expr}"


def test_templating_on_datasource_pod_and_instance() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    # pod matches series without a pod label (static scrape) when "All" is selected.
    assert variables["pod"]["allValue"] == ".*" and variables["pod"]["includeAll"]
    assert "$pod" in variables["instance"]["query"]["query"] and variables["instance"]["includeAll"]


def test_provisioning_loads_the_dashboard_and_the_datasource() -> None:
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (prometheus,) = datasources["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["isDefault"]
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "edge.yml")["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"].endswith("/edge")
    assert _dashboard()["uid"] == "edge-sidecar"


def test_fleet_row_tells_serving_pods_from_learners() -> None:
    """Sidecars and learners both export edge_state_* (only learners edge_learner_*): every fleet query selects one
    side by job, the sidecars with the dashboard's filters, the learners alone."""
    for panel in _rows()[FLEET_ROW]:
        for target in panel["targets"]:
            expr = target["expr"]
            sidecar = 'job!="edge-learner", instance=~"$instance", pod=~"$pod"'
            selectors = re.findall(r"[a-z_:]+\{([^}]*)\}", expr)
            assert selectors and (_learner_query(expr) or all(sidecar in labels for labels in selectors)), f"{panel['title']}: {expr}"


def test_sidecar_variables_leave_the_learners_out() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    for name in ("pod", "instance"):
        assert 'job!="edge-learner"' in variables[name]["query"]["query"], name


def test_learner_panels_exist_and_skew_is_max_minus_min() -> None:
    fleet = {panel["title"]: panel for panel in _rows()[FLEET_ROW]}
    (skew,) = [p for title, p in fleet.items() if "skew" in title.lower()]
    assert skew["targets"][0]["expr"].startswith("max(instance:edge_state_model_version:serving{")
    assert " - min(instance:edge_state_model_version:serving{" in skew["targets"][0]["expr"]
    (leaders,) = [p for title, p in fleet.items() if "leader" in title.lower()]
    assert leaders["targets"][0]["expr"] == 'sum(edge_learner_leader{job="edge-learner"})'
