"""``edge serve --workers 2``: two processes behind one port, metrics summed across them, and the
model story of docs/operations.md ("Scaling") on real processes: every beacon is learned by exactly
one worker (tokens from any worker are good at any other, with or without EDGE_FEEDBACK_KEY), and
each worker checkpoints to ``<checkpoint>.<index>`` on SIGTERM and restores that file on restart."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def _total(admin_url: str, name: str) -> float:
    text = httpx.get(admin_url + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def _per_worker_requests(metrics_dir: Path) -> dict[int, float]:
    """edge_requests_total per worker pid, read from the workers' own sample files."""
    out: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if '"edge_requests_total"' in key:
                out[pid] = out.get(pid, 0.0) + value
    return out


def test_two_workers_serve_and_count_every_request_once(stack, start_edge, tmp_path, monkeypatch):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))  # the supervisor uses it as given
    edge = start_edge(stack.storefront_url, "--workers", "2", name="edge-2-workers")
    before = _total(edge.admin_url, "edge_requests_total")
    with httpx.Client(timeout=10) as client:
        tiers = set()
        for i in range(60):
            # A new connection each time, so the kernel spreads them over both workers.
            r = client.get(edge.url + "/", headers={"ECT": "2g" if i % 2 else "4g", "Connection": "close"})
            assert r.status_code == 200
            tiers.add(r.headers["edge-tier"])
    assert tiers == {"lite", "full"}
    # Whichever worker answers the scrape reports the sum of both: the same total every time.
    totals = {_total(edge.admin_url, "edge_requests_total") - before for _ in range(6)}
    assert totals == {60.0}
    per_worker = _per_worker_requests(metrics_dir)
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values()), per_worker  # both served
    assert _total(edge.admin_url, 'edge_upstream_duration_seconds_count') >= 60

    edge.proc.popen.send_signal(signal.SIGTERM)
    assert edge.proc.popen.wait(timeout=30) == 0


# ------------------------------------------------------------------------------ the model story
# Each worker learns from the feedback it receives and checkpoints to <checkpoint>.<worker index>,
# restored by the same index (edge/runtime/workers.py, docs/operations.md "Scaling").

FEEDBACK_KEY = "5f0e" * 8
MOBILE_UA = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"


def _slow(token: str) -> bytes:
    """A 2G-like page load (320 kbit/s): a degraded label (docs/feedback.md)."""
    return orjson.dumps({"t": token, "nav": [5, 105, 2605, 100_000], "res": []})


def _fast(token: str) -> bytes:
    """A good 4G load (≈ 20 Mbit/s, RTT ≈ 30 ms): an ok label."""
    return orjson.dumps({"t": token, "nav": [5, 35, 75, 100_000], "res": [[60, 120, 200_000]]})


def _send_feedback(edge, n: int, start: int = 0) -> list[int]:
    """``n`` page views, each followed by its beacon; every request on a new connection, so the
    kernel spreads pages and beacons over the workers independently (a beacon usually reaches
    another worker than the one that served its page). Returns the beacons' status codes."""
    statuses = []
    for i in range(start, start + n):
        ua = f"{MOBILE_UA} shopper/{i}"
        page = httpx.get(edge.url + "/", headers={"User-Agent": ua, "Connection": "close"}, timeout=10, trust_env=False)
        assert page.status_code == 200, page.text[:300]
        token = page.headers["edge-token"]
        body = _slow(token) if i % 3 else _fast(token)
        beacon = httpx.post(
            edge.url + "/__edge/beacon",
            content=body,
            headers={"Content-Type": "text/plain;charset=UTF-8", "User-Agent": ua, "Connection": "close"},
            timeout=10,
            trust_env=False,
        )
        statuses.append(beacon.status_code)
    return statuses


def _workers_models(admin_url: str, workers: int = 2, attempts: int = 200) -> dict[int, tuple[int, dict]]:
    """``{worker index: (pid, GET /admin/model)}`` for every worker, asking on new connections until
    each has answered (the kernel picks the worker; ``Edge-Worker`` says which one it was)."""
    seen: dict[int, tuple[int, dict]] = {}
    for _ in range(attempts):
        response = httpx.get(admin_url + "/admin/model", headers={"Connection": "close"}, timeout=10, trust_env=False)
        assert response.status_code == 200
        match = re.fullmatch(r"index=(\d+), pid=(\d+)", response.headers.get("edge-worker", ""))
        assert match, f"no Edge-Worker header on /admin/model: {response.headers}"
        # The model's part of /admin/model: tier_refusals are this process's page counts, not checkpointed.
        model = {k: v for k, v in response.json().items() if k != "tier_refusals"}
        seen.setdefault(int(match.group(1)), (int(match.group(2)), model))
        if len(seen) == workers:
            return seen
    raise AssertionError(f"only workers {sorted(seen)} answered {attempts} new connections")


