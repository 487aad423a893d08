"""End-to-end fixtures: a real headless Chromium, driven over the DevTools protocol, in front of a real edge.

Chromium is Debian's ``chromium`` package (installed by ``scripts/system-deps.sh``). It is driven
by speaking the DevTools protocol (CDP) over a websocket (:class:`edge.preview.browser.CDP`, the
session ``edge preview`` uses too) with the ``websockets`` package that uvicorn[standard] already
brings: no browser download, no driver binary whose protocol must match the installed Chromium,
and the few CDP calls these tests need (network emulation, navigation, network events,
screenshots) are stable, documented protocol methods.

- ``chromium_bin`` (session): the browser's path; the tests are skipped only if it is not installed.
- ``e2e_stack`` (module): the demo storefront and one ``edge serve`` in front of it, real processes
  started with the integration suite's helpers (``tests/integration/conftest.py``).
- ``browser`` (function): a fresh headless Chromium (its own ``--user-data-dir``) → :class:`Browser`;
  ``browser.new_page()`` opens a tab in a new, isolated browser context (no shared cookies or cache).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.preview.browser import CDP, CHROMIUM_CANDIDATES, CDPError, Chromium

# The integration suite's process helpers (spawning `edge`, waiting for readiness, free ports), reused as a module.
_spec = importlib.util.spec_from_file_location("edge_integration_helpers", Path(__file__).resolve().parents[1] / "integration" / "conftest.py")
helpers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = helpers  # dataclasses look their module up there
_spec.loader.exec_module(helpers)  # type: ignore[union-attr]

@pytest.fixture(scope="session")
def chromium_bin() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.skip("chromium not found (Debian package `chromium`; `bash scripts/system-deps.sh` installs it)")


@dataclass
class E2EStack:
    storefront_url: str
    edge: Any  # helpers.EdgeProc
    procs: list[Any]

    @property
    def edge_url(self) -> str:
        return self.edge.url

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` on edge's ``/metrics`` whose labels include ``labels``."""
        text = httpx.get(self.edge.admin_url + "/metrics", timeout=5, trust_env=False).text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def wait_metric(self, name: str, at_least: float, timeout: float = 10.0, **labels: str) -> float:
        deadline = time.monotonic() + timeout
        value = self.metric(name, **labels)
        while value < at_least and time.monotonic() < deadline:
            time.sleep(0.1)
            value = self.metric(name, **labels)
        return value


@pytest.fixture(scope="module")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    log_dir = tmp_path_factory.mktemp("edge-e2e")
    port = helpers.free_port()
    url = f"http://{helpers.HOST}:{port}"
    storefront = helpers._spawn("storefront", ["storefront", "--host", helpers.HOST, "--port", str(port), "--log-level", "warning"], log_dir)
    launcher = helpers.EdgeLauncher(log_dir)
    try:
        edge = launcher(url, name="edge-e2e")
        try:
            helpers._wait_until(url + "/", [storefront], time.monotonic() + helpers.START_DEADLINE_S)
        except helpers._StartFailed as exc:
            pytest.fail(str(exc), pytrace=False)
        yield E2EStack(url, edge, [storefront, *launcher.procs])
    finally:
        launcher.stop_all()
        storefront.stop()


@dataclass
class Load:
    """What one navigation saw: the document's status and headers, the beacon edge answered, timings."""

    status: int
    headers: dict[str, str]  # lower-cased names
    beacon_body: dict[str, Any] | None
    beacon_status: int | None
    seconds: float


