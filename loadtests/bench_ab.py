"""A/B of edge source trees under bench.py's full-tier load: direct, nginx and each edge in turn, in rounds.

    .venv/bin/python loadtests/bench_ab.py --edge before=/tmp/edge-a --edge after=/work/main \\
        [--rounds 6] [--duration 4] [--concurrency 1 16] [--workers 1]
    .venv/bin/python loadtests/bench_ab.py --edge "x2=. --workers 2" --edge "x2-batch=. --workers 2 --cpu-policy batch"

Each ``--edge NAME=TREE`` is a directory holding an ``edge`` package and ``policies/`` (for example
``git archive <commit> edge policies | tar -x -C TREE``); its ``edge serve`` runs with that tree first
on ``PYTHONPATH``, in front of one demo storefront, next to :mod:`bench`'s nginx; words after the tree are
more ``edge serve`` flags for that edge (they win over ``--workers``), so one tree can be run several ways. Every round runs
``wrk`` (4G hints: the full tier) on each target in turn, the order reversed every other round, so a
noisy neighbour weighs on all of them alike; the report gives medians over the rounds of req/s, p50,
edge CPU and context switches (all of its processes and threads) per request, and req/s and added p50
as ratios to nginx's, then each round's figures.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (this directory's bench.py: wrk, nginx, CPU readings)

PY = sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edge", action="append", default=[], metavar="NAME=TREE", help="an edge source tree (repeat)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per target per round")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if not bench.ensure_tools():
        raise SystemExit("bench_ab: nginx is needed for the ratios")
    edges = [(name, shlex.split(rest)) for name, rest in (spec.split("=", 1) for spec in args.edge)]
    tmp = Path(tempfile.mkdtemp(prefix="edge-ab-"))
    shop = bench.free_port()
    procs = {"direct": subprocess.Popen([*bench.EDGE, "storefront", "--port", str(shop), "--log-level", "warning"])}
    ports = {"direct": shop}
    try:
        bench.wait_ready(f"http://127.0.0.1:{shop}/")
        ports["nginx"] = bench.free_port()
        procs["nginx"] = bench.start_nginx(shop, ports["nginx"], tmp)
        bench.wait_ready(f"http://127.0.0.1:{ports['nginx']}/")
        for name, (tree, *flags) in edges:
            ports[name], admin = bench.free_port(), bench.free_port()
            env = {**os.environ, "EDGE_FEEDBACK_KEY": "bench-key-0123456789abcdef", "PYTHONPATH": tree}
            procs[name] = subprocess.Popen(
                [PY, "-m", "edge.runtime.cli", "serve", "--upstream", f"http://127.0.0.1:{shop}", "--port", str(ports[name]),
                 "--admin-port", str(admin), "--log-level", "warning", "--workers", str(args.workers), "--upstream-transport", "http1", *flags],
                env=env, cwd=tree,
            )  # fmt: skip
            bench.wait_ready(f"http://127.0.0.1:{admin}/readyz")
        time.sleep(1.0)
        names = ["direct", "nginx", *(name for name, _ in edges)]
        for concurrency in args.concurrency:
            report(concurrency, names, measure(names, ports, procs, concurrency, args.rounds, args.duration))
    finally:
        bench.stop(procs.values())


Row = tuple[float, float, float | None, float | None]


def measure(names: list[str], ports: dict[str, int], procs: dict[str, subprocess.Popen], concurrency: int, rounds: int, duration: float) -> dict[str, list[Row]]:
    """(req/s, p50 ms, edge CPU ms and context switches per request, or None) per target, one entry per round."""
    for name in names:
        bench.wrk(ports[name], bench.HINTS_4G, concurrency, 1)  # warm-up: pools, caches, the model
    results: dict[str, list[Row]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            edge = name not in ("direct", "nginx")
            pid = procs[name].pid
            before, switched = (bench.cpu_seconds(pid), bench.context_switches(pid)) if edge else (0.0, 0)
            run = bench.wrk(ports[name], bench.HINTS_4G, concurrency, duration)
            cpu = (bench.cpu_seconds(pid) - before) * 1000 / run.requests if edge else None
            switches = (bench.context_switches(pid) - switched) / run.requests if edge else None
            results[name].append((run.rps, run.p50_ms, cpu, switches))
    return results


def report(concurrency: int, names: list[str], results: dict[str, list[Row]]) -> None:
    def median(name: str, i: int) -> float:
        return statistics.median(float(row[i] or 0.0) for row in results[name])

    direct_p50, nginx_rps, nginx_p50 = median("direct", 1), median("nginx", 0), median("nginx", 1)
    nginx_added = nginx_p50 - direct_p50
    print(f"c={concurrency}: direct {median('direct', 0):.0f} req/s p50 {direct_p50:.3f} ms; nginx {nginx_rps:.0f} req/s p50 {nginx_p50:.3f} ms (added {nginx_added:+.3f})")
    for name in names[2:]:
        rps, p50, cpu, switches = median(name, 0), median(name, 1), median(name, 2), median(name, 3)
        ratio = f"{(p50 - direct_p50) / nginx_added:.1f}" if nginx_added > 0 else "-"
        print(f"  {name:<12} {rps:7.0f} req/s ({rps / nginx_rps:.2f}x nginx)  p50 {p50:.3f} added {p50 - direct_p50:+.3f} ({ratio}x nginx)  CPU {cpu:.3f} ms/req  {switches:.2f} switches/req")
    for name in names[2:]:
        print(f"  rounds {name}: " + " | ".join(f"{rps:.0f} {p50:.2f} {cpu or 0:.3f} {sw or 0:.2f}" for rps, p50, cpu, sw in results[name]))


if __name__ == "__main__":
    main()
