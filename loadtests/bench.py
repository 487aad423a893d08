"""End-to-end benchmark: the demo storefront direct, and through edge at tier full and tier lite.

    .venv/bin/python loadtests/bench.py [--requests 2000] [--concurrency 1 8] [--json out.json]

Starts real processes (``edge storefront`` and ``edge serve``) on loopback,
then, in turn and in one run, drives each case with the raw-socket load
generator in ``loadtests/loadgen.py`` (its own process, this one) and prints
req/s, p50 and p99 latency, and edge's added p50 over the storefront direct
as milliseconds and as a ratio. The rewrite cost per page is measured
in-process by ``bench_rewrite.py``.

Cases (same page, ``GET /``):
- ``direct``: the storefront itself;
- ``edge full``: through edge with 4G hints (the link splice only);
- ``edge lite``: through edge with ``ECT: 2g`` (widgets dropped by lol_html).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import run_load  # noqa: E402

EDGE = [sys.executable, "-m", "edge.cli"]
CASES = {
    "direct": ("storefront", {"ECT": "4g", "RTT": "50", "Downlink": "10"}),
    "edge full": ("edge", {"ECT": "4g", "RTT": "50", "Downlink": "10"}),
    "edge lite": ("edge", {"ECT": "2g"}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up within {deadline_s:.0f} s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per case and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    shop_port, edge_port, admin_port = free_port(), free_port(), free_port()
    procs = {
        "storefront": subprocess.Popen([*EDGE, "storefront", "--port", str(shop_port), "--log-level", "warning"]),
        "edge": subprocess.Popen(
            [*EDGE, "serve", "--upstream", f"http://127.0.0.1:{shop_port}", "--port", str(edge_port),
             "--admin-port", str(admin_port), "--log-level", "warning"]
        ),
    }
    ports = {"storefront": shop_port, "edge": edge_port}
    try:
        wait_ready(f"http://127.0.0.1:{shop_port}/")
        wait_ready(f"http://127.0.0.1:{admin_port}/readyz")
        rows = []
        for concurrency in args.concurrency:
            for name, (target, headers) in CASES.items():
                # Warm up connection pools and caches, then measure.
                asyncio.run(run_load("127.0.0.1", ports[target], "/", headers, requests=200, concurrency=concurrency))
                cpu_before = cpu_seconds(procs["edge"].pid)
                result = asyncio.run(
                    run_load("127.0.0.1", ports[target], "/", headers, requests=args.requests, concurrency=concurrency)
                )
                bad = {s: n for s, n in result.statuses.items() if s != 200}
                if bad:
                    raise SystemExit(f"bench: {name} got non-200 responses: {bad}")
                rows.append(
                    {
                        "case": name,
                        "concurrency": concurrency,
                        "requests": result.requests,
                        "rps": result.rps,
                        "p50_ms": result.p50,
                        "p99_ms": result.p99,
                        "bytes_per_page": result.body_bytes / result.requests,
                        "edge_cpu_s": cpu_seconds(procs["edge"].pid) - cpu_before,
                    }
                )
        print(f"{'case':<11}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'p50 ×':>7}{'KB/page':>9}{'edge CPU s':>11}")
        for row in rows:
            direct = next(r for r in rows if r["case"] == "direct" and r["concurrency"] == row["concurrency"])
            row["added_p50_ms"] = row["p50_ms"] - direct["p50_ms"]
            row["p50_ratio"] = row["p50_ms"] / direct["p50_ms"]
            print(
                f"{row['case']:<11}{row['concurrency']:>5}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
                f"{row['added_p50_ms']:>9.2f}{row['p50_ratio']:>7.2f}{row['bytes_per_page'] / 1024:>9.1f}{row['edge_cpu_s']:>11.2f}"
            )
        print(f"edge peak RSS: {peak_rss_mb(procs['edge'].pid):.1f} MB")
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "edge_peak_rss_mb": peak_rss_mb(procs["edge"].pid)}, indent=2))
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
