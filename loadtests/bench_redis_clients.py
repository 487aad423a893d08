"""Which asyncio Redis client a fleet's sidecar should use: its own Redis commands, per client, in one run.

    python loadtests/bench_redis_clients.py [--rounds 10] [--reps 1000] [--loop uvloop] [--json out.json]

A ``redis-server`` (Debian's) is started here on loopback (``--save '' --appendonly no``), and every
client importable in this interpreter runs the commands :mod:`edge.state.fleet` sends, as it sends them:

- **flush ×1 / flush ×64**: the outbox's flush, a non-transactional pipeline of N ``EVALSHA`` of
  :data:`edge.state.fleet.ACCEPT_ONCE` (keys: a fresh nonce key and the label stream; args: expiry,
  stream bound, origin, a signed label body of ~300 bytes and its signature), so every call sets its
  nonce and appends to the stream as an accepted label does. µs per flush (one round trip);
- **XREAD 100**: the stream follower's read (``COUNT 1000 BLOCK 1000``) of a stream holding 100
  labels, from its start: µs per read;
- **GET version / GET 34 KB**: the model poll, a version key of a few bytes and a snapshot-sized
  value (a fleet model snapshot is ~34 KB): µs per ``GET``;
- **stall XREAD 1000**: the follower's read of a full batch (``FOLLOW_BATCH``, 1000 entries, what it
  gets when the fleet's labels arrive faster than it reads), with a task beside it that only yields to
  the event loop: the longest gap between its turns is how long the client held the loop, so how
  long every request of the sidecar waited on it. µs per read (no CPU figure: the task spins).

Clients (a line says which are not installed; only redis-py is required):

- ``redis-py`` with its pure-Python parser (forced with ``parser_class``: redis-py uses hiredis on
  its own whenever the ``hiredis`` package is importable) — what ``edge`` runs today, the baseline;
- ``redis-py + hiredis`` (``parser_class=_AsyncHiredisParser``);
- ``valkey`` (valkey-py, the fork of redis-py) with its pure parser, and ``valkey + libvalkey``
  (its C parser, the ``libvalkey`` package: valkey-py does not use hiredis);
- ``coredis`` (6.x: anyio, RESP3 only; its published wheels ship its parser compiled).

This machine is shared and noisy, so every figure comes from the same run: ``--rounds`` rounds, each
measuring every operation for every client back to back (the client order rotates each round), each
block ``--reps`` calls timed one by one after a warm-up. A block gives its median; the table shows the
median and the minimum of the rounds' medians, and each client's ratio to redis-py (pure) as the median
of the per-round ratios (drift between rounds cancels out). ``cpu µs`` is this process's CPU time per
call (``time.process_time``): what the client costs the sidecar, whose CPU serves pages. Encoding a
label (orjson + HMAC) is the same for every client and stays outside the timing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

from edge.learning.shared_label import SharedLabel
from edge.state.fleet import ACCEPT_ONCE, FOLLOW_BATCH, FOLLOW_BLOCK_MS, stream_entries
from edge.state.keys import FleetKeys

KEYS = FleetKeys("bench:")
FOLLOW_STREAM = "bench:follow"  # the pre-filled stream the follower reads (the flushes append to KEYS.labels)
FOLLOW_ENTRIES = 100
FULL_STREAM = "bench:follow-full"  # a full batch: FOLLOW_BATCH entries
MODEL_BYTES = 34 * 1024
VERSION = b"1742"
EXPIRY_MS = 600_000  # a token's remaining life: the default ten minutes
STREAM_MAX = 100_000  # --state-stream-max's default
ORIGIN = b"edge-7f9c4d-x2k8p"  # a pod name
SIGNING_KEY = b"bench-redis-clients-key-0123456789"
#: Every EVALSHA sets a nonce no client set before (all clients share one server), so each one is accepted.
NONCES = itertools.count(1)

#: What each operation measures, in table order: name, heading, the unit of one call, reps relative to ``--reps``.
OPS: list[tuple[str, str, str, float]] = [
    ("flush_1", "flush ×1", "µs per flush (1 EVALSHA)", 1.0),
    ("flush_64", "flush ×64", "µs per flush (64 EVALSHA in one pipeline)", 0.2),
    ("xread_100", "XREAD 100", "µs per XREAD returning 100 entries", 0.5),
    ("get_version", "GET version", "µs per GET of a 4-byte value", 1.0),
    ("get_model", "GET 34 KB", "µs per GET of a 34 KB value", 0.5),
    ("stall_1000", "stall XREAD 1000", "µs: the longest event-loop stall while an XREAD returns a full batch (1000 entries)", 0.02),
]
BASELINE = "redis-py"


def label_fields() -> tuple[bytes, bytes]:
    """A label as a sidecar accepts it (the features a token carries): its signed body (~300 bytes) and signature."""
    x = {
        "device_class": "phone", "os": "android", "ect": "3g", "rtt_ms": 450.0, "downlink_kbps": 700.0,
        "save_data": False, "radio": "lte", "rsrp": -108.0, "sinr": 3.5, "last_kbps": 310.5, "last_age_s": 42.0,
        "tcp_rtt_ms": 180.0, "tcp_goodput_kbps": 640.0, "cell_kbps": 820.0, "cell_degraded_share": 0.41,
    }  # fmt: skip
    label = SharedLabel(
        nonce=8_815_338_020_190_317, expires=time.time() + 600, x=x, degraded=True, client="198.51.100.0/24",
        trusted=True, cell="404-45-20714-132", kbps=310.5, at=time.time(),
    )  # fmt: skip
    fields = label.encode(SIGNING_KEY)
    return fields[b"l"], fields[b"s"]


BODY, SIG = label_fields()


# The clients: each opens itself, then offers the fleet's operations as coroutines.


class RedisPy:
    """redis-py's asyncio client built as :class:`edge.state.link.RedisLink` builds it, with a chosen parser."""

    module = "redis"

    def __init__(self, name: str, url: str, parser: str) -> None:
        self.name, self.url, self.parser = name, url, parser
        self.sha = ""

    def _client_class(self) -> Any:
        import redis.asyncio

        return redis.asyncio.Redis

    def _parser_class(self) -> Any:
        from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

        # RESP2's pure parser: redis-py swaps in its RESP3 twin itself when the connection speaks RESP3.
        return _AsyncHiredisParser if self.parser == "hiredis" else _AsyncRESP2Parser

    async def open(self, sha: str) -> None:
        self.sha = sha
        self.redis = self._client_class().from_url(
            self.url, parser_class=self._parser_class(), socket_timeout=3.0, socket_connect_timeout=3.0,
            retry_on_timeout=False, health_check_interval=0,
        )  # fmt: skip

    async def close(self) -> None:
        await self.redis.aclose()

    def describe(self) -> dict[str, Any]:
        pool = self.redis.connection_pool
        connection = next(iter(getattr(pool, "_available_connections", [])), None)
        return {
            "package": f"{self.module} {importlib.metadata.version(self.module)}",
            "parser": type(getattr(connection, "_parser", None)).__name__,
            "protocol": getattr(connection, "protocol", None),
        }

    async def flush(self, n: int) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for _ in range(n):
            pipe.evalsha(self.sha, 2, KEYS.nonce(next(NONCES)), KEYS.labels, EXPIRY_MS, STREAM_MAX, ORIGIN, BODY, SIG)
        return await pipe.execute()

    async def xread(self, stream: str = FOLLOW_STREAM) -> Any:
        return await self.redis.xread({stream: "0-0"}, count=FOLLOW_BATCH, block=FOLLOW_BLOCK_MS)

    def entries(self, response: Any) -> list[dict[bytes, bytes]]:
        """The fields of each entry of an XREAD reply, as :func:`edge.state.fleet.stream_entries` reads them."""
        return [fields for _, fields in stream_entries(response)]

    async def get(self, key: str) -> bytes | None:
        return await self.redis.get(key)


