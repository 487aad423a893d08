"""One page load in a fresh Chromium tab on an emulated network, and the figures a shopper would feel.

:func:`measure_load` opens a tab in its own browser context (no cache, no cookies), sets a phone's
viewport and DevTools network emulation (latency, down- and uplink from
:data:`edge.core.networks.PROFILES`), navigates, and reads:

- ``bytes`` and ``requests``: every response finished by the ``load`` event, as transferred
  (headers included, compressed bodies as sent);
- ``fcp_ms``, ``lcp_ms``: first and largest contentful paint (Paint Timing, Largest Contentful Paint);
- ``load_ms``: the ``load`` event, from navigation start (Navigation Timing).

A load that fails (navigation error, no ``load`` event within the timeout) is a :class:`Load` with
``error`` set and whatever was measured until then. :func:`screenshots` captures the tier unthrottled.

    >>> Load(bytes=1024, requests=3, fcp_ms=120.0, lcp_ms=None, load_ms=300.0).ok
    True
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from edge.core.networks import Profile
from edge.preview.browser import CDP, CDPError, Chromium

__all__ = ["Load", "PHONE", "measure_load", "render_png", "screenshots"]

#: The phone every tier is shown on: a 412×915 CSS-pixel viewport (a Pixel-class Android phone).
PHONE = {"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": True}
#: The full-page screenshot stops here (a very long page would make an enormous image).
MAX_PAGE_HEIGHT = 6000

# The LCP candidate is only observable with a PerformanceObserver; installing it before the page's
# own scripts run (buffered, too) sees every candidate.
_OBSERVE_LCP = """
window.__edgePreviewLcp = null;
try {
  new PerformanceObserver(list => {
    for (const entry of list.getEntries()) window.__edgePreviewLcp = entry.startTime;
  }).observe({type: "largest-contentful-paint", buffered: true});
} catch (e) {}
"""
_TIMINGS = """JSON.stringify({
  fcp: (performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime ?? null,
  lcp: window.__edgePreviewLcp,
  load: (performance.getEntriesByType("navigation")[0] || {}).loadEventStart || null,
})"""


@dataclass
class Load:
    """What one load of one tier on one network measured."""

    bytes: int
    requests: int
    fcp_ms: float | None
    lcp_ms: float | None
    load_ms: float | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _evaluate(tab: CDP, expression: str) -> Any:
    result = tab.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
    if "exceptionDetails" in result:
        raise CDPError(f"{expression[:40]}…: {result['exceptionDetails'].get('text')}")
    return result["result"].get("value")


def _open(browser: Chromium, profile: Profile | None) -> tuple[CDP, str]:
    tab, context = browser.new_tab()
    tab.send("Page.enable")
    tab.send("Network.enable")
    tab.send("Network.setCacheDisabled", {"cacheDisabled": True})  # every load pays for every byte
    tab.send("Emulation.setDeviceMetricsOverride", PHONE)
    tab.send("Page.addScriptToEvaluateOnNewDocument", {"source": _OBSERVE_LCP})
    if profile is not None:
        tab.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": profile.rtt_ms,
                "downloadThroughput": profile.downlink_kbps * 1000 / 8,  # bytes per second
                "uploadThroughput": profile.uplink_kbps * 1000 / 8,
            },
        )
    return tab, context


def _navigate(tab: CDP, url: str, timeout: float) -> tuple[int, str | None]:
    """Navigate and wait for ``load``: (index of the load event, or of the last event seen; the error or None)."""
    since = len(tab.events)
    try:
        frame = tab.send("Page.navigate", {"url": url}, timeout=timeout)
    except (CDPError, TimeoutError) as exc:
        return len(tab.events), f"navigation failed: {exc}"
    if frame.get("errorText"):
        return len(tab.events), f"navigation failed: {frame['errorText']}"
    try:
        tab.wait_for(lambda e: e["method"] == "Page.loadEventFired", timeout, since, "load event")
    except TimeoutError as exc:
        return len(tab.events), str(exc)
    document = next(
        (e["params"]["response"] for e in tab.events[since:] if e["method"] == "Network.responseReceived" and e["params"].get("type") == "Document"),
        None,
    )
    if document is not None and int(document["status"]) >= 400:
        return len(tab.events), f"HTTP {document['status']}"
    return len(tab.events), None


def _settle(tab: CDP, since: int, seconds: float, quiet_s: float = 0.5) -> None:
    """Read events until no request has been in flight for ``quiet_s`` (for at most ``seconds``).

    Lazy images in the first screen start only once the page is laid out, often after ``load``, and
    DevTools reports a response's last bytes on the network's own channel, sometimes after the
    renderer's ``load`` event: what the shopper downloads for the first screen is counted once the
    network has gone quiet.
    """
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    while (remaining := deadline - time.monotonic()) > 0:
        started, ended = set(), set()
        for e in tab.events[since:]:
            if e["method"] == "Network.requestWillBeSent":
                started.add(e["params"]["requestId"])
            elif e["method"] in ("Network.loadingFinished", "Network.loadingFailed"):
                ended.add(e["params"]["requestId"])
        if not started <= ended:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        tab.drain(min(0.1, remaining))


def _transfers(events: list[dict[str, Any]]) -> tuple[int, int]:
    """(bytes, requests) of the page's own http(s) requests (edge's beacon left out: it goes after ``load``)."""
    urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"}
    fetched = {rid for rid, u in urls.items() if u.startswith(("http:", "https:")) and "/__edge/" not in u}
    transferred = sum(
        int(e["params"]["encodedDataLength"]) for e in events
        if e["method"] == "Network.loadingFinished" and e["params"]["requestId"] in fetched
    )  # fmt: skip
    return transferred, len(fetched)


def measure_load(browser: Chromium, url: str, profile: Profile | None, timeout: float, settle_s: float = 10.0) -> Load:
    """Load ``url`` once on ``profile`` (None: no emulation) in a fresh context; never raises for the page's sake."""
    tab, context = _open(browser, profile)
    try:
        since = len(tab.events)
        _, error = _navigate(tab, url, timeout)
        _settle(tab, since, settle_s if error is None else 0.0)
        transferred, requests = _transfers(tab.events[since:])
        timings: dict[str, Any] = {}
        deadline = time.monotonic() + (settle_s if error is None else 0.0)
        while True:  # paint entries can be reported a moment after ``load`` on a fast page
            try:
                timings = json.loads(_evaluate(tab, _TIMINGS) or "{}")
            except (CDPError, TimeoutError, ValueError) as exc:
                error = error or f"no timings: {exc}"
                break
            if (timings.get("fcp") is not None and timings.get("lcp") is not None) or time.monotonic() > deadline:
                break
            tab.drain(0.1)
        return Load(transferred, requests, timings.get("fcp"), timings.get("lcp"), timings.get("load"), error)
    finally:
        browser.close_tab(tab, context)


