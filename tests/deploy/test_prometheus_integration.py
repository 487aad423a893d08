"""A real Prometheus scraping a real ``edge serve`` (in front of ``edge storefront``) every second.

While a few hundred mixed 2G/3G/4G requests, app requests, images and beacons flow, the recording
and alerting rules run in Prometheus; then every expression of every Grafana panel and every
recording rule is evaluated through Prometheus's HTTP API and must return at least one series.
A query that returns nothing fails with the panel's title.

Grafana's variables are substituted the way Grafana would for this setup: ``$instance`` is the
scraped sidecar, ``$pod`` matches anything (a static scrape has no pod label), and the intervals
are four scrape intervals (``$__rate_interval`` is never shorter than that).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from _deploy import DASHBOARD, ROOT, RULE_FILES, rules, tool

from tests.readiness import poll_ready

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
_BIN = Path(sys.executable).parent
EDGE_BIN = str(_BIN / "edge") if (_BIN / "edge").exists() else "edge"
DEADLINE_S = 30.0
SUBSTITUTIONS = {"$__rate_interval": "4s", "$__interval": "4s", "$pod": ".*"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self) -> str:
        return f"----- {self.name} (rc {self.popen.poll()}) -----\n" + self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def _spawn(name: str, argv: list[str], logs: Path) -> Proc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}  # flags are the only configuration
    env["PYTHONUNBUFFERED"] = "1"
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    return Proc(name, popen, log)


def _wait_ok(url: str, procs: list[Proc]) -> None:
    ready, last = poll_ready(url, lambda: all(p.popen.poll() is None for p in procs), time.monotonic() + DEADLINE_S, 0.1)
    if ready:
        return
    pytest.fail(f"{url} not ready (last: {last!r})\n" + "\n".join(p.tail() for p in procs), pytrace=False)


@dataclass
class Stack:
    prometheus_url: str
    edge_url: str
    admin_url: str
    instance: str
    procs: list[Proc]
    client: httpx.Client

    def query(self, expr: str) -> list[dict]:
        response = self.client.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr})
        body = response.json()
        assert body.get("status") == "success", f"{expr}\n→ {response.status_code} {body}"
        return body["data"]["result"]

    def wait_for(self, what: str, predicate) -> None:  # noqa: ANN001
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.25)
        pytest.fail(f"timed out waiting for {what}\n" + "\n".join(p.tail() for p in self.procs), pytrace=False)


MOBILE_UA = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"
BROWSERS = {
    "2g": {"ECT": "2g", "RTT": "1800", "Downlink": "0.05"},
    "3g": {"ECT": "3g", "RTT": "400", "Downlink": "0.6"},
    "4g": {"ECT": "4g", "RTT": "50", "Downlink": "10"},
}
PAGES = ["/", "/search?q=tea", "/product/1", "/product/2", "/cart"]


def _browser_visit(edge_url: str, i: int) -> list[int]:
    """A browser on 2g/3g/4g (or sending no hints, or Save-Data) loads a page, an image, and beacons back."""
    net = ("2g", "3g", "4g", "none", "save-data")[i % 5]
    headers = {"User-Agent": MOBILE_UA, **BROWSERS.get(net, {})}
    if net == "save-data":
        headers["Save-Data"] = "on"
    with httpx.Client(base_url=edge_url, timeout=10.0, trust_env=False, headers=headers) as client:
        page = client.get(PAGES[i % len(PAGES)])
        image = client.get(("/static/img/logo.png", "/static/img/hero-1.png?w=210")[i % 2])
        statuses = [page.status_code, image.status_code]
        token = page.headers.get("edge-token")
        if token and i % 2 == 0:
            # Navigation Timing as the beacon script sends it: slow networks take long for their bytes.
            slow = net in ("2g", "3g")
            nav = [5, 60 + (1500 if slow else 40), 200 + (6000 if slow else 150), 60000]
            body = json.dumps({"t": token, "nav": nav, "res": [], "c": [net if net in BROWSERS else "4g", 400 if slow else 50, 0.4 if slow else 10]})
            statuses.append(client.post("/__edge/beacon", content=body, headers={"Content-Type": "text/plain;charset=UTF-8"}).status_code)
    return statuses


def _app_session(edge_url: str, i: int) -> list[int]:
    """The storefront's app on a cell: each request reports the previous one (with its token)."""
    slow = i % 2 == 0
    cell = f'id="404-45-1207-{88100 + i % 7}", radio={"edge" if slow else "lte"}, rsrp={-118 if slow else -85}'
    statuses, token = [], None
    with httpx.Client(base_url=edge_url, timeout=10.0, trust_env=False, headers={"User-Agent": "ShopApp/5.2 (Android 13)"}) as client:
        for n in range(3):
            headers = {"Edge-Cell": cell}
            if n:
                report = f"ms={4000 if slow else 300}, bytes=40000"
                headers["Edge-Last-Request"] = (f'token="{token}", ' if token else "") + report
            response = client.get(PAGES[(i + n) % len(PAGES)], headers=headers)
            statuses.append(response.status_code)
            token = response.headers.get("edge-token")
        statuses.append(client.get("/api/layout/home", headers={"Edge-Cell": cell}).status_code)
    return statuses


