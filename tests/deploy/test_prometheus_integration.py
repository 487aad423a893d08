"""A real Prometheus scraping a real ``edge serve`` (in front of ``edge storefront``) every second.

While a few hundred mixed 2G/3G/4G requests, app requests, images and beacons flow, the recording
and alerting rules run in Prometheus; then every expression of every Grafana panel and every
recording rule is evaluated through Prometheus's HTTP API and must return at least one series.
A query that returns nothing fails with the panel's title.

Grafana's variables are substituted the way Grafana would for this setup: ``$instance`` is the
scraped sidecar, ``$pod`` matches anything (a static scrape has no pod label), and the intervals
are four scrape intervals (``$__rate_interval`` is never shorter than that).

The "Fleet state" row and the fleet's rules (A fleet on Redis) run against a fleet instead: a real
``redis-server`` with a password, two ``edge serve --state`` sidecars and two ``edge learner`` replicas,
scraped as jobs ``edge`` and ``edge-learner`` like deploy/prometheus/*.yml do. The single sidecar above
has no --state, and every fleet alert must stay silent for it.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
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
from _deploy import DASHBOARD, MISSING_HINT, OPERATIONS, ROOT, RULE_FILES, rules, tool

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


def _spawn(name: str, argv: list[str], logs: Path, extra_env: dict[str, str] | None = None) -> Proc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}  # flags are the only configuration
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})  # except what has no flag (EDGE_FEEDBACK_KEY)
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
        for rule in rules("record", fleet=False):
            stack.wait_for(f"recorded series {rule['record']}", lambda name=rule["record"]: bool(stack.query(name)))
        yield stack
    finally:
        for proc in reversed(procs):
            proc.stop()
        client.close()


def _substitute(expr: str, instance: str | list[str]) -> str:
    """Grafana's variables; ``$instance`` as Grafana's "All" expands it: an alternation of every listed instance."""
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    instances = [instance] if isinstance(instance, str) else instance
    return expr.replace("$instance", "|".join(re.escape(i) for i in instances).replace("\\", "\\\\"))


FLEET_ROW = "Fleet state"


def _panel_queries(fleet: bool = False) -> list[pytest.param]:
    """Every panel's queries, outside the Fleet state row (fleet=False) or in it (fleet=True)."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    params, row = [], ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        if (row == FLEET_ROW) != fleet:
            continue
        for target in panel.get("targets", []):
            title = f"{row} / {panel['title']} [{target['refId']}]"
            params.append(pytest.param(title, target["expr"], id=title))
    return params


def _dashboard_metric_names(fleet: bool) -> set[str]:
    """Raw metric names the panels of the Fleet state row (or of every other row) name."""
    exprs = " ".join(param.values[1] for param in _panel_queries(fleet)) + " "
    return set(re.findall(r"(?<![:\w])((?:edge|process)_[a-z0-9_]+)(?=[{\[\s)])", exprs))


def _missing_metrics(named: set[str], exposition: str) -> set[str]:
    declared = set(re.findall(r"^# TYPE (\S+) ", exposition, flags=re.M))
    samples = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}
    exposed = declared | samples
    base = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in exposed} | exposed
    return {n for n in named if n not in exposed and re.sub(r"_(bucket|count|sum|total)$", "", n) not in base}


@pytest.mark.parametrize(("title", "expr"), _panel_queries())
def test_every_dashboard_query_returns_series(stack: Stack, title: str, expr: str) -> None:
    query = _substitute(expr, stack.instance)
    assert "$" not in query, f"panel {title!r}: unsubstituted variable in {query}"
    if not stack.query(query):
        pytest.fail(f"panel {title!r} returned no series\n  query: {query}", pytrace=False)


@pytest.mark.parametrize("rule", rules("record", fleet=False), ids=lambda r: r["record"] + ("{" + ",".join(f"{k}={v}" for k, v in r["labels"].items()) + "}" if r.get("labels") else ""))
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
    """Every raw metric a panel names is on edge's /metrics (catches typos even for empty gauges).

    The Fleet state row's metrics exist only with --state: test_fleet_dashboard_metrics_are_exported checks them."""
    text = stack.client.get(f"{stack.admin_url}/metrics").text
    missing = _missing_metrics(_dashboard_metric_names(fleet=False), text)
    assert not missing, f"dashboard names metrics edge does not export: {sorted(missing)}"


def test_a_sidecar_without_state_exports_no_fleet_metrics(stack: Stack) -> None:
    """No edge_state_* / edge_learner_* without --state: nothing for the fleet's alerts to misread."""
    text = stack.client.get(f"{stack.admin_url}/metrics").text
    assert not re.findall(r"^(edge_state_\w+|edge_learner_\w+)", text, flags=re.M)


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


# ---------------------------------------------------------------------------------------------- a fleet on Redis

FEEDBACK_KEY = "deploy-test-fleet-key-0123456789abcdef"  # the same on every sidecar and learner, as the Secret gives it
REDIS_PASSWORD = "deploy-test-redis-password"


