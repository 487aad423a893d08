"""Waiting for a started process to answer: shared by the integration, deploy and e2e fixtures."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def poll_ready(url: str, alive: Callable[[], bool], deadline: float, interval: float = 0.05) -> tuple[bool, object]:
    """Poll ``url`` until it answers 2xx, the ``time.monotonic()`` ``deadline`` passes or ``alive()`` turns false.

    Returns (ready, the last status code or error seen), for the caller's failure message.
    """
    last: object = None
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline and alive():
            try:
                response = client.get(url)
                if response.is_success:
                    return True, None
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(interval)
    return False, last