def _odd_requests(edge_url: str, i: int) -> list[int]:
    """Tier switches and feedback that must be refused (forged, malformed)."""
    with httpx.Client(base_url=edge_url, timeout=10.0, trust_env=False) as client:
        return [
            client.get(f"/__edge/tier/{('full', 'lite')[i % 2]}?next=/").status_code,
            client.post("/__edge/beacon", content=json.dumps({"t": "forged.token", "nav": [1, 2, 3, 4]})).status_code,
            client.post("/__edge/beacon", content=b"not json").status_code,
        ]


def _traffic(edge_url: str) -> int:
    """A few hundred mixed requests in three waves; returns how many requests were sent."""
    jobs = [(_browser_visit, i) for i in range(120)] + [(_app_session, i) for i in range(30)] + [(_odd_requests, i) for i in range(10)]
    random.Random(6).shuffle(jobs)
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for wave in range(3):
            # Three waves a second and a half apart, so rates see traffic across several scrapes.
            for statuses in pool.map(lambda job: job[0](edge_url, job[1]), jobs[wave::3]):
                assert all(status < 500 for status in statuses), statuses
                sent += len(statuses)
            if wave < 2:
                time.sleep(1.5)
    return sent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus-integration")
    procs: list[Proc] = []
    client = httpx.Client(timeout=5.0, trust_env=False)
    try:
        sf_port, port, admin_port, prom_port = (_free_port() for _ in range(4))
        storefront = _spawn("storefront", [EDGE_BIN, "storefront", "--host", HOST, "--port", str(sf_port), "--log-level", "warning"], tmp)
        procs.append(storefront)
        _wait_ok(f"http://{HOST}:{sf_port}/", procs)
        edge = _spawn(
            "edge",
            [EDGE_BIN, "serve", "--upstream", f"http://{HOST}:{sf_port}", "--host", HOST, "--port", str(port),
             "--admin-host", HOST, "--admin-port", str(admin_port), "--log-level", "warning", "--fail-mode", "open"],
            tmp,
        )
        procs.append(edge)
        _wait_ok(f"http://{HOST}:{admin_port}/readyz", procs)

        instance = f"{HOST}:{admin_port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in RULE_FILES],
            "scrape_configs": [{"job_name": "edge", "static_configs": [{"targets": [instance]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        prom = _spawn(
            "prometheus",
            [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address={HOST}:{prom_port}", "--log.level=warn"],
            tmp,
        )
        procs.append(prom)
        prometheus_url = f"http://{HOST}:{prom_port}"
        _wait_ok(f"{prometheus_url}/-/ready", procs)
        stack = Stack(prometheus_url, f"http://{HOST}:{port}", f"http://{HOST}:{admin_port}", instance, procs, client)
        # A first scrape before the traffic, so every counter has a sample from before it.
        stack.wait_for("the first scrape", lambda: bool(stack.query(f'up{{instance="{instance}"}} == 1')))

        assert _traffic(stack.edge_url) >= 300

        # Wait until Prometheus has scraped everything edge counted, then until the rules have run on it.
        def edge_count() -> float:
            text = client.get(f"{stack.admin_url}/metrics").text
            return sum(float(v) for v in re.findall(r"^edge_requests_total\{[^}]*\} (\S+)$", text, flags=re.M))

        expected = edge_count()
        assert expected > 0, "edge decided no page"
        stack.wait_for(
            f"Prometheus to see all {expected:.0f} decided pages",
            lambda: any(float(s["value"][1]) >= expected for s in stack.query(f'sum(edge_requests_total{{instance="{instance}"}})')),
        )
        for rule in rules("record"):
            stack.wait_for(f"recorded series {rule['record']}", lambda name=rule["record"]: bool(stack.query(name)))
        yield stack
    finally:
        for proc in reversed(procs):
            proc.stop()
        client.close()


def _substitute(expr: str, instance: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr.replace("$instance", re.escape(instance).replace("\\", "\\\\"))


def _panel_queries() -> list[pytest.param]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    params, row = [], ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        for target in panel.get("targets", []):
            title = f"{row} / {panel['title']} [{target['refId']}]"
            params.append(pytest.param(title, target["expr"], id=title))
    return params


def _exposed_samples(stack: Stack) -> set[str]:
    text = stack.client.get(f"{stack.admin_url}/metrics").text
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


@pytest.mark.parametrize(("title", "expr"), _panel_queries())
def test_every_dashboard_query_returns_series(stack: Stack, title: str, expr: str) -> None:
    query = _substitute(expr, stack.instance)
    assert "$" not in query, f"panel {title!r}: unsubstituted variable in {query}"
    if not stack.query(query):
        pytest.fail(f"panel {title!r} returned no series\n  query: {query}", pytrace=False)


@pytest.mark.parametrize("rule", rules("record"), ids=lambda r: r["record"] + ("{" + ",".join(f"{k}={v}" for k, v in r["labels"].items()) + "}" if r.get("labels") else ""))
def test_every_recording_rule_returns_series(stack: Stack, rule: dict) -> None:
    assert stack.query(rule["expr"]), f"recording rule {rule['record']}: expression returned no series"
    assert stack.query(rule["record"]), f"recording rule {rule['record']}: Prometheus recorded nothing"


def test_prometheus_evaluates_every_rule_without_error(stack: Stack) -> None:
    groups = stack.client.get(f"{stack.prometheus_url}/api/v1/rules").json()["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == len(rules("record")) + len(rules("alert"))
    stack.wait_for("every rule to be evaluated", lambda: all(
        r.get("lastEvaluation", "").startswith("20") for g in stack.client.get(f"{stack.prometheus_url}/api/v1/rules").json()["data"]["groups"] for r in g["rules"]
    ))
    for rule in loaded:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"


# The traffic refuses feedback on purpose (_odd_requests: forged and malformed beacons, so that the
# "refused feedback" panel has data): the one alert that must then be pending, and the only one.
PROVOKED = {"EdgeFeedbackRejectionsSpike"}


def _alerts_after_evaluation(stack: Stack) -> dict[str, str]:
    """{alert name: state} of every pending or firing alert, once every alerting rule has run on the traffic."""
    names = {rule["alert"] for rule in rules("alert")}

    def evaluated() -> bool:
        groups = stack.client.get(f"{stack.prometheus_url}/api/v1/rules", params={"type": "alert"}).json()["data"]["groups"]
        seen = {r["name"]: r for g in groups for r in g["rules"]}
        return set(seen) == names and all(r.get("lastEvaluation", "").startswith("20") for r in seen.values())

    stack.wait_for("every alerting rule to be evaluated", evaluated)
    alerts = stack.client.get(f"{stack.prometheus_url}/api/v1/alerts").json()["data"]["alerts"]
    return {a["labels"]["alertname"]: a["state"] for a in alerts}


def test_no_alert_fires_on_a_healthy_sidecar(stack: Stack) -> None:
    """No alert would fire: none is firing or pending, and no alert's expression holds right now.

    Every alert has a ``for:`` of minutes, far longer than this test, so "firing" alone could never be
    seen; an expression that holds is pending at once, and is also seen here by evaluating it directly.
    """
    active = _alerts_after_evaluation(stack)
    assert {name: state for name, state in active.items() if name not in PROVOKED} == {}  # pending or firing
    for rule in rules("alert"):
        if rule["alert"] not in PROVOKED:
            holds = stack.query(rule["expr"])
            assert holds == [], f"{rule['alert']} (for: {rule.get('for', '0s')}) would fire: {holds}"


def test_forged_feedback_makes_its_alert_pending(stack: Stack) -> None:
    """The alerts can be seen at all: the forged feedback the traffic sends puts its alert in pending."""
    active = _alerts_after_evaluation(stack)
    assert {name: active.get(name) for name in PROVOKED} == dict.fromkeys(PROVOKED, "pending"), active


def test_dashboard_metrics_are_exported_by_edge(stack: Stack) -> None:
    """Every raw metric a panel names is on edge's /metrics (catches typos even for empty gauges)."""
    text = stack.client.get(f"{stack.admin_url}/metrics").text
    declared = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))
    exposed = declared | _exposed_samples(stack)
    dashboard = DASHBOARD.read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![:\w])((?:edge|process)_[a-z0-9_]+)(?=[{\[\s)])", dashboard))
    base = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in exposed} | exposed
    missing = {n for n in named if n not in exposed and re.sub(r"_(bucket|count|sum|total)$", "", n) not in base}
    assert not missing, f"dashboard names metrics edge does not export: {sorted(missing)}"


def test_the_traffic_reached_every_row(stack: Stack) -> None:
    """The panels returned series because traffic flowed, not only because counters start at 0."""
    instance = f'instance="{stack.instance}"'
    for what, expr in {
        "pages by at least two tiers": f"count(sum by (tier) (edge_requests_total{{{instance}}}) > 0) >= 2",
        "bytes saved": f"sum(edge_upstream_bytes_total{{{instance}}}) - sum(edge_served_bytes_total{{{instance}}}) > 0",
        "labels from beacons and apps": f"count(sum by (source) (edge_labels_total{{{instance}}}) > 0) == 2",
        "refused feedback": f'sum(edge_feedback_rejected_total{{reason=~"forged|malformed", {instance}}}) > 0',
        "preference switches": f"sum(edge_preference_switches_total{{{instance}}}) > 0",
        "cells in the tower table": f'edge_table_entries{{table="cells", {instance}}} > 0',
    }.items():
        assert stack.query(expr), f"no {what}: {expr}"
