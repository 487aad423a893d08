"""FleetSync against a real redis-server: the outbox, the fleet's replay guard, cells from other
sidecars, forged entries and snapshots, and what happens while Redis is unreachable.

Each test builds two sidecars' worth of state (a :class:`Feedback` with its own cell table and
replay guard, and a :class:`FleetSync`) in one process and drives the background steps by hand
(``flush``, ``follow``, ``poll_model``), so every assertion is about one exchange with Redis.
"""

from __future__ import annotations

import asyncio
import time

import redis

from edge.learning.feedback import Feedback, TokenSigner
from edge.learning.model import RuleModel
from edge.learning.shared_label import SharedLabel
from edge.pipeline.labels import LabelRule
from edge.pipeline.towers import TowerTable
from edge.state.fleet import FleetSync
from edge.state.keys import FleetKeys
from edge.state.link import RedisLink
from edge.state.snapshot import FleetSnapshot

KEY = b"f" * 32
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class Sidecar:
    """One sidecar's learning state and its FleetSync (what edge.runtime.app wires for ``--state``)."""

    def __init__(self, url: str, name: str, **options) -> None:
        self.towers = TowerTable(min_clients=0)
        self.feedback = Feedback(TokenSigner([KEY]), RuleModel(), self.towers, LabelRule())
        self.swapped: list[FleetSnapshot] = []
        self.sync = FleetSync(RedisLink(url), FleetKeys("t:"), KEY, self.feedback, self.swapped.append, origin=name, **options)
        self.feedback.fleet = self.sync


def label(nonce: int, cell: str = "cell-1", kbps: float = 300.0, degraded: bool = True) -> SharedLabel:
    now = time.time()
    return SharedLabel(nonce, now + 600, {"ect": "2g"}, degraded, "198.51.100.9", True, cell, kbps, now)


def run(coro):
    return asyncio.run(coro)


