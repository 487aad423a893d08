"""loadtests/floor_proxy.py, bench.py's reference rows: the floor splices its fixed snippet; with ``--edge-work``
it does edge's per-page work through edge's own objects, so its pages carry what edge's full tier carries:
a genuine token (one edge's signer verifies), the switch link back to the page, edge's headers, and the
page counted in edge's counters."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edge.learning.tokens import TokenSigner

ROOT = Path(__file__).resolve().parents[2]
HINTS_4G = {"ECT": "4g", "RTT": "50", "Downlink": "10"}

pytestmark = pytest.mark.integration


def _free_port() -> int:
    sys.path.insert(0, str(ROOT / "loadtests"))
    import bench

    return bench.free_port()


def _get(port: int, target: str = "/") -> tuple[dict[str, str], bytes]:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{target}", headers=HINTS_4G), timeout=10) as r:
                return {k.lower(): v for k, v in r.headers.items()}, r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def storefront():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge.runtime.cli", "storefront", "--port", str(port), "--log-level", "warning"])
    try:
        _get(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _floor(shop: int, *flags: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "loadtests" / "floor_proxy.py"), str(shop), str(port), *flags])
    return proc, port


def test_the_floor_alone_splices_its_fixed_snippet_and_decides_nothing(storefront):
    proc, port = _floor(storefront)
    try:
        headers, body = _get(port)
        direct = _get(storefront)[1]
        assert b"/__edge/switch" in body and "edge-tier" not in headers and "edge-token" not in headers
        assert len(body) == int(headers["content-length"]) > len(direct)
    finally:
        proc.terminate()
        proc.wait(10)


def test_with_edge_work_each_page_carries_edge_full_tier_token_link_and_headers(storefront):
    proc, port = _floor(storefront, "--edge-work")
    try:
        first, page = _get(port, "/?q=1")
        second, _ = _get(port, "/?q=1")
        assert first["edge-tier"] == "full" and "accept-ch" in first and 'edge;desc="full/' in first["server-timing"]
        assert first["via"] == "1.1 edge" and len(page) == int(first["content-length"])
        # The token is edge's: signed with the key the floor's edge was built with, its features and tier inside.
        payload = TokenSigner([b"bench-key-0123456789abcdef"]).verify(first["edge-token"], now=time.time())
        assert payload["d"] == "full" and payload["x"]["ect"] == "4g" and payload["u"] > 0
        assert first["edge-token"] != second["edge-token"]  # a nonce per page: each page decided and signed anew
        assert first["edge-token"].encode() in page and b"/__edge/tier/lite?next=/%3Fq%3D1" in page
    finally:
        proc.terminate()
        proc.wait(10)
