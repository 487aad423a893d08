"""``edge learner``: one model for a fleet of sidecars.

Every sidecar writes the labels it accepts to the label stream (edge.state.fleet); the learner
reads them through the consumer group ``learner``, learns with the same champion/challenger model a
single sidecar runs (so the election, calibration and guards are the same), and publishes a signed,
versioned snapshot about once per ``publish_s`` when it has learned something. Every sidecar swaps
to it within a poll (a second).

**Who learns.** Run it as its own process or container, one or several: a lock with an expiry
(``<prefix>learner:lock``, ``SET NX PX``, renewed every learning round, about four times a second, by
its holder) elects the one that learns. A standby tries the lock every second and takes it once it has
seen it free twice, so a leader that dies is replaced within the lock's expiry (5 s) without an
operator. A leader cut off from Redis stops learning once it cannot renew, but keeps its model and
retries every quarter second: when Redis comes back (even empty) it takes the lock back first and
resumes, unless another learner led or published meanwhile. (A standby taking over an empty Redis would
start from the shipped prior, losing what the fleet had learned.) One ``edge serve`` elected among the
sidecars would save a container, but would put a model's learning and publishing on a shopper-facing
process's event loop; a separate process keeps the sidecars' latency what it is.

**What a crash loses.** Entries are acknowledged (``XACK``) only once a published snapshot holds
them. A new leader starts from the last published snapshot and claims (``XAUTOCLAIM``) what the old
one had read but not acknowledged, so a crash loses nothing the stream still holds; what the stream
trimmed away (``MAXLEN``) while no learner ran is lost to the model (the sidecars' cell tables took it
already).

**Redis restarted empty.** The group is created again (``NOGROUP`` → ``XGROUP CREATE … MKSTREAM``) and
the learner publishes its model again under a new version; sidecars take any version that is not
theirs and verifies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from edge.learning.model import NetworkModel
from edge.learning.model.checkpoints import CheckpointError
from edge.learning.shared_label import SharedLabel
from edge.state import metrics
from edge.state.fleet import as_bytes, stream_entries
from edge.state.keys import LEARNER_GROUP, FleetKeys
from edge.state.link import REDIS_ERRORS, Backoff, RedisLink
from edge.state.snapshot import FleetSnapshot

__all__ = ["Learner", "RENEW_LOCK"]

log = logging.getLogger("edge.learner")

#: Extend the lock only if this learner still holds it (KEYS[1] lock; ARGV: holder, ms).
RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

LEARN_BATCH = 500
LEARN_BLOCK_MS = 250
#: How often a learner holding a model retries Redis after an error (its renewal pace).
RECLAIM_S = 0.25


class Learner:
    """The fleet's learner (see the module docstring). ``new_model`` makes the model it starts from when
    Redis holds no snapshot (the configured model, restored from a checkpoint or the shipped prior)."""

    def __init__(
        self,
        link: RedisLink,
        keys: FleetKeys,
        key: bytes,
        new_model: Callable[[], NetworkModel],
        *,
        identity: str | None = None,
        publish_s: float = 1.0,
        lock_ms: int = 5000,
        on_publish: Callable[[NetworkModel], None] | None = None,
    ) -> None:
        self.link = link
        self.redis = link.redis
        self.keys = keys
        self.key = key
        self.new_model = new_model
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        self.publish_s = publish_s
        self.lock_ms = lock_ms
        self.on_publish = on_publish
        self.leader = False
        self.model: NetworkModel | None = None
        self.version = 0
        self.learned = 0  # labels learned since the start
        self._unacked: list[bytes] = []
        self._last_publish = 0.0
        self._held_at = 0.0  # when the lock was last taken or renewed (monotonic)
        self._seen_free = False  # a standby saw the lock free on its last look
        self._op = "lead"  # what it is asking Redis now (edge_state_errors_total's op when that fails)
        self._renew = self.redis.register_script(RENEW_LOCK)
        self.m = metrics.learner_metrics()
        self.m.leader.set(0)
        metrics.MODEL_VERSION.set(0)

    def state(self) -> dict[str, Any]:
        return {"identity": self.identity, "leader": self.leader, "version": self.version, "learned": self.learned, "pending": len(self._unacked)}

    async def run(self) -> None:
        """Lead or stand by, until cancelled."""
        backoff = Backoff()
        while True:
            try:
                await self.step()
            except REDIS_ERRORS as exc:
                self.link.failed(self._op, exc)
                self._seen_free = False  # a standby looks twice after Redis answers again, a second apart
                if self.leader and (time.monotonic() - self._held_at) * 1000 >= self.lock_ms:
                    log.warning("learner %s could not renew its lock in time; standing by, model kept", self.identity)
                    self._stand_down(keep_model=True)  # another learner may lead by now: never two publishing
                delay = backoff.next_delay()
                # With a model in hand it retries at its renewal pace, so that when Redis answers again it
                # takes the lock back before a standby (which must see it free twice) starts from nothing.
                await asyncio.sleep(min(delay, RECLAIM_S) if self.model is not None else delay)
                continue
            self.link.ok()
            backoff.reset()
            if not self.leader:
                await asyncio.sleep(1.0)

    async def step(self) -> None:
        """One round: hold (or try for) the lock; as the leader, learn one batch and publish when due."""
        now = time.monotonic()
        if not await self._hold_lock():
            return
        if self.model is None:
            await self._take_over()
        await self._learn_batch(">")
        if self._unacked and now - self._last_publish >= self.publish_s:
            await self.publish()
        elif now - self._last_publish >= self.publish_s:
            await self._watch_published()
            self._last_publish = now
        await self._export_lag()

    async def _hold_lock(self) -> bool:
        self._op = "lead"
        if self.leader:
            if await self._renew(keys=[self.keys.learner_lock], args=[self.identity, self.lock_ms]):
                self._held_at = time.monotonic()
                return True
            # The lock is gone or someone else's. Gone (it expired, or Redis restarted empty): take it
            # again and keep this model, unless another learner published meanwhile.
            if await self._claim():
                return True
            log.warning("learner %s lost the lock to another learner; standing by", self.identity)
            self._stand_down()
            return False
        if await self.redis.exists(self.keys.learner_lock):
            self._seen_free = False
            if self.model is not None:  # kept through an outage, but another learner leads now
                log.info("learner %s: another learner leads; dropping the model it kept", self.identity)
                self._stand_down()
            return False
        # A standby takes a lock only once it has seen it free twice in a row (a second apart): when Redis
        # restarts empty the lock vanishes, and the learner that led until then (model in hand, retrying
        # every quarter second) takes it back first instead of a standby starting over from nothing.
        if self.model is None and not self._seen_free:
            self._seen_free = True
            return False
        if await self._claim():
            self.leader = True
            self.m.leader.set(1)
            log.info("learner %s leads", self.identity)
            return True
        return False

    async def _claim(self) -> bool:
        """Take a free lock; a model this learner holds is kept unless another learner published since."""
        if not await self.redis.set(self.keys.learner_lock, self.identity, nx=True, px=self.lock_ms):
            return False
        self._seen_free = False
        self._held_at = time.monotonic()
        if self.model is not None:
            raw = await self.redis.get(self.keys.model_version)
            if raw is not None and raw != self._version_tag():
                log.warning("learner %s: another learner published version %r meanwhile; starting from it", self.identity, raw)
                self.model = None
                self._unacked.clear()
        return True

    def _stand_down(self, *, keep_model: bool = False) -> None:
        """Stop leading. ``keep_model``: Redis went away while it led; the model is kept to resume with
        if this learner is the next to take the lock and nobody published meanwhile."""
        self.leader = False
        if not keep_model:
            self.model = None  # the next time it leads, it starts from what was published
            self._unacked.clear()
        self.m.leader.set(0)
        self.m.pending.set(0)

    async def _take_over(self) -> None:
        """Start from the last published snapshot (or a new model), and learn what a dead leader had not acknowledged."""
        data = as_bytes(await self.redis.get(self.keys.model))
        model = None
        if data is not None:
            try:
                snapshot = await asyncio.to_thread(FleetSnapshot.from_bytes, data, self.key)
            except (CheckpointError, Exception) as exc:
                metrics.SNAPSHOTS.labels("refused" if isinstance(exc, CheckpointError) else "failed").inc()
                log.error("published fleet model unusable, starting from a new one: %s", exc)
            else:
                model, self.version = snapshot.model, snapshot.version
                metrics.SNAPSHOTS.labels("loaded").inc()
        if model is None:
            model = self.new_model()
            raw = as_bytes(await self.redis.get(self.keys.model_version))
            number = raw.split(b" ", 1)[0] if raw is not None else b""
            self.version = max(self.version, int(number) if number.isdigit() else 0)
        extra = getattr(model, "extra", None)
        if isinstance(extra, dict):
            extra.clear()  # a restored checkpoint's cell table and replay guard are the sidecars' business
        self.model = model
        await self._ensure_group()
        # What a dead leader read and never acknowledged is in the group's pending list: learn it again.
        start: bytes | str = "0-0"
        while True:
            reply = await self.redis.xautoclaim(self.keys.labels, LEARNER_GROUP, self.identity, min_idle_time=0, start_id=start, count=LEARN_BATCH)
            start, claimed = reply[0], reply[1]
            self._learn_entries(stream_entries([[self.keys.labels, claimed]]))
            if start in (b"0-0", "0-0") or not claimed:
                break
        await self.publish()  # sidecars see this learner's model at once (also after Redis restarted empty)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.labels, LEARNER_GROUP, id="0", mkstream=True)
        except REDIS_ERRORS as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _learn_batch(self, start: str) -> None:
        self._op = "learn"
        try:
            response = await self.redis.xreadgroup(
                LEARNER_GROUP, self.identity, {self.keys.labels: start}, count=LEARN_BATCH, block=LEARN_BLOCK_MS
            )
        except REDIS_ERRORS as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("the label stream's group is gone (Redis restarted empty?): creating it again and republishing")
            await self._ensure_group()
            await self.publish()
            return
        self._learn_entries(stream_entries(response))

    def _learn_entries(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        model = self.model
        assert model is not None
        learn_from = getattr(model, "learn_from", None)
        for entry_id, fields in entries:
            self._unacked.append(entry_id)
            label = SharedLabel.decode(fields, self.key)
            if label is None:
                metrics.DROPPED.labels("forged_entry").inc()
                continue
            if label.x is None:
                continue  # a cell observation only
            if learn_from is not None:
                learn_from(label.x, label.degraded, label.client, label.trusted)
            else:
                model.learn(label.x, label.degraded)
            self.learned += 1
            self.m.labels.inc()
        self.m.pending.set(len(self._unacked))

    async def publish(self) -> None:
        """Publish the model as the next version, then acknowledge what it holds."""
        assert self.model is not None
        self._op = "publish"
        self.version += 1
        data = await asyncio.to_thread(FleetSnapshot(self.version, time.time(), self.model).to_bytes, self.key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.model, data)
            pipe.set(self.keys.model_version, self._version_tag())
            await pipe.execute()
        if self._unacked:
            for i in range(0, len(self._unacked), 1000):
                await self.redis.xack(self.keys.labels, LEARNER_GROUP, *self._unacked[i : i + 1000])
            self._unacked.clear()
        self._last_publish = time.monotonic()
        metrics.MODEL_VERSION.set(self.version)
        self.m.pending.set(0)
        if self.on_publish is not None:
            self.on_publish(self.model)

    async def _watch_published(self) -> None:
        """Publish again if the published version is not this learner's (Redis restarted empty, or overwritten)."""
        raw = await self.redis.get(self.keys.model_version)
        if raw is None or raw != self._version_tag():
            log.warning("the published model is not this learner's (version %r, ours %d): publishing again", raw, self.version)
            await self.publish()

    def _version_tag(self) -> bytes:
        """What the version key holds: the version and who published it. Sidecars fetch whenever it changes, so
        two learners that both publish a "version 1" (one started over after Redis lost everything) differ."""
        return f"{self.version} {self.identity}".encode()

    async def _export_lag(self) -> None:
        try:
            groups = await self.redis.xinfo_groups(self.keys.labels)
        except REDIS_ERRORS:
            return
        for group in groups:
            fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in dict(group).items()}
            name = fields.get("name")
            if name in (LEARNER_GROUP, LEARNER_GROUP.encode()):
                lag = fields.get("lag")
                if isinstance(lag, int):
                    self.m.stream_lag.set(lag)