def screenshots(browser: Chromium, url: str, timeout: float, settle_s: float = 10.0) -> tuple[bytes, bytes] | str:
    """PNGs of ``url`` on the phone, unthrottled: (above the fold, the whole page); or the error."""
    tab, context = _open(browser, None)
    try:
        since = len(tab.events)
        _, error = _navigate(tab, url, timeout)
        if error:
            return error
        _settle(tab, since, settle_s)  # the first screen's lazy images are in the picture
        fold = base64.b64decode(tab.send("Page.captureScreenshot", {"format": "png"})["data"])
        height = PHONE["height"]
        for _ in range(3):  # lay the page out at the phone's width, then grow the viewport to the page's height
            needed = max(200, min(int(_evaluate(tab, "document.documentElement.scrollHeight") or 0), MAX_PAGE_HEIGHT))
            if needed == height:
                break
            height = needed
            tab.send("Emulation.setDeviceMetricsOverride", {**PHONE, "height": height})
        deadline = time.monotonic() + settle_s  # lazy images below the fold start once the viewport reaches them
        while time.monotonic() < deadline and not _evaluate(tab, "[...document.images].every(i => i.complete)"):
            time.sleep(0.1)
        whole = base64.b64decode(tab.send("Page.captureScreenshot", {"format": "png"})["data"])
        return fold, whole
    except (CDPError, TimeoutError) as exc:
        return f"screenshot failed: {exc}"
    finally:
        browser.close_tab(tab, context)


def render_png(browser: Chromium, document: str, width: int) -> bytes:
    """A PNG of the HTML ``document`` laid out ``width`` pixels wide, as tall as it is (the preview's sheet)."""
    tab, context = browser.new_tab()
    try:
        tab.send("Page.enable")
        frame = tab.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
        tab.send("Page.setDocumentContent", {"frameId": frame, "html": document})
        _evaluate(tab, "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(() => true)")
        tab.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 600, "deviceScaleFactor": 1, "mobile": False})
        height = int(_evaluate(tab, "document.documentElement.scrollHeight") or 600)
        tab.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return base64.b64decode(tab.send("Page.captureScreenshot", {"format": "png"})["data"])
    finally:
        browser.close_tab(tab, context)
