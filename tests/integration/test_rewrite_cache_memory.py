"""The rewrite cache's bound holds whatever pages arrive (issue 19, item 4).

A real ``edge serve --rewrite-cache-bytes 1048576`` in front of an upstream whose every URL is a
different page (``tests/integration/distinct_pages.py``: the dynamic demo storefront's ~135 KB home
page, with its per-request CSRF tokens, nonces, cart and recently viewed items, at any path) gets
2,000 lite requests, each at a new path with a different shopper cookie: 2,000 distinct cache keys,
~300 MB of pages and layouts if nothing were evicted, so the cache misses and evicts all the time.
Its VmRSS after the run must be within 20 MiB of its VmRSS after the first 300 requests. No timing
is asserted.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import HOST, Proc, _wait_until, free_port, vm_rss_kib
from tests.integration.test_learning_loop import metric

pytestmark = pytest.mark.integration

CACHE_BYTES = 1 << 20
REQUESTS = 2_000
WARMUP = 300
GROWTH_BOUND_MIB = 20
SCRIPT = Path(__file__).resolve().parent / "distinct_pages.py"


@pytest.fixture(scope="module")
def distinct_pages(integration_logs: Path):
    port = free_port()
    log_path = integration_logs / "distinct-pages.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--host", HOST, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    proc = Proc("distinct-pages", popen, log_path)
    url = f"http://{HOST}:{port}"
    try:
        _wait_until(url + "/", [proc], time.monotonic() + 30)
        yield url
    finally:
        proc.stop()


def test_a_flood_of_distinct_dynamic_pages_keeps_rss_within_the_caches_bound(distinct_pages, start_edge):
    edge = start_edge(distinct_pages, "--rewrite-cache-bytes", str(CACHE_BYTES), "--fail-mode", "open", name="edge-cache-memory")
    rng = random.Random(19)
    rss_after_warmup = None
    tiers: dict[str, int] = {}
    with httpx.Client(timeout=10, trust_env=False) as client:
        for i in range(REQUESTS):
            cookie = f"cart={rng.randrange(1, 9)}.{rng.randrange(1, 60)}; recent={'.'.join(str(rng.randrange(1, 61)) for _ in range(3))}"
            response = client.get(f"{edge.url}/page/{i}/{rng.randrange(1 << 30)}", headers={"ECT": "2g", "Cookie": cookie})
            assert response.status_code == 200
            tiers[response.headers["edge-tier"]] = tiers.get(response.headers["edge-tier"], 0) + 1
            if i + 1 == WARMUP:
                rss_after_warmup = vm_rss_kib(edge.pid)
    rss_end = vm_rss_kib(edge.pid)
    misses = metric(edge.admin_url, "edge_rewrite_cache_total", result="miss")
    hits = metric(edge.admin_url, "edge_rewrite_cache_total", result="hit")
    print(f"tiers {tiers}; cache hits {hits:.0f}, misses {misses:.0f}; VmRSS {rss_after_warmup} → {rss_end} KiB")
    assert tiers.get("lite", 0) + tiers.get("minimal", 0) == REQUESTS  # every page was laid out (or filled)
    assert misses >= REQUESTS  # every page new: nothing to reuse (each miss may also try a template)
    assert rss_after_warmup is not None
    growth_mib = (rss_end - rss_after_warmup) / 1024
    assert growth_mib <= GROWTH_BOUND_MIB, f"VmRSS grew {growth_mib:.1f} MiB after the first {WARMUP} requests"
