"""Memory bounded under abuse (issue 8, item 5), with a smaller count than the benchmark.

A real ``edge serve`` (``EDGE_MAX_CELLS=2000``) in front of the demo storefront gets 20,000
requests that each look like a new client: random cell ids, random cookies (``edge_m`` garbage,
random ``edge_tier``), random and mutated User-Agents, forged, garbage, replayed and genuine
``Edge-Last-Request`` tokens, and garbage beacons (``loadtests/bench_memory.py`` builds them;
``python loadtests/bench_memory.py`` is the same at 200,000). The per-cell table must fill, cycle
and never pass its bound, and the sidecar's VmRSS after the run must be within 30 MiB of its VmRSS
after the first 1,000 requests. No timing is asserted.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "loadtests"))
import bench_memory  # noqa: E402

pytestmark = pytest.mark.integration

REQUESTS = 20_000
MAX_CELLS = 2_000
GROWTH_BOUND_MIB = 30


@pytest.fixture(scope="module")
def bounded_edge(stack, integration_logs: Path):
    """``edge serve`` in front of the shared demo storefront with ``EDGE_MAX_CELLS=2000``.

    (The ``start_edge`` factory clears every ``EDGE_*`` variable and ``max_cells`` has no flag, so
    this edge is started with the environment the benchmark uses.)
    """
    proc, port, admin_port = bench_memory.start_edge(
        stack.storefront_url, integration_logs / "edge-bounded.log", bench_memory.edge_env(MAX_CELLS), "--fail-mode", "open"
    )
    try:
        yield proc, port, admin_port
    finally:
        bench_memory.stop(proc)


def test_memory_stays_bounded_under_random_clients(bounded_edge, integration_logs: Path):
    proc, port, admin_port = bounded_edge
    try:
        result = asyncio.run(bench_memory.abuse(port, admin_port, proc.pid, REQUESTS, concurrency=8, seed=7))
    except Exception:
        print((integration_logs / "edge-bounded.log").read_text(errors="replace")[-5000:])
        raise
    print(result.summary())
    print("VmRSS samples (requests, KiB):", result.rss_samples)

    assert proc.poll() is None, "edge died under abuse"
    assert result.requests == REQUESTS
    assert not any(status >= 500 for status in result.statuses), result.statuses
    # The abuse did reach the bounded tables: the cell table filled and cycled, the guard was used.
    assert result.tables_max["cells"] == MAX_CELLS, result.tables_max
    assert result.tables_end["cells"] <= MAX_CELLS
    assert result.tables_max["replay_guard"] > 0
    assert sum(result.labels.values()) > MAX_CELLS, result.labels  # many more cells seen than kept
    assert result.feedback_rejected["forged"] > 0 and result.feedback_rejected["malformed"] > 0
    growth_mib = result.growth_kib / 1024
    assert growth_mib <= GROWTH_BOUND_MIB, (
        f"edge's VmRSS grew {growth_mib:.1f} MiB after the first 1,000 requests "
        f"({result.rss_kib_after_1000} → {result.rss_kib_end} KiB)"
    )
