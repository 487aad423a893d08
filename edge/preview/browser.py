"""Headless Chromium over the DevTools protocol (CDP): launch it, open isolated tabs, emulate a network.

Debian's ``chromium`` (``scripts/system-deps.sh`` installs it) is spoken to over a websocket with
the ``websockets`` package uvicorn[standard] brings: no browser download, no driver binary whose
protocol must match the installed Chromium. The few methods used (network emulation, navigation,
network events, screenshots) are stable, documented protocol methods. The end-to-end tests
(``tests/e2e/conftest.py``) drive Chromium with this same :class:`CDP` session.

    >>> find_chromium(candidates=("no-such-browser",)) is None
    True
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

__all__ = ["CDP", "CDPError", "CHROMIUM_CANDIDATES", "CHROMIUM_FLAGS", "Chromium", "find_chromium"]

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium", "/usr/lib/chromium/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI and the dev machines run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--no-proxy-server",  # what is measured is the page and the emulated link, not a proxy on the way
    "--mute-audio",
    "--hide-scrollbars",
)


def find_chromium(candidates: tuple[str, ...] = CHROMIUM_CANDIDATES) -> str | None:
    """The first Chromium executable found on ``PATH`` (or at an absolute candidate path), else None."""
    return next((found for c in candidates if (found := shutil.which(c))), None)


class CDPError(RuntimeError):
    """Chromium answered a command with an error, or a navigation failed."""


class CDP:
    """One DevTools protocol session over a websocket: commands, and every event kept in order."""

    def __init__(self, ws_url: str) -> None:
        # Entered as a context manager (what websockets ≥ 16 expects of a long-lived connection), left in close().
        self._connection = connect(ws_url, max_size=None, open_timeout=10, proxy=None)
        self.ws: ClientConnection = self._connection.__enter__()
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _receive(self, timeout: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        if "method" in message:
            self.events.append(message)
        return message

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        self._id += 1
        call = self._id
        self.ws.send(json.dumps({"id": call, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(max(0.01, deadline - time.monotonic()))
            if message.get("id") == call:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, since: int = 0, what: str = "event") -> dict[str, Any]:
        """The first event from index ``since`` on that satisfies ``predicate`` (waiting up to ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        index = since
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if predicate(event):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout:g} s")
            try:
                self._receive(remaining)
            except TimeoutError:
                continue

    def drain(self, seconds: float) -> None:
        """Read events for ``seconds`` (they land in :attr:`events`)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self._receive(remaining)
            except TimeoutError:
                return

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


class Chromium:
    """A headless Chromium process and its browser-level DevTools session.

    :meth:`new_tab` opens a tab in a new browser context (no cookies or cache shared with other tabs)
    and returns its page-level :class:`CDP` session and the context id (for :meth:`close_tab`).
    """

    def __init__(self, executable: str, profile: Path, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                 "--window-size=412,915", "about:blank"],  # fmt: skip
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")},
                start_new_session=True,  # its renderers and helpers are one process group, killed together
            )  # fmt: skip
        self.cdp: CDP | None = None
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        lines: list[str] = []
        while time.monotonic() < deadline and self.proc.poll() is None:
            if active.exists():
                lines = active.read_text().split()
                if len(lines) >= 2:
                    break
            time.sleep(0.05)
        if len(lines) < 2:
            self.stop()
            raise CDPError(f"chromium did not open its DevTools port\n{self.logs()}")
        self.port = int(lines[0])
        self.cdp = CDP(f"ws://127.0.0.1:{self.port}{lines[1]}")

    def new_tab(self) -> tuple[CDP, str]:
        assert self.cdp is not None
        context = self.cdp.send("Target.createBrowserContext", {"disposeOnDetach": True})["browserContextId"]
        target = self.cdp.send("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
        return CDP(f"ws://127.0.0.1:{self.port}/devtools/page/{target}"), context

    def close_tab(self, tab: CDP, context: str) -> None:
        tab.close()
        if self.cdp is not None:
            self.cdp.send("Target.disposeBrowserContext", {"browserContextId": context})

    def logs(self, limit: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.cdp is not None:
            try:
                self.cdp.send("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 - killed below if it is still running
                pass
            self.cdp.close()
            self.cdp = None
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