class Page:
    """A tab in its own browser context, with the Network and Page domains on."""

    def __init__(self, browser: Browser, context_id: str, cdp: CDP) -> None:
        self.browser = browser
        self.context_id = context_id
        self.cdp = cdp
        self.cdp.send("Page.enable")
        self.cdp.send("Network.enable")
        self.cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})  # each load measures the network

    def set_user_agent(self, ua: str) -> None:
        self.cdp.send("Network.setUserAgentOverride", {"userAgent": ua})

    def emulate_network(self, *, latency_ms: float, down_bytes_s: float, up_bytes_s: float) -> None:
        self.cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": latency_ms, "downloadThroughput": down_bytes_s, "uploadThroughput": up_bytes_s},
        )

    def load(self, url: str, *, beacon_path: str = "/__edge/beacon", timeout: float = 40.0) -> Load:
        """Navigate to ``url``; wait for the load event and for the page's beacon to be answered."""
        since = len(self.cdp.events)
        started = time.monotonic()
        frame = self.cdp.send("Page.navigate", {"url": url})
        if frame.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {frame['errorText']}")
        loader = frame.get("loaderId")
        self.cdp.wait_for(lambda e: e["method"] == "Page.loadEventFired", timeout, since, "load event")
        doc = self.cdp.wait_for(
            lambda e: e["method"] == "Network.responseReceived" and e["params"].get("type") == "Document" and e["params"].get("loaderId") == loader,
            5, since, "document response",
        )["params"]["response"]
        sent = self.cdp.wait_for(
            lambda e: e["method"] == "Network.requestWillBeSent" and e["params"]["request"]["url"].endswith(beacon_path),
            15, since, "beacon request",
        )["params"]
        request_id = sent["requestId"]
        done = self.cdp.wait_for(
            lambda e: e["params"].get("requestId") == request_id and e["method"] in ("Network.responseReceived", "Network.loadingFailed"),
            15, since, "beacon response",
        )
        seconds = time.monotonic() - started
        body = sent["request"].get("postData")
        status = done["params"]["response"]["status"] if done["method"] == "Network.responseReceived" else None
        return Load(
            int(doc["status"]),
            {k.lower(): v for k, v in doc["headers"].items()},
            json.loads(body) if body else None,
            status,
            seconds,
        )

    def evaluate(self, expression: str) -> Any:
        result = self.cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CDPError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, *, width: int = 412, settle_s: float = 10.0) -> Path:
        """A PNG of the whole page as a phone shows it, with its images loaded.

        The network emulation is lifted and the viewport made as tall as the page, so lazy images
        load too; then it waits (up to ``settle_s``) for every image to finish before capturing.
        """
        self.cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        height = 915
        for _ in range(3):  # lay the page out at the phone's width, then grow the viewport to the page's height
            self.cdp.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
            needed = max(200, min(int(self.evaluate("document.documentElement.scrollHeight")), 8000))
            if needed == height:
                break
            height = needed
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and not self.evaluate("[...document.images].every(i => i.complete)"):
            time.sleep(0.1)
        shot = self.cdp.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        self.cdp.close()


class Browser(Chromium):
    """A headless Chromium (the launcher ``edge preview`` uses: :class:`edge.preview.browser.Chromium`)
    whose tabs are :class:`Page` objects, each in its own browser context."""

    def __init__(self, executable: str, profile: Path, log_path: Path) -> None:
        super().__init__(executable, profile, log_path)
        self.pages: list[Page] = []

    def new_page(self) -> Page:
        tab, context = self.new_tab()
        page = Page(self, context, tab)
        self.pages.append(page)
        return page

    def stop(self) -> None:
        for page in self.pages:
            try:
                page.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        super().stop()


@pytest.fixture
def browser(chromium_bin: str, tmp_path: Path) -> Iterator[Browser]:
    instance = Browser(chromium_bin, tmp_path / "chromium-profile", tmp_path / "chromium.log")
    try:
        yield instance
    finally:
        instance.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """A failing test's report carries edge's log, the storefront's and the browser's."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        stack = funcargs.get("e2e_stack")
        if isinstance(stack, E2EStack):
            for proc in stack.procs:
                report.sections.append((f"log of {proc.name} (rc {proc.popen.poll()})", proc.logs()))
        chrome = funcargs.get("browser")
        if isinstance(chrome, Browser):
            report.sections.append(("log of chromium", chrome.logs()))
    return report
