"""What a fleet costs: ``edge serve`` with ``--state redis://…`` against the same edge without, in one run.

    .venv/bin/python loadtests/bench_fleet.py [--duration 10] [--trials 20] [--json out.json]

Everything runs here on loopback: a ``redis-server`` (Debian's), the demo storefront, two
sidecars with ``--state`` (A and C) and one sidecar without a fleet. No learner runs: it is not
on any request's path, and its own commands (its stream reads, lock renewals) would blur the
sidecars' counts. The
cases alternate (direct, off, on, ×``--rounds``; medians reported) so that drift in this shared
machine's speed hits both alike:

- **added p50 at c=1 and req/s at c=16** (``wrk``, the full tier with 4G hints) with the fleet on
  and off, and their difference (the issue's target: within 0.05 ms and 5 %);
- **Redis commands per request**: ``INFO commandstats`` before and after the c=16 run on sidecar
  A, divided by its requests (what remains is the background: a version poll a second, a blocking
  stream read a second, a trim every 10 s);
- **Redis round trips and commands per beacon**: N fresh beacons posted to A, the same counters;
- **beacon on A → changed decision on C**: ``--trials`` times, five shoppers' slow beacons for a new cell on A,
  then C is asked (every 5 ms) for a newcomer on that cell until it serves lite; the time from the
  last beacon's 204 to that page (median and max).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import EDGE, HINTS_4G, free_port, wait_ready, wrk  # noqa: E402

KEY = "bench-fleet-key-0123456789abcdef"
#: Distinct shoppers whose slow beacons make a cell's state visible to a newcomer (edge.pipeline.towers.MIN_CLIENTS).
SLOW_SHOPPERS = 5
UA = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0) > 0}


def get(port: int, headers: dict[str, str]) -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return response.headers["edge-tier"], response.headers["edge-token"]


def beacon(port: int, token: str, slow: bool, client: str) -> int:
    """POST a beacon as shopper ``client`` (an address edge believes from X-Forwarded-For: each has its own label budget)."""
    # Slow: 100 KB in 1.2 s (667 kbit/s, degraded). A beacon may not claim a download longer than the time
    # since its page was served (+1 s), or its label is kept from other shoppers (edge.learning.feedback).
    nav = [5, 105, 1305, 100_000] if slow else [5, 35, 75, 100_000]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/__edge/beacon",
        data=orjson.dumps({"t": token, "nav": nav, "res": []}),
        headers={"X-Forwarded-For": client},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of direct, off, on (medians are reported)")
    parser.add_argument("--trials", type=int, default=20, help="beacon → decision trials")
    parser.add_argument("--beacons", type=int, default=50, help="beacons for the per-beacon command count")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(redis_bin).exists():
        raise SystemExit("bench_fleet: redis-server is needed (apt-get install redis-server)")
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    procs: list[subprocess.Popen] = []
    try:
        rport, sf, off, a, c, a_admin = (free_port() for _ in range(6))
        procs.append(subprocess.Popen([redis_bin, "--port", str(rport), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        state = f"redis://127.0.0.1:{rport}/0"
        # Shoppers are told apart by X-Forwarded-For (labels are budgeted per client, and a cell's reports
        # are shown to others once several clients agree: edge.learning.trust, edge.pipeline.towers).
        env = {"EDGE_FEEDBACK_KEY": KEY, "EDGE_LOG_LEVEL": "warning", "EDGE_FORWARDED_ALLOW_IPS": "127.0.0.1"}
        procs.append(start([*EDGE, "storefront", "--port", str(sf), "--log-level", "warning"], {}, work / "storefront.log"))
        upstream = f"http://127.0.0.1:{sf}"
        for name, port, admin, extra in (("off", off, free_port(), []), ("a", a, a_admin, ["--state", state]), ("c", c, free_port(), ["--state", state])):
            procs.append(start([*EDGE, "serve", "--upstream", upstream, "--port", str(port), "--admin-port", str(admin), *extra], env, work / f"{name}.log"))
        for port in (sf, off, a, c):
            wait_ready(f"http://127.0.0.1:{port}/")
        client = redis.Redis.from_url(state)

        # 1. Added latency and throughput, fleet off and on, alternating.
        rows: dict[str, list] = {"direct": [], "off": [], "on": []}
        commands_per_request = None
        for round_ in range(args.rounds):
            for name, port in (("direct", sf), ("off", off), ("on", a)):
                headers = {**HINTS_4G, "User-Agent": UA}
                wrk(port, headers, 1, 1)  # warm-up
                c1 = wrk(port, headers, 1, args.duration)
                before = commandstats(client)
                c16 = wrk(port, headers, 16, args.duration)
                if name == "on" and round_ == args.rounds - 1:
                    calls = delta(before, commandstats(client))
                    commands_per_request = {"commands": sum(calls.values()) / max(1, c16.requests), "by_command": calls, "requests": c16.requests}
                rows[name].append((c1.p50_ms, c16.rps, c1.non_2xx + c16.non_2xx))
        direct_p50 = statistics.median(r[0] for r in rows["direct"])
        figures: dict = {"cases": {}}
        for name in ("direct", "off", "on"):
            p50 = statistics.median(r[0] for r in rows[name])
            rps = statistics.median(r[1] for r in rows[name])
            figures["cases"][name] = {
                "p50_ms_c1": p50,
                "added_p50_ms": p50 - direct_p50,
                "rps_c16": rps,
                "non_2xx": sum(r[2] for r in rows[name]),
                "rounds": [{"p50_ms_c1": r[0], "rps_c16": r[1]} for r in rows[name]],
            }
        on, off_ = figures["cases"]["on"], figures["cases"]["off"]
        figures["fleet_added_p50_ms"] = on["added_p50_ms"] - off_["added_p50_ms"]
        figures["fleet_rps_ratio"] = on["rps_c16"] / off_["rps_c16"]
        figures["redis_per_request"] = commands_per_request

        # 2. Redis commands per beacon.
        tokens = [get(a, {"User-Agent": f"{UA} b/{i}"})[1] for i in range(args.beacons)]
        time.sleep(1.5)
        before = commandstats(client)
        started = time.monotonic()
        statuses = [beacon(a, token, slow=False, client=f"198.51.{i // 200}.{i % 200 + 1}") for i, token in enumerate(tokens)]
        time.sleep(1.0)  # the outbox flushes in the background
        elapsed = time.monotonic() - started
        calls = delta(before, commandstats(client))
        figures["redis_per_beacon"] = {
            "beacons": len(tokens),
            "accepted": statuses.count(204),
            "seconds": round(elapsed, 2),
            "by_command": calls,
            "evalsha_per_beacon": calls.get("evalsha", 0) / len(tokens),
            "writes_per_beacon": (calls.get("set", 0) + calls.get("xadd", 0)) / len(tokens),
        }

        # 3. Beacon on A → changed decision on C.
        took = []
        for trial in range(args.trials):
            cell = {"Edge-Cell": f'id="bench-{uuid.uuid4().hex[:10]}"'}
            newcomer = {"User-Agent": f"{UA} newcomer/{trial}", "X-Forwarded-For": f"192.0.2.{trial + 1}", **cell}
            assert get(c, newcomer)[0] == "full"
            page_tokens = [get(a, {"User-Agent": f"{UA} slow/{trial}-{i}", **cell})[1] for i in range(SLOW_SHOPPERS)]
            time.sleep(0.3)  # the pages load (see beacon())
            for i, token in enumerate(page_tokens):
                beacon(a, token, slow=True, client=f"203.0.{trial}.{i + 1}")
            sent = time.monotonic()
            while get(c, newcomer)[0] == "full":
                if time.monotonic() - sent > 10:
                    raise SystemExit("bench_fleet: C never changed its decision")
                time.sleep(0.005)
            took.append((time.monotonic() - sent) * 1000)
        # The link's health over the whole run, on A: a benchmark of a fleet that lost Redis would measure nothing.
        with urllib.request.urlopen(f"http://127.0.0.1:{a_admin}/metrics", timeout=10) as response:
            exposition = response.read().decode()
        figures["sidecar_a"] = {
            name: sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines() if line.startswith(name + "{") or line.startswith(name + " "))
            for name in ("edge_state_errors_total", "edge_state_guard_fallbacks_total", "edge_state_dropped_total")
        }
        figures["beacon_to_decision_ms"] = {"trials": len(took), "median": statistics.median(took), "max": max(took), "min": min(took)}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"{'case':<8} {'p50 c=1 ms':>11} {'added ms':>9} {'req/s c=16':>11} {'non-2xx':>8}")
    for name, row in figures["cases"].items():
        print(f"{name:<8} {row['p50_ms_c1']:>11.3f} {row['added_p50_ms']:>9.3f} {row['rps_c16']:>11.0f} {row['non_2xx']:>8}")
    print(f"fleet on − off: added p50 {figures['fleet_added_p50_ms']:+.3f} ms, req/s ×{figures['fleet_rps_ratio']:.3f} (medians of {args.rounds} rounds)")
    for name in ("off", "on"):
        rounds = figures["cases"][name]["rounds"]
        print(f"  {name} by round: p50 c=1 " + ", ".join(f"{r['p50_ms_c1']:.3f}" for r in rounds) + " ms; req/s c=16 " + ", ".join(f"{r['rps_c16']:.0f}" for r in rounds))
    per_request = figures["redis_per_request"]
    print(f"Redis commands per request (c=16 run, background included): {per_request['commands']:.4f} over {per_request['requests']} requests {per_request['by_command']}")
    per_beacon = figures["redis_per_beacon"]
    print(f"per beacon: {per_beacon['evalsha_per_beacon']:.2f} EVALSHA (SET NX + XADD inside: {per_beacon['writes_per_beacon']:.2f} writes); all commands {per_beacon['by_command']}")
    print(f"sidecar A over the run: {figures['sidecar_a']}")
    d = figures["beacon_to_decision_ms"]
    print(f"beacon on A → decision on C: median {d['median']:.0f} ms, min {d['min']:.0f}, max {d['max']:.0f} over {d['trials']} trials")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
