"""The connection to the fleet's Redis: one client (a small pool), its health, and how to wait after a failure.

redis-py's asyncio client (``redis.asyncio``) is the maintained, widely deployed client; its
connection pool lets a blocking ``XREAD`` hold one connection while the outbox and the model poll use
others. Every exchange goes through :meth:`RedisLink.ok` / :meth:`RedisLink.failed`, which keep
``edge_state_connected`` and ``edge_state_errors_total{op}`` true.

    >>> describe("redis://:s3cret@10.0.0.7:6379/2")
    'redis://10.0.0.7:6379/2'
    >>> backoff = Backoff(first_s=0.1, max_s=5.0, jitter=0.0)
    >>> [backoff.next_delay() for _ in range(8)]
    [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    >>> backoff.reset(); backoff.next_delay()
    0.1
"""

from __future__ import annotations

import logging
import random
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis_asyncio

from edge.state import metrics

__all__ = ["RedisLink", "Backoff", "describe", "REDIS_ERRORS"]

log = logging.getLogger("edge.state")

#: What a lost, slow, restarting or failing-over Redis raises (redis-py wraps socket errors in these).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis_asyncio.RedisError, OSError, TimeoutError)

#: Seconds a command may take before the link counts as broken (a blocking XREAD asks for less).
SOCKET_TIMEOUT_S = 3.0


def describe(url: str) -> str:
    """``url`` without its password: what logs and ``/admin/model`` may show."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Backoff:
    """Exponential backoff with jitter: ``first_s``, doubling, at most ``max_s``; ``reset`` after a success."""

    def __init__(self, first_s: float = 0.1, max_s: float = 5.0, jitter: float = 0.2) -> None:
        self.first_s, self.max_s, self.jitter = first_s, max_s, jitter
        self._next = first_s

    def reset(self) -> None:
        self._next = self.first_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.max_s, self._next * 2)
        return delay * (1.0 + random.uniform(-self.jitter, self.jitter)) if self.jitter else delay


class RedisLink:
    """One process's client to the fleet's Redis, and whether it works right now."""

    def __init__(self, url: str, *, client: redis_asyncio.Redis | None = None) -> None:
        self.url = url
        self.redis = client if client is not None else redis_asyncio.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            # Sending a command on a connection Redis closed (it restarted) fails once, then reconnects.
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self.connected = False
        metrics.CONNECTED.set(0)

    def ok(self) -> None:
        if not self.connected:
            log.info("connected to the fleet's Redis at %s", describe(self.url))
        self.connected = True
        metrics.CONNECTED.set(1)

    def failed(self, op: str, exc: BaseException) -> None:
        metrics.ERRORS.labels(op).inc()
        if self.connected:
            log.warning("lost the fleet's Redis at %s (%s: %s); serving on local state", describe(self.url), op, exc)
        self.connected = False
        metrics.CONNECTED.set(0)

    async def aclose(self) -> None:
        try:
            await self.redis.aclose()
        except REDIS_ERRORS:
            pass
