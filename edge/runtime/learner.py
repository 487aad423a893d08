"""``edge learner``: the fleet's learner process (edge.state.learner) and its admin port.

    edge learner --state redis://redis:6379/0 --admin-port 9102

The admin port serves ``/metrics`` (``edge_learner_*``, ``edge_state_*`` and the model's own
``edge_model_*``), ``/healthz``, ``/readyz`` (ready once it reached Redis; a standby is ready too:
it is doing its job, waiting) and ``/admin/learner`` (leader or standby, version, labels learned,
and the model's state as ``/admin/model`` shows it on a sidecar).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from edge.adapt.middleware import _key_bytes
from edge.core import metrics as edge_metrics
from edge.core.settings import Settings
from edge.learning.model import Checkpointed, NetworkModel, Snapshotting
from edge.learning.model.checkpoints import write_atomically
from edge.runtime.app import checkpoint_key, make_model
from edge.state.keys import FleetKeys
from edge.state.learner import Learner
from edge.state.link import RedisLink

log = logging.getLogger("edge.learner")

__all__ = ["build_learner_app"]


def build_learner_app(settings: Settings, *, publish_s: float = 1.0, identity: str | None = None) -> tuple[Starlette, Learner]:
    """The learner for ``settings.state`` and the admin app that runs it (in its lifespan)."""
    learner = Learner(
        RedisLink(settings.state),
        FleetKeys(settings.state_prefix),
        _key_bytes(settings.feedback_key),
        lambda: make_model(settings),
        identity=identity,
        publish_s=publish_s,
    )

    def checkpoint(model: NetworkModel) -> None:
        # Only the leader's model is the fleet's; a standby holds none.
        if isinstance(model, Checkpointed) and settings.checkpoint:
            model.save(Path(settings.checkpoint), key=checkpoint_key(settings))
            edge_metrics.CHECKPOINTS.labels("written").inc()

    async def checkpoint_now() -> None:
        # The bytes on the loop, where the learner's batches run (a pickle in a thread could interleave
        # with one and save a model half a batch on); the disk in a thread.
        model = learner.model
        if isinstance(model, Checkpointed) and settings.checkpoint:
            data = model.checkpoint_bytes(key=checkpoint_key(settings))
            await asyncio.to_thread(write_atomically, data, Path(settings.checkpoint))
            edge_metrics.CHECKPOINTS.labels("written").inc()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(learner.run())
        saver = asyncio.create_task(_every(settings.checkpoint_interval_s, checkpoint_now))
        try:
            yield
        finally:
            for t in (task, saver):
                t.cancel()
            await asyncio.gather(task, saver, return_exceptions=True)
            if learner.leader and learner.model is not None:
                checkpoint(learner.model)
            await learner.link.aclose()

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        if learner.link.connected:
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready: no Redis\n", status_code=503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(edge_metrics.registry()), media_type=CONTENT_TYPE_LATEST)

    async def state(request: Request) -> Response:
        body: dict[str, Any] = learner.state()
        model = learner.model
        if isinstance(model, Snapshotting):
            body["model"] = model.snapshot()
        return Response(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            Route("/admin/learner", state),
        ],
        lifespan=lifespan,
    )
    return app, learner


async def _every(seconds: float, action: Callable[[], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await action()
        except Exception as exc:  # a full disk must not stop the next checkpoints, nor the learner
            edge_metrics.CHECKPOINTS.labels("failed").inc()
            log.error("checkpoint failed: %s", exc)
