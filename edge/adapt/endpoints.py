"""edge's own endpoints on the public port, under ``/__edge/``.

Served by :class:`~edge.adapt.middleware.AdaptiveMiddleware` itself, so they exist
wherever the middleware runs: in the sidecar and around an in-process storefront.

- ``GET /__edge/tier/{full|lite|auto}?next=/path[&from=minimal]``: the switch link; sets (or
  clears) the preference cookie, counts the tier refused (:mod:`edge.adapt.refusals`) and
  returns the shopper to ``next``.
- ``POST /__edge/beacon``: a page's token and timings (``docs/feedback.md``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from edge.adapt.refusals import refused_tier
from edge.core import metrics
from edge.learning.feedback import (
    BEACON_PATH,
    MAX_BEACON_BYTES,
    MEASUREMENT_COOKIE,
    MEASUREMENT_MAX_AGE_S,
    REJECT_STATUS,
    FeedbackRejected,
)

if TYPE_CHECKING:
    from edge.adapt.middleware import AdaptiveMiddleware

__all__ = ["build_endpoints", "safe_next", "PREFERENCE_MAX_AGE"]

PREFERENCE_MAX_AGE = 30 * 24 * 3600
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def safe_next(target: str | None) -> str:
    """Where to send a shopper after a tier switch: a path on this site, never another host.

    >>> safe_next("/search?q=tea"), safe_next("//evil.example/"), safe_next("https://evil.example"), safe_next(None)
    ('/search?q=tea', '/', '/', '/')
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def build_endpoints(mw: AdaptiveMiddleware) -> Router:
    """The ``/__edge/`` routes for one middleware instance (its policy, feedback and model)."""
    async def switch_tier(request: Request) -> Response:
        tier = request.path_params["tier"]
        if tier not in ("full", "lite", "auto"):
            return await not_found(request)  # never set a cookie nobody honours
        target = safe_next(request.query_params.get("next"))
        response = RedirectResponse(target, status_code=303)
        policy = mw.policy
        cookie = policy.preference_cookie
        if tier == "auto":
            response.delete_cookie(cookie, path="/")
        else:
            metrics.PREFERENCE_SWITCHES.labels(tier).inc()
            try:
                # The opt-out is feedback: counted against the tier it refused, on the page's route.
                mw.refusals.refused(policy.name, policy.for_path(target).name, refused_tier(tier, request.query_params.get("from")))
            except Exception as exc:  # never in the shopper's way: the switch itself still happens
                mw.fail_open("respond", exc)
            response.set_cookie(cookie, tier, max_age=PREFERENCE_MAX_AGE, path="/", httponly=True, samesite="lax")
        response.headers["cache-control"] = "no-store"
        return response

    async def beacon(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BEACON_BYTES:
                break  # stop reading: refused as oversized without growing further
        now = time.time()
        try:
            # The sender is the peer (uvicorn takes X-Forwarded-For only from EDGE_FORWARDED_ALLOW_IPS).
            payload, measurement, _ = mw.feedback.beacon(bytes(body), now, request.client.host if request.client else None)
        except FeedbackRejected as exc:
            return PlainTextResponse(f"feedback refused: {exc.reason}\n", status_code=REJECT_STATUS[exc.reason])
        response = Response(status_code=204, headers={"cache-control": "no-store"})
        if measurement.kbps is not None or measurement.rtt_ms is not None:
            # The next page view from this browser carries this measurement as its last-request signal.
            raw = request.cookies.get(MEASUREMENT_COOKIE)
            previous = mw.feedback.read_measurement_cookie(raw, now, MEASUREMENT_MAX_AGE_S) if raw else None
            cookie = mw.feedback.measurement_cookie(measurement, payload.get("c"), now, previous)
            response.set_cookie(
                MEASUREMENT_COOKIE, cookie, max_age=int(MEASUREMENT_MAX_AGE_S), path="/", httponly=True, samesite="lax"
            )
        return response

    async def not_found(request: Request) -> Response:
        return PlainTextResponse("not found\n", status_code=404)

    return Router(
        routes=[
            Route("/__edge/tier/{tier:str}", switch_tier, methods=["GET"]),
            Route(BEACON_PATH, beacon, methods=["POST"]),
            Route("/__edge/{rest:path}", not_found, methods=_ALL_METHODS),
        ]
    )
