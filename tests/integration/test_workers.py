"""``edge serve --workers 2``: two processes behind one port, metrics summed across them."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

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
