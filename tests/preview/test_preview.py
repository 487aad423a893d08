"""``edge preview`` end to end: the real command, real storefront processes, Debian's Chromium.

Figures are compared within one run (lite against full on the same emulated network), never
against a wall-clock threshold: the machine is shared and its speed varies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.preview.report import sheet_width

pytestmark = pytest.mark.integration

EDGE = str(Path(sys.executable).parent / "edge")
ROOT = Path(__file__).resolve().parents[2]
TIERS = ["full", "lite", "minimal"]


def _preview(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE, "preview", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_the_demo_home_page_lite_is_lighter_and_loads_sooner_on_regular_2g(demo_storefront, chromium_bin, tmp_path):
    out = tmp_path / "preview"
    done = _preview(f"{demo_storefront}/", "--policy", "policies/demo.toml", "--out", str(out), "--profile", "regular2g", "--chromium", chromium_bin)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["columns"] == TIERS and report["error"] is None
    # The sheet: one column per tier, a first screen and a whole page in each.
    width, height = _png_size(out / "preview.png")
    assert width == sheet_width(len(TIERS)) and height > 915 * 0.6
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1  # the sheet, embedded: the report opens offline
    for label in ("bytes transferred", "requests", "first contentful paint", "largest contentful paint", "load", "Regular 2G", *TIERS):
        assert label in html
    loads = {tier: report["tiers"][tier]["loads"]["regular2g"] for tier in TIERS}
    for tier, load in loads.items():
        assert load["error"] is None, (tier, load)
        assert load["bytes"] > 0 and load["requests"] >= 1 and load["fcp_ms"] and load["lcp_ms"] and load["load_ms"], (tier, load)
    full, lite = loads["full"], loads["lite"]
    assert lite["bytes"] <= 0.30 * full["bytes"], (lite["bytes"], full["bytes"])
    assert lite["load_ms"] < full["load_ms"], (lite["load_ms"], full["load_ms"])
    # The widgets per tier come from the policy: lite drops the carousel, minimal the footer too.
    assert "carousel" in report["tiers"]["full"]["widgets"]["kept"]
    assert "carousel" in report["tiers"]["lite"]["widgets"]["dropped"] and "footer" in report["tiers"]["lite"]["widgets"]["kept"]
    assert "footer" in report["tiers"]["minimal"]["widgets"]["dropped"]
    # The terminal: a progress line per step, then the table with a row per tier.
    assert "[1/6] full on Regular 2G" in done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert [r[-6] for r in rows if len(r) >= 6 and r[-6] in TIERS] == TIERS


def test_a_tier_that_never_loads_is_reported_in_its_cell(stall_shop, chromium_bin, tmp_path):
    out = tmp_path / "preview"
    policy = Path(__file__).with_name("stall_policy.toml")
    done = _preview(f"{stall_shop}/", "--policy", str(policy), "--out", str(out), "--profile", "4g", "--timeout", "5", "--chromium", chromium_bin)
    assert done.returncode == 1, done.stdout + done.stderr  # something failed: said by the exit status…
    assert "Traceback" not in done.stderr
    report = json.loads((out / "report.json").read_text())  # …and every output is still written
    assert report["columns"] == TIERS
    lite = report["tiers"]["lite"]
    assert "no load event within 5 s" in lite["loads"]["4g"]["error"]
    assert lite["screenshot_error"] and "no load event" in lite["screenshot_error"]
    for tier in ("full", "minimal"):
        load = report["tiers"][tier]["loads"]["4g"]
        assert load["error"] is None and load["load_ms"], (tier, load)
    assert _png_size(out / "preview.png")[0] == sheet_width(3)
    assert "no load event within 5 s" in (out / "report.html").read_text()
    assert "lite     FAILED: no load event within 5 s" in done.stdout
    assert "failed: lite on 4G: no load event within 5 s" in done.stderr


def test_an_unreachable_url_is_reported_not_raised(chromium_bin, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    done = _preview(url, "--out", str(tmp_path), "--chromium", chromium_bin)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: cannot fetch {url}" in done.stdout
    assert "cannot fetch" in (tmp_path / "report.html").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["error"].startswith("cannot fetch")


def test_a_page_that_is_not_html_is_reported_not_raised(stall_shop, chromium_bin, tmp_path):
    done = _preview(f"{stall_shop}/img/a.png", "--out", str(tmp_path), "--chromium", chromium_bin)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "is not an HTML page (Content-Type: image/png)" in done.stdout


def test_a_broken_policy_gives_the_same_error_as_edge_policy_check(tmp_path):
    broken = tmp_path / "shop.toml"
    broken.write_text('[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "hide"\n')
    check = subprocess.run([EDGE, "policy", "check", str(broken)], capture_output=True, text=True, timeout=120)
    preview = _preview("http://127.0.0.1:9/", "--policy", str(broken), "--out", str(tmp_path / "out"), timeout=120)
    assert check.returncode == preview.returncode == 1
    assert check.stderr.strip() == preview.stderr.strip()
    assert "widgets[0].lite" in preview.stderr and "'hide'" in preview.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran
