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

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from edge import metrics
from edge.middleware import AdaptiveMiddleware
from edge.model import MODELS, NetworkModel
from edge.policy import Policy, load_policy
from edge.proxy import ReverseProxy
from edge.settings import Settings

__all__ = ["Edge", "build_edge"]



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
    """Build edge's two ASGI apps from ``settings`` (the policy file is loaded and validated here).

    The public app is the middleware (which serves ``/__edge/…`` itself) around
    a Starlette app whose lifespan opens the proxy's shared upstream client.
    """
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

    starlette = Starlette(
        routes=[
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

    async def model_state(request: Request) -> Response:
        model = edge.middleware.model
        snapshot = model.snapshot() if hasattr(model, "snapshot") else {"champion": model.source}
        return Response(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2), media_type="application/json")

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)

    admin = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
            Route("/admin/model", model_state),
        ]
    )
    edge = Edge(settings=settings, proxy=proxy, middleware=middleware, public=middleware, admin=admin)
    return edge
