"""Browsing helpers for tests/storefronts: a shopper in headless Chromium, every document hop recorded.

Reuses the e2e suite's DevTools helpers (``tests/e2e/conftest.py``: Browser, Page, CDP) and,
through them, the integration suite's process helpers (``tests/integration/conftest.py``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: The Django shop's one shopper (created by ``python -m djangoshop.bootstrap``).
USERNAME, PASSWORD = "alice", "correct-horse-battery"


def _load(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


#: The e2e suite's DevTools helpers (Browser, Page, CDP) and, through it, the integration suite's
#: process helpers (Proc, free_port, EdgeProc).
e2e = _load("edge_storefronts_e2e_helpers", ROOT / "tests" / "e2e" / "conftest.py")
helpers = e2e.helpers


@dataclass
class Hop:
    """One document request of a navigation: a form's POST, the redirect's GET…"""

    method: str
    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names

    @property
    def path(self) -> str:
        return "/" + self.url.split("/", 3)[3] if self.url.count("/") >= 3 else "/"


@dataclass
class Visit:
    hops: list[Hop]

    @property
    def final(self) -> Hop:
        return self.hops[-1]


#: The network client hints a browser sends once a site asks for them (edge's ``Accept-CH``).
NETWORK_HINTS = frozenset({"ect", "rtt", "downlink"})


class Shopper:
    """A tab in its own browser context (own cookies) that shops at ``base_url``.

    ``hints`` are the network client hints the tab sends with *every* request, in place of the
    ones Chromium measured on loopback: ``{"ECT": "2g"}`` is a browser on a 2G connection.
    They are set by intercepting each request (DevTools ``Fetch`` domain), because Chromium
    recomputes client hints on a redirect's hop from its own network estimate, ignoring both
    ``Network.setExtraHTTPHeaders`` and ``Network.emulateNetworkConditions``: with those, the page
    a form's redirect lands on would claim 4G.
    """

    def __init__(self, browser: Any, base_url: str, hints: dict[str, str] | None = None) -> None:
        self.page = browser.new_page()
        self.base = base_url
        self.visits: list[Visit] = []
        self.hints = dict(hints or {})
        if self.hints:
            cdp = self.page.cdp
            receive = cdp._receive

            def receive_and_continue(timeout: float) -> dict[str, Any]:
                message = receive(timeout)
                if message.get("method") == "Fetch.requestPaused":
                    self._continue(message["params"])
                return message

            cdp._receive = receive_and_continue
            cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})

    def _continue(self, paused: dict[str, Any]) -> None:
        """Let a paused request go on with this tab's network hints (no wait for the reply)."""
        headers = {k: v for k, v in paused["request"]["headers"].items() if k.lower() not in NETWORK_HINTS}
        headers.update(self.hints)
        cdp = self.page.cdp
        cdp._id += 1
        params = {"requestId": paused["requestId"], "headers": [{"name": k, "value": v} for k, v in headers.items()]}
        cdp.ws.send(json.dumps({"id": cdp._id, "method": "Fetch.continueRequest", "params": params}))

    def goto(self, path: str) -> Visit:
        def start() -> None:
            frame = self.page.cdp.send("Page.navigate", {"url": self.base + path})
            if frame.get("errorText"):
                raise e2e.CDPError(f"navigation to {path} failed: {frame['errorText']}")

        return self._navigate(start, f"GET {path}")

    def submit(self, button: str, fields: dict[str, str] | None = None) -> Visit:
        """Fill ``fields`` (CSS selector → value), then click ``button``, as a shopper would."""
        script = "".join(
            f"document.querySelector({_js(sel)}).value = {_js(value)};" for sel, value in (fields or {}).items()
        ) + f"document.querySelector({_js(button)}).click();"
        return self._navigate(lambda: self.page.evaluate(script), f"click {button}")

    def js(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def text(self, selector: str) -> str | None:
        return self.js(f"(e => e && e.textContent.trim())(document.querySelector({_js(selector)}))")

    def count(self, selector: str) -> int:
        return self.js(f"document.querySelectorAll({_js(selector)}).length")

    def _navigate(self, start: Any, what: str, timeout: float = 30.0) -> Visit:
        cdp = self.page.cdp
        since = len(cdp.events)
        start()
        cdp.wait_for(lambda e: e["method"] == "Page.loadEventFired", timeout, since, f"load event after {what}")
        hops: list[Hop] = []
        ids: list[str] = []
        for event in cdp.events[since:]:
            params = event["params"]
            if event["method"] == "Network.requestWillBeSent" and params.get("type") == "Document":
                if "redirectResponse" in params and hops:
                    hops[-1].status = params["redirectResponse"]["status"]
                    hops[-1].headers = {k.lower(): v for k, v in params["redirectResponse"]["headers"].items()}
                hops.append(Hop(params["request"]["method"], params["request"]["url"]))
                ids.append(params["requestId"])
        assert hops, f"{what}: no document request"
        final_id = ids[-1]
        response = cdp.wait_for(
            lambda e: e["method"] == "Network.responseReceived" and e["params"].get("requestId") == final_id,
            10, since, f"document response after {what}",
        )["params"]["response"]  # fmt: skip
        hops[-1].status = int(response["status"])
        hops[-1].headers = {k.lower(): v for k, v in response["headers"].items()}
        visit = Visit(hops)
        self.visits.append(visit)
        return visit

    def close(self) -> None:
        """Close the tab and drop its browser context (cookies and all)."""
        self.page.close()
        self.page.browser.cdp.send("Target.disposeBrowserContext", {"browserContextId": self.page.context_id})


def _js(value: str) -> str:
    return json.dumps(value)