class Valkey(RedisPy):
    """valkey-py: redis-py's fork, the same API; its C parser comes from ``libvalkey``."""

    module = "valkey"

    def _client_class(self) -> Any:
        import valkey.asyncio

        return valkey.asyncio.Valkey

    def _parser_class(self) -> Any:
        from valkey._parsers import _AsyncLibvalkeyParser, _AsyncRESP2Parser

        return _AsyncLibvalkeyParser if self.parser == "libvalkey" else _AsyncRESP2Parser


class Coredis(RedisPy):
    """coredis 6: a client is an async context manager; a pipeline sends its commands when its block exits."""

    module = "coredis"

    async def open(self, sha: str) -> None:
        import coredis

        self.sha = sha
        port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self.redis = coredis.Redis(host="127.0.0.1", port=port, stream_timeout=3.0, connect_timeout=3.0)
        await self.redis.__aenter__()

    async def close(self) -> None:
        await self.redis.__aexit__(None, None, None)

    def describe(self) -> dict[str, Any]:
        import coredis.parser

        compiled = Path(coredis.parser.__file__).suffix == ".so"
        return {"package": f"coredis {importlib.metadata.version('coredis')}", "parser": "compiled" if compiled else "pure", "protocol": 3}

    async def flush(self, n: int) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for _ in range(n):
                pipe.evalsha(self.sha, keys=[KEYS.nonce(next(NONCES)), KEYS.labels], args=[EXPIRY_MS, STREAM_MAX, ORIGIN, BODY, SIG])
        return list(pipe.results or ())

    async def xread(self, stream: str = FOLLOW_STREAM) -> Any:
        return await self.redis.xread({stream: "0-0"}, count=FOLLOW_BATCH, block=FOLLOW_BLOCK_MS)

    def entries(self, response: Any) -> list[dict[bytes, bytes]]:
        return [dict(entry.field_values) for entries in (response or {}).values() for entry in entries]

    async def get(self, key: str) -> bytes | None:
        return await self.redis.get(key)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def clients(url: str) -> tuple[list[RedisPy], list[str]]:
    """The clients this interpreter has, redis-py (pure) first; and a line for each one that is missing."""
    from redis.utils import HIREDIS_AVAILABLE

    found: list[RedisPy] = [RedisPy(BASELINE, url, "pure")]
    skipped: list[str] = []
    if HIREDIS_AVAILABLE:
        found.append(RedisPy("redis-py + hiredis", url, "hiredis"))
    else:
        skipped.append("redis-py + hiredis: hiredis is not installed (or too old for this redis-py)")
    if installed("valkey"):
        found.append(Valkey("valkey", url, "pure"))
        from valkey.utils import LIBVALKEY_AVAILABLE

        if LIBVALKEY_AVAILABLE:
            found.append(Valkey("valkey + libvalkey", url, "libvalkey"))
        else:
            skipped.append("valkey + libvalkey: libvalkey is not installed")
    else:
        skipped.append("valkey: not installed (pip install valkey)")
    if not installed("coredis"):
        skipped.append("coredis: not installed (pip install coredis)")
    elif int(importlib.metadata.version("coredis").split(".")[0]) < 6:
        skipped.append(f"coredis: {importlib.metadata.version('coredis')} installed, this script speaks coredis 6's API")
    else:
        found.append(Coredis("coredis", url, "compiled"))
    return found, skipped