@dataclass
class Fleet:
    """Two sidecars and two learners on one Redis, scraped as jobs edge and edge-learner."""

    stack: Stack  # prometheus_url, client, procs, query(), wait_for(); edge_url/admin_url are the first sidecar's
    edge_urls: list[str]
    pod_instances: list[str]
    learner_instances: list[str]
    redis: Proc


def _start_redis(tmp: Path, port: int) -> Proc:
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip(f"redis-server not found on PATH; {MISSING_HINT} (it installs redis-server too)")
    return _spawn(
        "redis",
        [redis, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--requirepass", REDIS_PASSWORD],
        tmp,
    )


def _wait_redis(port: int, procs: list[Proc]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and all(p.popen.poll() is None for p in procs):
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as sock:
                sock.sendall(f"AUTH {REDIS_PASSWORD}\r\nPING\r\n".encode())
                time.sleep(0.05)
                if b"+PONG" in sock.recv(64):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail("redis-server did not answer\n" + "\n".join(p.tail() for p in procs), pytrace=False)


def _fleet_traffic(edge_urls: list[str]) -> None:
    """Browsers and apps on both sidecars, and each beacon posted twice: on another sidecar and on its own."""
    jobs = [(_browser_visit, i) for i in range(30)] + [(_app_session, i) for i in range(10)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for statuses in pool.map(lambda job: job[0](edge_urls[job[1] % 2], job[1]), jobs):
            # 502/504 are the storefront's (slow on a loaded machine); 500 would be edge's own failure.
            assert 500 not in statuses, statuses
    # A replay: the token accepted by one sidecar is refused by the other (fleet guard) and by itself (local guard).
    with httpx.Client(timeout=10.0, trust_env=False, headers={"User-Agent": MOBILE_UA, **BROWSERS["3g"]}) as client:
        page = client.get(f"{edge_urls[0]}/")
        token = page.headers.get("edge-token")
        assert token, "no feedback token on a page"
        body = json.dumps({"t": token, "nav": [5, 1560, 6200, 60000], "res": [], "c": ["3g", 400, 0.4]})
        headers = {"Content-Type": "text/plain;charset=UTF-8"}
        for url in (edge_urls[0], edge_urls[1], edge_urls[0]):
            assert client.post(f"{url}/__edge/beacon", content=body, headers=headers).status_code < 500
            time.sleep(1.0)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    prometheus = tool("prometheus")
    if subprocess.run([EDGE_BIN, "learner", "--help"], capture_output=True, cwd=ROOT).returncode != 0:
        pytest.skip("this checkout has no `edge learner` (the fleet on Redis, issue 17)")
    tmp = tmp_path_factory.mktemp("prometheus-fleet")
    procs: list[Proc] = []
    client = httpx.Client(timeout=5.0, trust_env=False)
    env = {"EDGE_FEEDBACK_KEY": FEEDBACK_KEY}
    try:
        redis_port, sf_port, prom_port = (_free_port() for _ in range(3))
        redis = _start_redis(tmp, redis_port)
        procs.append(redis)
        _wait_redis(redis_port, procs)
        state = f"redis://:{REDIS_PASSWORD}@{HOST}:{redis_port}/0"
        procs.append(_spawn("storefront", [EDGE_BIN, "storefront", "--host", HOST, "--port", str(sf_port), "--log-level", "warning"], tmp))
        _wait_ok(f"http://{HOST}:{sf_port}/", procs)
        edge_urls, pod_instances, learner_instances = [], [], []
        for n in range(2):
            port, admin_port = _free_port(), _free_port()
            procs.append(_spawn(
                f"edge-{n}",
                [EDGE_BIN, "serve", "--upstream", f"http://{HOST}:{sf_port}", "--host", HOST, "--port", str(port),
                 "--admin-host", HOST, "--admin-port", str(admin_port), "--log-level", "warning", "--state", state],
                tmp, env,
            ))
            _wait_ok(f"http://{HOST}:{admin_port}/readyz", procs)
            edge_urls.append(f"http://{HOST}:{port}")
            pod_instances.append(f"{HOST}:{admin_port}")
        for n in range(2):
            admin_port = _free_port()
            procs.append(_spawn(
                f"learner-{n}",
                [EDGE_BIN, "learner", "--state", state, "--admin-host", HOST, "--admin-port", str(admin_port), "--log-level", "warning"],
                tmp, env,
            ))
            _wait_ok(f"http://{HOST}:{admin_port}/healthz", procs)
            learner_instances.append(f"{HOST}:{admin_port}")

        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in RULE_FILES],
            "scrape_configs": [
                {"job_name": "edge", "static_configs": [{"targets": pod_instances}]},
                {"job_name": "edge-learner", "static_configs": [{"targets": learner_instances}]},
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        procs.append(_spawn(
            "prometheus",
            [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address={HOST}:{prom_port}", "--log.level=warn"],
            tmp,
        ))
        prometheus_url = f"http://{HOST}:{prom_port}"
        _wait_ok(f"{prometheus_url}/-/ready", procs)
        stack = Stack(prometheus_url, edge_urls[0], f"http://{pod_instances[0]}", pod_instances[0], procs, client)
        stack.wait_for("the first scrape of all four", lambda: len(stack.query("up == 1")) == 4)

        _fleet_traffic(edge_urls)

        for what, expr in {
            "one leader": 'sum(edge_learner_leader{job="edge-learner"}) == 1',
            "labels learned": 'sum(edge_learner_labels_total{job="edge-learner"}) > 0',
            "a fleet model on both sidecars": 'count(edge_state_model_version{job="edge"} > 0) == 2',
            "both sidecars connected": 'count(edge_state_connected{job="edge"} == 1) == 2',
        }.items():
            stack.wait_for(what, lambda expr=expr: bool(stack.query(expr)))
        for rule in rules("record", fleet=True):
            stack.wait_for(f"recorded series {rule['record']}", lambda name=rule["record"]: bool(stack.query(name)))
        yield Fleet(stack, edge_urls, pod_instances, learner_instances, redis)
    finally:
        for proc in reversed(procs):
            proc.stop()
        client.close()


@pytest.mark.parametrize(("title", "expr"), _panel_queries(fleet=True))
def test_every_fleet_dashboard_query_returns_series(fleet: Fleet, title: str, expr: str) -> None:
    query = _substitute(expr, fleet.pod_instances)
    assert "$" not in query, f"panel {title!r}: unsubstituted variable in {query}"
    if not fleet.stack.query(query):
        pytest.fail(f"panel {title!r} returned no series\n  query: {query}", pytrace=False)


@pytest.mark.parametrize("rule", rules("record", fleet=True), ids=lambda r: r["record"])
def test_every_fleet_recording_rule_returns_series(fleet: Fleet, rule: dict) -> None:
    assert fleet.stack.query(rule["expr"]), f"recording rule {rule['record']}: expression returned no series"


def test_fleet_panels_see_learners_apart_from_sidecars(fleet: Fleet) -> None:
    """The serving pods' versions are the two sidecars' (not the learners'), and the learners are one leader, one standby."""
    serving = fleet.stack.query("instance:edge_state_model_version:serving")
    assert sorted(s["metric"]["instance"] for s in serving) == sorted(fleet.pod_instances)
    leaders = fleet.stack.query('edge_learner_leader{job="edge-learner"}')
    assert sorted(float(s["value"][1]) for s in leaders) == [0.0, 1.0]


def test_fleet_dashboard_metrics_are_exported(fleet: Fleet) -> None:
    """Every metric the Fleet state row names is on a sidecar's or a learner's /metrics."""
    text = "\n".join(fleet.stack.client.get(f"http://{i}/metrics").text for i in fleet.pod_instances + fleet.learner_instances)
    missing = _missing_metrics(_dashboard_metric_names(fleet=True), text)
    assert not missing, f"the Fleet state row names metrics no fleet process exports: {sorted(missing)}"


def test_every_fleet_metric_is_documented(fleet: Fleet) -> None:
    """docs/operations.md ("A fleet on Redis", Metrics) names every edge_state_* / edge_learner_* metric a fleet exports."""
    text = "\n".join(fleet.stack.client.get(f"http://{i}/metrics").text for i in fleet.pod_instances + fleet.learner_instances)
    declared = re.findall(r"^# TYPE ((?:edge_state|edge_learner)_\w+) (\w+)", text, flags=re.M)
    exported = {(name, kind) for name, kind in declared if not name.endswith("_created")}  # prometheus-client's own
    assert exported, "a fleet exports no edge_state_* metric"
    docs = OPERATIONS.read_text(encoding="utf-8")
    missing = sorted(name + ("_total" if kind == "counter" else "") for name, kind in exported if f"`{name}" not in docs)
    assert not missing, f"docs/operations.md does not describe: {missing}"


def test_no_fleet_alert_holds_on_a_healthy_fleet(fleet: Fleet) -> None:
    for rule in rules("alert", fleet=True):
        holds = fleet.stack.query(rule["expr"])
        assert holds == [], f"{rule['alert']} (for: {rule.get('for', '0s')}) would fire on a healthy fleet: {holds}"


def test_redis_killed_shows_as_disconnected_and_sidecars_serve_on(fleet: Fleet) -> None:
    """Last (it breaks the fleet): kill -9 of Redis. Pages still come; EdgeStateDisconnected's expression names every
    process; EdgeNoLearner and EdgeStateErrors stay silent (Redis down is not a learner or a command problem)."""
    fleet.redis.popen.kill()
    fleet.redis.popen.wait(5)
    stack = fleet.stack
    stack.wait_for("every process to report Redis lost", lambda: len(stack.query("edge_state_connected == 0")) == 4)
    for url in fleet.edge_urls:
        with httpx.Client(timeout=10.0, trust_env=False, headers={"User-Agent": MOBILE_UA, **BROWSERS["2g"]}) as client:
            assert client.get(f"{url}/").status_code == 200
    alerts = {r["alert"]: r["expr"] for r in rules("alert", fleet=True)}
    stack.wait_for(
        "EdgeStateDisconnected's expression to hold for all four",
        lambda: len(stack.query(alerts["EdgeStateDisconnected"])) == 4,
    )
    for name in ("EdgeNoLearner", "EdgeStateErrors"):
        assert stack.query(alerts[name]) == [], name