def stream_length(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return client.xlen("t:labels")


def test_a_label_accepted_by_one_sidecar_reaches_anothers_cell_table_and_replay_guard(redis_url):
    async def scenario():
        a, b = Sidecar(redis_url, "a"), Sidecar(redis_url, "b")
        a.sync.link.ok()  # as the background tasks would have found it
        assert a.sync.submit(label(1001)) is True
        assert await a.sync.flush() == 1
        assert a.towers.lookup("cell-1", time.time(), "198.51.100.9").degraded_share == 1.0  # its own, after SET NX
        assert b.towers.lookup("cell-1", time.time()) is None
        await b.sync.follow("0-0")
        state = b.towers.lookup("cell-1", time.time())
        assert state is not None and state.degraded_share == 1.0 and round(state.kbps) == 300
        assert 1001 in b.feedback.guard  # the token is refused on b at once from now on
        await a.sync.link.aclose()
        await b.sync.link.aclose()

    run(scenario())


def test_the_same_token_accepted_on_two_sidecars_at_once_is_learned_once(redis_url):
    async def scenario():
        a, b = Sidecar(redis_url, "a"), Sidecar(redis_url, "b")
        for side in (a, b):
            side.sync.link.ok()
            side.sync.submit(label(2002))
        replayed = metrics_value("edge_feedback_rejected_total", reason="replayed")
        await asyncio.gather(a.sync.flush(), b.sync.flush())
        assert stream_length(redis_url) == 1
        assert metrics_value("edge_feedback_rejected_total", reason="replayed") == replayed + 1
        # Exactly one of the two applied it to its own cell table.
        applied = [side.towers.lookup("cell-1", time.time()) is not None for side in (a, b)]
        assert sorted(applied) == [False, True]
        await a.sync.link.aclose()
        await b.sync.link.aclose()

    run(scenario())


def test_the_outbox_is_bounded_and_counts_what_it_drops():
    async def scenario():
        side = Sidecar(CLOSED_PORT_URL, "a", outbox_max=3)
        dropped = metrics_value("edge_state_dropped_total", reason="outbox_full")
        for nonce in range(5):
            side.sync.submit(label(nonce))
        assert [item.nonce for item in side.sync.outbox] == [2, 3, 4]
        assert metrics_value("edge_state_dropped_total", reason="outbox_full") == dropped + 2
        await side.sync.link.aclose()

    run(scenario())


def test_while_redis_is_unreachable_a_sidecar_learns_alone_and_the_fleet_learns_nothing_twice(redis_url):
    async def scenario():
        a = Sidecar(redis_url, "a")
        fallbacks = metrics_value("edge_state_guard_fallbacks_total")
        assert a.sync.link.connected is False  # nothing exchanged yet: Redis counts as unreachable
        assert a.sync.submit(label(3003)) is False  # Feedback then learns it here
        assert metrics_value("edge_state_guard_fallbacks_total") == fallbacks + 1
        assert a.sync.outbox[0].learned_locally
        # Meanwhile another sidecar got the same token through to Redis.
        b = Sidecar(redis_url, "b")
        b.sync.link.ok()
        b.sync.submit(label(3003))
        await b.sync.flush()
        # Redis is back for a: the label loses its SET NX and is not sent again.
        await a.sync.flush()
        assert stream_length(redis_url) == 1
        assert not a.sync.outbox
        await a.sync.link.aclose()
        await b.sync.link.aclose()

    run(scenario())


def test_a_fleet_label_is_learned_locally_through_feedback_when_redis_is_unreachable():
    async def scenario():
        side = Sidecar(CLOSED_PORT_URL, "a")
        signer = side.feedback.signer
        token = signer.sign({"x": {"ect": "2g"}, "d": "full", "s": "rules", "p": 0.2, "u": 1.0, "c": "cell-9"}, time.time())
        import orjson

        body = orjson.dumps({"t": token, "nav": [5, 105, 2605, 100_000], "res": []})
        _, _, degraded = side.feedback.beacon(body, time.time(), "198.51.100.9")
        assert degraded is True
        assert side.towers.lookup("cell-9", time.time(), "198.51.100.9") is not None  # learned here, now
        assert len(side.sync.outbox) == 1  # and kept for the fleet
        await side.sync.link.aclose()

    run(scenario())


def test_a_stream_entry_without_the_keys_signature_is_dropped(redis_url):
    async def scenario():
        b = Sidecar(redis_url, "b")
        forged = label(4004).encode(b"not the key" * 3)
        with redis.Redis.from_url(redis_url) as client:
            client.xadd("t:labels", {"o": "mallory", **forged})
        dropped = metrics_value("edge_state_dropped_total", reason="forged_entry")
        await b.sync.follow("0-0")
        assert b.towers.lookup("cell-1", time.time()) is None
        assert 4004 not in b.feedback.guard
        assert metrics_value("edge_state_dropped_total", reason="forged_entry") == dropped + 1
        await b.sync.link.aclose()

    run(scenario())


def test_a_sidecar_swaps_in_a_genuine_snapshot_and_refuses_a_forged_one(redis_url):
    async def scenario():
        side = Sidecar(redis_url, "a")
        with redis.Redis.from_url(redis_url) as client:
            client.set("t:model", FleetSnapshot(7, time.time(), RuleModel()).to_bytes(b"x" * 32))  # wrong key
            client.set("t:model:version", "7")
        refused = metrics_value("edge_state_snapshots_total", result="refused")
        assert await side.sync.poll_model() is False
        assert side.swapped == [] and side.sync.model_version == 0
        assert metrics_value("edge_state_snapshots_total", result="refused") == refused + 1
        with redis.Redis.from_url(redis_url) as client:
            client.set("t:model", FleetSnapshot(8, time.time(), RuleModel()).to_bytes(KEY))
            client.set("t:model:version", "8")
        assert await side.sync.poll_model() is True
        assert [s.version for s in side.swapped] == [8] and side.sync.model_version == 8
        assert await side.sync.poll_model() is False  # same version: nothing fetched
        await side.sync.link.aclose()

    run(scenario())


def metrics_value(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value



def test_old_entries_are_trimmed_by_age_but_never_before_the_learner_read_them(redis_url):
    async def scenario():
        side = Sidecar(redis_url, "a", cell_memory_s=0.0)  # every entry is "old"
        with redis.Redis.from_url(redis_url) as client:
            for i in range(300):
                client.xadd("t:labels", {"o": "x", **label(i).encode(KEY)})
            await side.sync.trim()  # no learner group: trimmed by age
            assert client.xlen("t:labels") < 300
            for i in range(300, 600):
                client.xadd("t:labels", {"o": "x", **label(i).encode(KEY)})
            client.xgroup_create("t:labels", "learner", id="$")  # a learner that has read nothing after this
            before = client.xlen("t:labels")
            for i in range(600, 900):
                client.xadd("t:labels", {"o": "x", **label(i).encode(KEY)})
            await side.sync.trim()
            unread = client.xrange("t:labels", min="(" + client.xinfo_groups("t:labels")[0]["last-delivered-id"].decode())
            assert len(unread) == 300 and client.xlen("t:labels") >= 300  # everything the learner has not read is kept
            assert client.xlen("t:labels") < before + 300  # what it had read may go
        await side.sync.link.aclose()

    run(scenario())


def test_trimming_a_stream_that_does_not_exist_yet_is_no_error(redis_url):
    async def scenario():
        side = Sidecar(redis_url, "a")
        await side.sync.trim()  # XINFO GROUPS on a missing key is an error reply, not a lost Redis
        with redis.Redis.from_url(redis_url) as client:
            assert client.exists("t:labels") == 0
        await side.sync.link.aclose()

    run(scenario())