# The server and its data.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis(port=port) as probe:
                probe.ping()
            return process, port
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)


def seed(admin: redis.Redis) -> None:
    """Empty the server but for what the reads read: the followed stream, the model's version and snapshot."""
    admin.flushall()
    pipe = admin.pipeline(transaction=False)
    for _ in range(FOLLOW_ENTRIES):
        pipe.xadd(FOLLOW_STREAM, {"o": ORIGIN, "l": BODY, "s": SIG})
    for _ in range(FOLLOW_BATCH):
        pipe.xadd(FULL_STREAM, {"o": ORIGIN, "l": BODY, "s": SIG})
    pipe.set(KEYS.model_version, VERSION)
    pipe.set(KEYS.model, bytes(range(256)) * (MODEL_BYTES // 256))
    pipe.execute()


# Measuring.


async def block(call: Callable[[], Awaitable[Any]], reps: int) -> dict[str, float | None]:
    """``reps`` calls timed one by one after a warm-up: median and min µs per call, and CPU µs per call."""
    for _ in range(max(3, reps // 20)):
        await call()
    gc.collect()
    samples = [0] * reps
    cpu = time.process_time_ns()
    for i in range(reps):
        start = time.perf_counter_ns()
        await call()
        samples[i] = time.perf_counter_ns() - start
    cpu = time.process_time_ns() - cpu
    return {"median_us": statistics.median(samples) / 1000, "min_us": min(samples) / 1000, "cpu_us": cpu / reps / 1000}


async def stall_block(call: Callable[[], Awaitable[Any]], reps: int) -> dict[str, float | None]:
    """``reps`` calls, each with a task that only yields to the loop and notes the longest gap between its turns:
    how long the client held the event loop (every request of the sidecar waits that long). Median and min µs."""
    for _ in range(2):
        await call()
    gc.collect()
    stalls = [0] * reps
    state = {"running": 1, "worst": 0}

    async def ticker() -> None:
        last = time.perf_counter_ns()
        while state["running"]:
            await asyncio.sleep(0)
            now = time.perf_counter_ns()
            state["worst"], last = max(state["worst"], now - last), now

    for i in range(reps):
        state.update(running=1, worst=0)
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await call()
        state["running"] = 0
        await task
        stalls[i] = state["worst"]
    return {"median_us": statistics.median(stalls) / 1000, "min_us": min(stalls) / 1000, "cpu_us": None}  # the ticker spins: no CPU figure


def operation(client: RedisPy, op: str) -> Callable[[], Awaitable[Any]]:
    return {
        "flush_1": lambda: client.flush(1),
        "flush_64": lambda: client.flush(64),
        "xread_100": client.xread,
        "get_version": lambda: client.get(KEYS.model_version),
        "get_model": lambda: client.get(KEYS.model),
        "stall_1000": lambda: client.xread(FULL_STREAM),
    }[op]


async def check(client: RedisPy) -> None:
    """Each client's replies are what the fleet expects before anything is timed."""
    accepted = await client.flush(2)
    assert list(accepted) == [1, 1], (client.name, accepted)
    entries = client.entries(await client.xread())
    assert len(entries) == FOLLOW_ENTRIES and entries[0] == {b"o": ORIGIN, b"l": BODY, b"s": SIG}, (client.name, entries[:1])
    assert await client.get(KEYS.model_version) == VERSION, client.name
    model = await client.get(KEYS.model)
    assert model is not None and len(model) == MODEL_BYTES, client.name
    assert len(client.entries(await client.xread(FULL_STREAM))) == FOLLOW_BATCH, client.name


async def measure(args: argparse.Namespace, url: str, admin: redis.Redis) -> dict[str, Any]:
    found, skipped = clients(url)
    sha = admin.script_load(ACCEPT_ONCE)
    seed(admin)
    for client in found:
        await client.open(sha)
        await check(client)
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {c.name: {op: [] for op, *_ in OPS} for c in found}
    try:
        for r in range(args.rounds):
            order = found[r % len(found) :] + found[: r % len(found)]
            for op, _, _, share in OPS:
                reps = max(5, int(args.reps * share))
                for client in order:
                    measured = stall_block if op == "stall_1000" else block
                    raw[client.name][op].append(await measured(operation(client, op), reps))
                    if op.startswith("flush"):
                        seed(admin)  # the nonces and stream entries written: gone, so every round starts alike
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        described = {c.name: c.describe() for c in found}
    finally:
        for client in found:
            await client.close()
    return summarise(args, raw, described, skipped)


def summarise(
    args: argparse.Namespace, raw: dict[str, dict[str, list[dict[str, Any]]]], described: dict[str, Any], skipped: list[str]
) -> dict[str, Any]:
    rows = []
    for name, ops in raw.items():
        for op, blocks in ops.items():
            medians = [b["median_us"] for b in blocks]
            baseline = [b["median_us"] for b in raw[BASELINE][op]]
            ratios = [m / base for m, base in zip(medians, baseline)]
            cpu = [b["cpu_us"] for b in blocks if b["cpu_us"] is not None]
            cpu_ratios = [b["cpu_us"] / base["cpu_us"] for b, base in zip(blocks, raw[BASELINE][op]) if b["cpu_us"] is not None]
            rows.append({
                "client": name, "op": op,
                "median_us": statistics.median(medians), "min_us": min(medians),
                "fastest_call_us": min(b["min_us"] for b in blocks),
                "cpu_us": statistics.median(cpu) if cpu else None, "cpu_ratio": statistics.median(cpu_ratios) if cpu else None,
                "ratio": statistics.median(ratios), "ratios": ratios, "round_medians_us": medians,
            })  # fmt: skip
    with redis.Redis(port=args.port) as admin:
        server = admin.info("server")["redis_version"]
    return {
        "python": platform.python_version(),
        "loop": args.loop,
        "redis_server": server,
        "rounds": args.rounds,
        "reps": {op: max(5, int(args.reps * share)) for op, _, _, share in OPS},
        "units": {op: unit for op, _, unit, _ in OPS},
        "label_body_bytes": len(BODY),
        "model_bytes": MODEL_BYTES,
        "clients": described,
        "skipped": skipped,
        "rows": rows,
    }


def table(report: dict[str, Any]) -> str:
    names = list(report["clients"])
    cell = {(row["client"], row["op"]): row for row in report["rows"]}
    width = max(len(n) for n in names) + 2

    def section(title: str, value: Callable[[dict[str, Any]], str]) -> list[str]:
        lines = [title, "client".ljust(width) + "".join(heading.rjust(17) for _, heading, _, _ in OPS)]
        for name in names:
            lines.append(name.ljust(width) + "".join(value(cell[name, op]).rjust(17) for op, _, _, _ in OPS))
        return lines + [""]

    out = [
        f"{report['rounds']} rounds; reps per block {report['reps']}; loop {report['loop']}; redis-server {report['redis_server']}; "
        f"label body {report['label_body_bytes']} B; Python {report['python']}",
        "",
    ]
    out += section("µs per call (stall: µs the loop was held during one call): median of the rounds' medians (× redis-py pure, median of the per-round ratios)",
                   lambda r: f"{r['median_us']:,.0f} ({r['ratio']:.2f})" if r["median_us"] >= 100 else f"{r['median_us']:.1f} ({r['ratio']:.2f})")  # fmt: skip
    out += section("µs per call: min of the rounds' medians", lambda r: f"{r['min_us']:,.1f}")
    out += section("client CPU µs per call: this process's, median over rounds (× redis-py pure, median of the per-round ratios)",
                   lambda r: "—" if r["cpu_us"] is None else f"{r['cpu_us']:,.0f} ({r['cpu_ratio']:.2f})")  # fmt: skip
    out.append(
        "clients: " + "; ".join(f"{n}: {d['package']}, parser {d['parser']}, RESP{d['protocol']}" for n, d in report["clients"].items())
    )
    out += [f"skipped {line}" for line in report["skipped"]]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds; every client runs every operation once per round")
    parser.add_argument("--reps", type=int, default=1000, help="calls per block (flush ×64 takes a fifth, XREAD and GET 34 KB half)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (edge serve runs on uvloop)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if args.loop == "uvloop" and not installed("uvloop"):
        print("skipped uvloop: not installed, measuring on asyncio's loop")
        args.loop = "asyncio"
    with tempfile.TemporaryDirectory(prefix="bench-redis-clients-") as workdir:
        server, args.port = start_redis(Path(workdir))
        try:
            with redis.Redis(port=args.port) as admin:
                factory = None
                if args.loop == "uvloop":
                    import uvloop

                    factory = uvloop.new_event_loop
                with asyncio.Runner(loop_factory=factory) as runner:
                    report = runner.run(measure(args, f"redis://127.0.0.1:{args.port}/0", admin))
                report["command"] = "python loadtests/bench_redis_clients.py " + " ".join(sys.argv[1:])
                print(table(report))
        finally:
            server.terminate()
            server.wait(timeout=10)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