def _metric(admin_url: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` on ``/metrics`` whose labels include ``labels``."""
    text = httpx.get(admin_url + "/metrics", timeout=10, trust_env=False).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _per_pid(metrics_dir: Path, name: str, label: str = "") -> dict[int, float]:
    """Counter ``name`` per worker pid (samples whose key contains ``label``), from the workers' own files."""
    out: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if f'"{name}"' in key and label in key:
                out[pid] = out.get(pid, 0.0) + value
    return out


def test_two_workers_learn_each_beacon_exactly_once_between_them(stack, launch_edge, tmp_path):
    # No EDGE_FEEDBACK_KEY: the workers must still accept each other's tokens (one shared random key).
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    edge = launch_edge(stack.storefront_url, "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, name="edge-2w-learn")
    pids = {pid for pid, _ in _workers_models(edge.admin_url).values()}
    assert len(pids) == 2 and edge.pid not in pids, pids  # two worker processes, neither the supervisor

    statuses = _send_feedback(edge, 40)
    assert statuses == [204] * 40, f"beacons refused: {sorted(set(statuses))}"
    assert _total(edge.admin_url, "edge_feedback_rejected_total") == 0

    # Each accepted beacon was learned once, by one worker: whichever worker answers the scrape,
    # the summed counter is the number of beacons.
    assert {_total(edge.admin_url, "edge_labels_total") for _ in range(6)} == {40.0}
    per_pid = _per_pid(metrics_dir, "edge_labels_total")
    models = _workers_models(edge.admin_url)
    assert set(per_pid) == {pid for pid, _ in models.values()}, (per_pid, models)
    assert sum(per_pid.values()) == 40
    # Both learned, and each worker's model saw exactly the labels its own counter counted.
    for index, (pid, state) in models.items():
        assert state["labels"] == per_pid[pid] > 0, (index, pid, state, per_pid)
    assert sum(state["labels"] for _, state in models.values()) == 40
    assert sum(state["positives"] for _, state in models.values()) == _metric(edge.admin_url, "edge_labels_total", label="degraded")

    edge.proc.popen.send_signal(signal.SIGTERM)
    assert edge.proc.popen.wait(timeout=30) == 0, edge.proc.logs()


@pytest.mark.parametrize("key", [FEEDBACK_KEY, None], ids=["feedback-key", "no-key"])
def test_each_worker_checkpoints_its_own_model_and_restores_it_by_index(stack, launch_edge, tmp_path, key):
    # Without a key the workers' shared random key changes at restart: checkpoints must not depend on it.
    from edge.learning.model import ChampionChallenger

    ckpt = tmp_path / "model.ckpt"
    env = {
        **({"EDGE_FEEDBACK_KEY": key} if key else {}),
        "EDGE_CHECKPOINT": str(ckpt),
        "EDGE_CHECKPOINT_INTERVAL_S": "3600",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    first = launch_edge(stack.storefront_url, "--workers", "2", env=env, name="edge-2w-ckpt-1")
    statuses = _send_feedback(first, 30)
    assert statuses == [204] * 30, statuses
    models = _workers_models(first.admin_url)
    # Two different models, so that a worker restoring the other's checkpoint would show.
    extra = 30
    while models[0][1]["labels"] == models[1][1]["labels"] and extra < 40:
        assert _send_feedback(first, 1, start=extra) == [204]
        extra += 1
        models = _workers_models(first.admin_url)
    before = {index: state for index, (_, state) in models.items()}
    assert before[0] != before[1], before
    assert before[0]["labels"] > 0 and before[1]["labels"] > 0, before
    assert before[0]["labels"] + before[1]["labels"] == extra
    assert not list(tmp_path.glob("model.ckpt*")), "the periodic checkpoint (every hour) should not have run yet"

    first.proc.popen.send_signal(signal.SIGTERM)
    assert first.proc.popen.wait(timeout=30) == 0, first.proc.logs()
    # One file per worker index, none under the bare name; each holds that worker's model.
    assert sorted(p.name for p in tmp_path.glob("model.ckpt*")) == ["model.ckpt.0", "model.ckpt.1"]
    for index in (0, 1):
        saved = ChampionChallenger.load(tmp_path / f"model.ckpt.{index}", key=key.encode() if key else None)
        assert saved.snapshot() == before[index], index

    # Same settings again: each worker restores the checkpoint of its own index.
    second = launch_edge(stack.storefront_url, "--workers", "2", env=env, name="edge-2w-ckpt-2")
    after = {index: state for index, (_, state) in _workers_models(second.admin_url).items()}
    assert after == before
    logs = second.proc.logs()
    for index in (0, 1):
        assert f"model restored from {ckpt}.{index}" in logs, logs
    assert _metric(second.admin_url, "edge_model_checkpoints_total", result="loaded") == 2
    assert _metric(second.admin_url, "edge_model_checkpoints_total", result="failed") == 0

    second.proc.popen.send_signal(signal.SIGTERM)
    assert second.proc.popen.wait(timeout=30) == 0, second.proc.logs()
