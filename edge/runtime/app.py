"""Wiring: build edge's public app (proxy + middleware + ``/__edge/``) and its admin app.

    >>> from edge.core.settings import Settings
    >>> edge = build_edge(Settings())
    >>> edge.middleware.policy.name, edge.ready
    ('demo', False)

The public port serves only proxied traffic and edge's own ``/__edge/…`` paths;
``/metrics``, ``/healthz``, ``/readyz``, ``/admin/model`` and
``POST /admin/policy/reload`` live on the admin port, so shoppers cannot reach them.

The public app's lifespan owns the long-lived pieces: the proxy's shared
upstream client, the policy watcher (hot reload on file change), and the model
checkpoints (restored at start, written every ``checkpoint_interval_s`` and
at shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.adapt.middleware import AdaptiveMiddleware, _key_bytes
from edge.core import metrics
from edge.core.errors import PolicyError
from edge.core.settings import Settings
from edge.learning.model import MODELS, Checkpointed, NetworkModel, Restorable, Snapshotting
from edge.learning.model.checkpoints import write_atomically
from edge.pipeline.policy import Policy, load_policy
from edge.runtime.fast_path import FastPath
from edge.runtime.workers import SHARED_KEY_ENV, WORKER_INDEX_ENV

if TYPE_CHECKING:
    from edge.state.fleet import FleetSync
    from edge.state.snapshot import FleetSnapshot
from edge.transport.proxy import ReverseProxy

__all__ = ["Edge", "build_edge", "make_model"]

log = logging.getLogger("edge")

#: How often the policy file's modification time is checked.
POLICY_POLL_S = 1.0


def make_model(settings: Settings) -> NetworkModel:
    """The model named by ``settings.model``, restored from ``settings.checkpoint`` when one exists.

    A checkpoint that cannot be read is logged, counted and set aside; edge starts fresh.
    """
    factory = MODELS.get(settings.model) or MODELS["rules"]
    path = Path(settings.checkpoint) if settings.checkpoint else None
    if issubclass(factory, Restorable) and path is not None and path.exists():
        try:
            model = factory.load(path, key=checkpoint_key(settings))
        except Exception as exc:  # a corrupt or incompatible file must not stop the sidecar
            metrics.CHECKPOINTS.labels("failed").inc()
            log.error("model checkpoint %s unusable, starting fresh: %s", path, exc)
        else:
            metrics.CHECKPOINTS.labels("loaded").inc()
            log.info("model restored from %s", path)
            return model
    return factory()


def checkpoint_key(settings: Settings) -> bytes | None:
    """Checkpoints are signed with the feedback key (HMAC), so edge never unpickles a file it did not write.

    Without a configured key they carry a SHA-256 checksum only (corruption, not tampering).
    """
    return _key_bytes(settings.feedback_key) if settings.feedback_key else None


class Edge:
    """The running pieces of one edge process: its two ASGI apps and what they share."""

    def __init__(self, settings: Settings, policy: Policy, model: NetworkModel) -> None:
        self.settings = settings
        self.policy_path = Path(settings.policy)
        self.proxy = ReverseProxy(settings)
        self.ready = False
        self._policy_mtime = _mtime(self.policy_path)
        # No router between the middleware and the proxy: every request is the proxy's (the middleware
        # serves /__edge/ itself), and a router's matching costs every shopper a little.
        inner = _WithLifespan(self.proxy, self._lifespan)
        # The per-cell statistics travel in the model's checkpoint, so a restart keeps what cells taught.
        towers = model.extra.get("towers") if isinstance(model, Checkpointed) else None
        self.middleware = AdaptiveMiddleware(inner, policy=policy, model=model, settings=_with_shared_key(settings), towers=towers)
        #: The ASGI app for the public port.
        self.public = self.middleware
        #: What the public port runs instead of the app for a full-tier page request (None: off).
        self.fast_path = FastPath(self.middleware, self.proxy, self.public) if settings.fast_path else None
        #: The ASGI app for the admin port.
        self.admin = Starlette(
            routes=[
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                Route("/metrics", self._metrics),
                Route("/admin/model", self._model_state),
                Route("/admin/policy/reload", self._reload_endpoint, methods=["POST"]),
            ]
        )

        #: The fleet (``--state``): None for a sidecar that learns alone.
        self.fleet: FleetSync | None = _fleet(settings, self.middleware, self.swap_model) if settings.state else None

    @property
    def model(self) -> NetworkModel:
        return self.middleware.model

    def swap_model(self, snapshot: FleetSnapshot) -> None:
        """Serve the fleet's model from now on (requests in flight keep the model they started with)."""
        model = snapshot.model
        extra = getattr(model, "extra", None)
        if isinstance(extra, dict):
            extra.clear()  # this sidecar's cell table and replay guard are its own (checkpoint() puts them back)
        self.middleware.model = model
        self.middleware.feedback.model = model

    # Policy hot reload: an invalid new file keeps the old policy in force and says so.

    def reload_policy(self) -> str | None:
        """Load the policy file again. Returns None on success, else the error (old policy kept)."""
        try:
            policy = load_policy(self.policy_path)
        except PolicyError as exc:
            metrics.POLICY_RELOADS.labels("failure").inc()
            log.error("policy reload failed, keeping policy %r in force: %s", self.middleware.policy.name, exc)
            return str(exc)
        self.middleware.set_policy(policy)
        metrics.POLICY_RELOADS.labels("success").inc()
        log.info("policy %r reloaded from %s", policy.name, self.policy_path)
        return None

    async def _watch_policy(self) -> None:
        while True:
            await asyncio.sleep(POLICY_POLL_S)
            mtime = _mtime(self.policy_path)
            if mtime is not None and mtime != self._policy_mtime:
                self._policy_mtime = mtime
                self.reload_policy()

    # Checkpoints of the learned model.

    def checkpoint(self) -> bool:
        """Write the model's checkpoint now (atomically). True if written."""
        data = self._checkpoint_bytes()
        return data is not None and self._write_checkpoint(data)

    def _checkpoint_bytes(self) -> bytes | None:
        """The checkpoint's bytes, taken now (None: no checkpoint configured, or it failed and was counted).

        Taken on the event loop, where no request learns meanwhile: a pickle in a thread interleaves with
        the loop's learning (the GIL switches between the objects it visits) and could save a model half a
        label on. Most of the pickle holds the GIL anyway, so a thread would not spare the loop that time.
        """
        model = self.model
        if not isinstance(model, Checkpointed) or not self.settings.checkpoint:
            return None
        # What the model learned, what cells taught, and which tokens were already used: a
        # restart must not make a used token good again.
        model.extra["towers"] = self.middleware.towers
        model.extra["replay_guard"] = self.middleware.feedback.guard
        try:
            return model.checkpoint_bytes(key=checkpoint_key(self.settings))
        except Exception as exc:
            metrics.CHECKPOINTS.labels("failed").inc()
            log.error("model checkpoint to %s failed: %s", self.settings.checkpoint, exc)
            return None

    def _write_checkpoint(self, data: bytes) -> bool:
        """Write checkpoint bytes to the configured file (atomically: temp file, fsync, rename). True if written."""
        try:
            write_atomically(data, Path(self.settings.checkpoint))
        except Exception as exc:  # a full disk must not take the sidecar down
            metrics.CHECKPOINTS.labels("failed").inc()
            log.error("model checkpoint to %s failed: %s", self.settings.checkpoint, exc)
            return False
        metrics.CHECKPOINTS.labels("written").inc()
        return True

    async def _checkpoint_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.checkpoint_interval_s)
            data = self._checkpoint_bytes()  # on the loop: a consistent picture
            if data is not None:
                await asyncio.to_thread(self._write_checkpoint, data)  # the disk (and its fsync) off the loop

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        await self.proxy.open()
        tasks = [asyncio.create_task(self._watch_policy())]
        if self.settings.checkpoint:
            tasks.append(asyncio.create_task(self._checkpoint_periodically()))
        if self.fleet is not None:
            tasks.append(asyncio.create_task(self.fleet.run()))
        self.ready = True
        try:
            yield
        finally:
            # Runs after the server has drained in-flight requests (uvicorn's graceful shutdown).
            self.ready = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.fleet is not None:
                await self.fleet.close()
            self.checkpoint()
            await self.proxy.aclose()

    # Admin endpoints.

    async def _healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def _readyz(self, request: Request) -> Response:
        if self.ready:
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready\n", status_code=503)

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)

    async def _model_state(self, request: Request) -> Response:
        model = self.model
        snapshot = model.snapshot() if isinstance(model, Snapshotting) else {"champion": model.source}
        # The opt-out as feedback: per policy, route and tier, pages served and switch-link refusals.
        snapshot = {**snapshot, "tier_refusals": self.middleware.refusals.snapshot()}
        if self.fleet is not None:
            snapshot = {**snapshot, "fleet": self.fleet.state()}
        # With --workers N each worker has its own model: say which one answered.
        index = os.environ.get(WORKER_INDEX_ENV)
        headers = {"Edge-Worker": f"index={index}, pid={os.getpid()}"} if index is not None else None
        return Response(
            orjson.dumps(snapshot, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json",
            headers=headers,
        )

    async def _reload_endpoint(self, request: Request) -> Response:
        token = self.settings.admin_token
        if token and not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {token}"):
            return PlainTextResponse("admin token required\n", status_code=401)
        error = self.reload_policy()
        body = {"result": "success", "policy": self.middleware.policy.name} if error is None else {"result": "failure", "error": error, "policy": self.middleware.policy.name}
        return Response(orjson.dumps(body), status_code=200 if error is None else 422, media_type="application/json")


class _WithLifespan:
    """An ASGI app: ``app`` for HTTP, and ``lifespan`` (an async context manager factory) for the lifespan."""

    def __init__(self, app: ASGIApp, lifespan: Callable[[Any], contextlib.AbstractAsyncContextManager[None]]) -> None:
        self.app = app
        self.lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        started = False
        try:
            async with self.lifespan(self):
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except BaseException as exc:
            await send({"type": f"lifespan.{'shutdown' if started else 'startup'}.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def build_edge(settings: Settings, *, policy: Policy | None = None, model: NetworkModel | None = None) -> Edge:
    """Build edge from ``settings``: the policy file is loaded and validated here, the model restored."""
    policy = policy if policy is not None else load_policy(settings.policy)
    model = model if model is not None else make_model(settings)
    return Edge(settings, policy, model)


def _with_shared_key(settings: Settings) -> Settings:
    """The middleware's settings: a worker without EDGE_FEEDBACK_KEY signs with the supervisor's shared
    random key (edge/runtime/workers.py), so every worker accepts every worker's tokens. Only the middleware
    gets it: checkpoints stay keyless, so the next run (with another random key) can restore them."""
    shared = os.environ.get(SHARED_KEY_ENV)
    if not shared or settings.feedback_key or settings.feedback_key_previous:
        return settings
    log.warning("EDGE_FEEDBACK_KEY is not set: the workers share a random key; feedback tokens die with the sidecar")
    return settings.replace(feedback_key=shared)


def _fleet(settings: Settings, middleware: AdaptiveMiddleware, swap: Callable[[FleetSnapshot], None]) -> FleetSync:
    """This sidecar's link to its fleet (edge.state): labels go out, other sidecars' cells and the learner's model come in.

    Imported here, not at the top: a sidecar without a fleet loads no Redis client and exports no ``edge_state_*``.
    """
    from edge.state.fleet import FleetSync
    from edge.state.keys import FleetKeys
    from edge.state.link import RedisLink

    key = _key_bytes(settings.feedback_key)
    fleet = FleetSync(
        RedisLink(settings.state),
        FleetKeys(settings.state_prefix),
        key,
        middleware.feedback,
        swap,
        origin=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
        outbox_max=settings.state_outbox_max,
        stream_max=settings.state_stream_max,
        cell_memory_s=4 * settings.cell_half_life_s,
    )
    middleware.feedback.fleet = fleet
    return fleet


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
