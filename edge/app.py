"""Wiring: build edge's public app (proxy + middleware + ``/__edge/`` endpoints) and its admin app.

    >>> from edge.settings import Settings
    >>> edge = build_edge(Settings())
    >>> sorted(edge.__dict__)
    ['admin', 'middleware', 'proxy', 'public', 'ready', 'settings']

The public port serves only proxied traffic and edge's own ``/__edge/…`` paths;
``/metrics``, ``/healthz`` and ``/readyz`` live on the admin port, so shoppers
cannot read or scrape them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from edge import metrics
from edge.middleware import AdaptiveMiddleware
from edge.model import MODELS, NetworkModel
from edge.policy import Policy, load_policy
from edge.proxy import ReverseProxy
from edge.settings import Settings

__all__ = ["Edge", "build_edge", "safe_next"]

PREFERENCE_MAX_AGE = 30 * 24 * 3600


@dataclass
class Edge:
    """The running pieces of one edge process."""

    settings: Settings
    proxy: ReverseProxy
    middleware: AdaptiveMiddleware
    public: AdaptiveMiddleware  # the ASGI app for the public port
    admin: Starlette  # the ASGI app for the admin port
    ready: bool = False


def build_edge(settings: Settings, *, policy: Policy | None = None, model: NetworkModel | None = None) -> Edge:
    """Build edge's two ASGI apps from ``settings`` (the policy file is loaded and validated here)."""
    policy = policy or load_policy(settings.policy)
    proxy = ReverseProxy(settings)
    edge: Edge  # bound below; the lifespan and endpoints close over it

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await proxy.open()
        edge.ready = True
        try:
            yield
        finally:
            edge.ready = False
            await proxy.aclose()

    async def switch_tier(request: Request) -> Response:
        tier = request.path_params["tier"]
        if tier not in ("full", "lite", "auto"):
            return await not_found(request)  # never set a cookie nobody honours
        response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        cookie = edge.middleware.policy.preference_cookie
        if tier == "auto":
            response.delete_cookie(cookie, path="/")
        else:
            metrics.PREFERENCE_SWITCHES.labels(tier).inc()
            response.set_cookie(cookie, tier, max_age=PREFERENCE_MAX_AGE, path="/", httponly=True, samesite="lax")
        response.headers["cache-control"] = "no-store"
        return response

    async def not_found(request: Request) -> Response:
        return PlainTextResponse("not found\n", status_code=404)

    starlette = Starlette(
        routes=[
            Route("/__edge/tier/{tier:str}", switch_tier, methods=["GET"]),
            Route("/__edge/{rest:path}", not_found, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
            Mount("/", app=proxy),
        ],
        lifespan=lifespan,
    )

    middleware = AdaptiveMiddleware(
        starlette,
        policy=policy,
        model=model or MODELS["rules"](),
        settings=settings,
    )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        if edge.ready:
            return PlainTextResponse("ready\n")
        return PlainTextResponse("starting\n", status_code=503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)

    admin = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
        ]
    )
    edge = Edge(settings=settings, proxy=proxy, middleware=middleware, public=middleware, admin=admin)
    return edge


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
