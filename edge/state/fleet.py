"""A sidecar's side of the fleet: labels out, other sidecars' labels in, the fleet's model swapped in.

:class:`FleetSync` runs three background tasks next to the server; the request path never waits on
any of them (it reads this process's own cell table, replay guard and model, as a single sidecar does):

- **outbox** → Redis. :meth:`FleetSync.submit` (called by :class:`edge.learning.feedback.Feedback`
  for each accepted label) only appends to a bounded deque. The flush task sends each label with one
  Lua script: ``SET <prefix>nonce:<n> NX PX <token's remaining life>`` and, only if that set it, ``XADD``
  to the label stream, so a token is learned once across the fleet even when two sidecars accept it
  within the same instant. A batch is one round trip. A label that lost the ``SET NX`` was accepted by
  another sidecar first: counted as ``edge_feedback_rejected_total{reason="replayed"}``.
- **follow**: a blocking ``XREAD`` of the label stream (from ``cell_memory_s`` ago at start, so a new
  sidecar starts with the fleet's recent cell statistics). Each other sidecar's label goes into this
  process's cell table (with its client and trust, so the per-client limits of
  :mod:`edge.pipeline.towers` hold fleet-wide) and its nonce into the local replay guard, so a token
  another sidecar accepted is refused here at once, synchronously.
- **model**: every ``poll_s`` a ``GET`` of the model's version; a new one is fetched, its HMAC
  verified before anything is unpickled (a forged snapshot is refused and counted), and swapped in.

While Redis is unreachable, :meth:`submit` returns False: the label is accepted on the local replay
guard alone (``edge_state_guard_fallbacks_total``) and learned here, and it stays in the outbox; once
Redis is back it goes through ``SET NX`` like any other, so the fleet learns nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from edge.core import metrics as edge_metrics
from edge.learning.feedback import Feedback
from edge.learning.model.checkpoints import CheckpointError
from edge.learning.shared_label import SharedLabel
from edge.state import metrics
from edge.state.keys import LEARNER_GROUP, FleetKeys
from edge.state.link import REDIS_ERRORS, Backoff, RedisLink, describe
from edge.state.snapshot import FleetSnapshot

__all__ = ["FleetSync", "ACCEPT_ONCE", "stream_entries", "as_bytes"]

log = logging.getLogger("edge.state")

#: KEYS[1] the token's nonce key, KEYS[2] the label stream; ARGV: expiry (ms), stream bound, origin, label, signature.
ACCEPT_ONCE = """
if redis.call('SET', KEYS[1], ARGV[3], 'NX', 'PX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'o', ARGV[3], 'l', ARGV[4], 's', ARGV[5])
  return 1
end
return 0
"""

#: Labels sent in one round trip.
FLUSH_BATCH = 256
#: Entries read from the stream in one round trip (parsing a batch holds the event loop: ~0.7 ms for 200 with
#: hiredis, docs/redis-client.md), and how long one blocking read waits (ms).
FOLLOW_BATCH = 200
FOLLOW_BLOCK_MS = 1000
#: How often old entries are trimmed from the stream by age (s).
TRIM_EVERY_S = 10.0


def stream_entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The (id, fields) entries of an ``XREAD``/``XREADGROUP`` reply, in RESP2 (a list) or RESP3 (a dict) form."""
    if not response:
        return []
    streams = response.items() if isinstance(response, dict) else response
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    for item in streams:
        entries = item[1]
        if entries and isinstance(entries[0], list) and len(entries) == 1 and isinstance(entries[0][0], list):
            entries = entries[0]  # RESP3 nests one level deeper
        for entry_id, fields in entries:
            if fields is not None:  # a claimed entry that was trimmed meanwhile
                out.append((entry_id, fields))
    return out


class FleetSync:
    """Keeps one sidecar in step with its fleet (see the module docstring)."""

    def __init__(
        self,
        link: RedisLink,
        keys: FleetKeys,
        key: bytes,
        feedback: Feedback,
        swap_model: Callable[[FleetSnapshot], None],
        *,
        origin: str,
        outbox_max: int = 10_000,
        stream_max: int = 100_000,
        cell_memory_s: float = 1200.0,
        poll_s: float = 1.0,
    ) -> None:
        self.link = link
        self.redis = link.redis
        self.keys = keys
        self.key = key
        self.feedback = feedback
        self.swap_model = swap_model
        self.origin = origin.encode()
        self.outbox: deque[SharedLabel] = deque()
        self.outbox_max = max(1, outbox_max)
        self.stream_max = stream_max
        self.cell_memory_s = cell_memory_s
        self.poll_s = poll_s
        #: The version of the fleet model this process serves (0: none yet, its own model).
        self.model_version = 0
        self._version_seen: bytes | None = None
        self._last_read = time.monotonic()
        self._last_trim = 0.0
        # The follower starts ``cell_memory_s`` back: a new sidecar begins with the fleet's recent cell statistics.
        self._follow_from: bytes | str = f"{int((time.time() - cell_memory_s) * 1000)}-0"
        self._wake = asyncio.Event()
        self._accept_once = self.redis.register_script(ACCEPT_ONCE)
        metrics.MODEL_VERSION.set(0)
        metrics.OUTBOX.set(0)

    # The request path: never waits.

    def submit(self, label: SharedLabel) -> bool:
        """Queue an accepted label (see :class:`edge.learning.feedback.LabelSink`)."""
        connected = self.link.connected
        label.learned_locally = not connected
        if len(self.outbox) >= self.outbox_max:
            self.outbox.popleft()
            metrics.DROPPED.labels("outbox_full").inc()
        self.outbox.append(label)
        metrics.OUTBOX.set(len(self.outbox))
        self._wake.set()
        if not connected:
            metrics.GUARD_FALLBACKS.inc()
        return connected

    def state(self) -> dict[str, Any]:
        """What ``/admin/model`` shows of the fleet."""
        return {
            "state": describe(self.link.url),
            "connected": self.link.connected,
            "model_version": self.model_version,
            "outbox": len(self.outbox),
            "origin": self.origin.decode(),
        }

    # Background tasks.

    async def run(self) -> None:
        """Run every background task until cancelled."""
        rounds = (("flush", self._flush_round), ("follow", self._follow_round), ("model", self._model_round))
        tasks = [asyncio.create_task(self._forever(op, step)) for op, step in rounds]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """At shutdown: one last try to send the outbox (a second at most), then close the connections."""
        with contextlib.suppress(*REDIS_ERRORS):
            async with asyncio.timeout(1.0):
                while await self.flush():
                    pass
        await self.link.aclose()

    async def flush(self) -> int:
        """Send what the outbox holds (up to one batch); returns how many were sent. Raises Redis errors."""
        batch = [self.outbox[i] for i in range(min(FLUSH_BATCH, len(self.outbox)))]
        if not batch:
            return 0
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for label in batch:
            fields = label.encode(self.key)
            expiry_ms = max(1000, int((label.expires - now) * 1000))
            # EVALSHA straight away: redis-py's Script in a pipeline asks SCRIPT EXISTS first, a second round trip.
            pipe.evalsha(
                self._accept_once.sha, 2, self.keys.nonce(label.nonce), self.keys.labels,
                expiry_ms, self.stream_max, self.origin, fields[b"l"], fields[b"s"],
            )  # fmt: skip
        try:
            results = await pipe.execute()
        except NoScriptError:  # a Redis that restarted (or failed over) has forgotten the script
            await self.redis.script_load(ACCEPT_ONCE)
            return await self.flush()
        sent = {id(label) for label in batch}
        while self.outbox and id(self.outbox[0]) in sent:  # the oldest may have been dropped meanwhile
            self.outbox.popleft()
        metrics.OUTBOX.set(len(self.outbox))
        for label, accepted in zip(batch, results):
            if not accepted:
                edge_metrics.FEEDBACK_REJECTED.labels("replayed").inc()  # another sidecar accepted it first
            elif not label.learned_locally:
                self.feedback.observe_cell(label)
        return len(batch)

    async def trim(self) -> None:
        """Drop stream entries older than the cells' memory, but none the learner has not read yet: a
        learner that was away catches up on everything the length bound (``stream_max``) kept."""
        oldest = (int((time.time() - self.cell_memory_s) * 1000), 0)
        try:
            groups = await self.redis.xinfo_groups(self.keys.labels)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return  # no label yet: nothing to trim
            raise
        for group in groups:
            fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in dict(group).items()}
            if fields.get("name") in (LEARNER_GROUP, LEARNER_GROUP.encode()):
                delivered = as_bytes(fields.get("last-delivered-id")) or b"0-0"
                ms, _, seq = delivered.partition(b"-")
                oldest = min(oldest, (int(ms), int(seq or 0)))
        await self.redis.xtrim(self.keys.labels, minid=f"{oldest[0]}-{oldest[1]}", approximate=True)

    async def _forever(self, op: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` again and again; a Redis failure marks the link down (counted under ``op``) and waits a backoff."""
        backoff = Backoff()
        while True:
            try:
                await step()
            except REDIS_ERRORS as exc:
                self.link.failed(op, exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            self.link.ok()
            backoff.reset()

    async def _flush_round(self) -> None:
        """Wait for labels (or the next trim), send a batch, trim every ``TRIM_EVERY_S``."""
        if not self.outbox:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=TRIM_EVERY_S)
        await self.flush()
        if time.monotonic() - self._last_trim >= TRIM_EVERY_S:
            self._last_trim = time.monotonic()
            await self.trim()

    async def follow(self, last_id: bytes | str) -> bytes | str:
        """Read and apply the next entries after ``last_id`` (blocking up to a second); returns the new last id."""
        response = await self.redis.xread({self.keys.labels: last_id}, count=FOLLOW_BATCH, block=FOLLOW_BLOCK_MS)
        self._last_read = time.monotonic()
        guard = self.feedback.guard
        now = time.time()
        for entry_id, fields in stream_entries(response):
            last_id = entry_id
            if fields.get(b"o") == self.origin:
                continue  # this sidecar's own: applied when it was sent
            label = SharedLabel.decode(fields, self.key)
            if label is None:
                metrics.DROPPED.labels("forged_entry").inc()
                continue
            self.feedback.observe_cell(label)
            guard.admit(label.nonce, label.expires - guard.window_s, now)  # refuse its token here too
        return last_id

    async def _follow_round(self) -> None:
        self._follow_from = await self.follow(self._follow_from)

    async def poll_model(self) -> bool:
        """Fetch and swap in the fleet model if its version changed; True if swapped. Raises Redis errors."""
        version = as_bytes(await self.redis.get(self.keys.model_version))
        if version is None or version == self._version_seen:
            return False
        data = as_bytes(await self.redis.get(self.keys.model))
        self._version_seen = version
        if data is None:
            return False
        try:
            snapshot = await asyncio.to_thread(FleetSnapshot.from_bytes, data, self.key)
        except CheckpointError as exc:
            metrics.SNAPSHOTS.labels("refused").inc()
            log.error("fleet model snapshot refused (version %r): %s", version, exc)
            return False
        except Exception as exc:  # an unreadable snapshot must never stop the sidecar
            metrics.SNAPSHOTS.labels("failed").inc()
            log.error("fleet model snapshot unusable (version %r): %s", version, exc)
            return False
        self.swap_model(snapshot)
        self.model_version = snapshot.version
        metrics.SNAPSHOTS.labels("loaded").inc()
        metrics.MODEL_VERSION.set(snapshot.version)
        return True

    async def _model_round(self) -> None:
        await asyncio.sleep(self.poll_s)
        metrics.SYNC_LAG.set(max(0.0, time.monotonic() - self._last_read))
        await self.poll_model()


def as_bytes(value: bytes | str | None) -> bytes | None:
    """A reply as bytes (the client is built without ``decode_responses``; a str would be a test's client)."""
    return value.encode() if isinstance(value, str) else value
