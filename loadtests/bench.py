"""End-to-end benchmark: the storefront direct, nginx in front of it, and edge at tier full and lite.

    .venv/bin/python loadtests/bench.py [--duration 10] [--concurrency 1 16] [--workers 1 2]
                                        [--compare-transports] [--json out.json]

Everything runs on this machine, in turn, in one run, so the figures compare
with each other (these machines are shared and noisy: read ratios, not
absolutes):

- ``direct``: the demo storefront (``edge storefront``: uvicorn, uvloop,
  httptools) serving its ~135 KB home page;
- ``nginx``: Debian's nginx as a plain reverse proxy in front of it, started
  with this script's own config on loopback (not as a system service), with
  upstream keep-alive — the floor an SRE would otherwise deploy. Skipped with
  a clear line if nginx cannot be installed;
- ``python floor``: ``loadtests/floor_proxy.py``, the least a Python proxy does
  to splice a snippet into the page (uvloop and httptools, callbacks only, no
  decision): what any Python data plane costs on this machine before edge's own
  work, so a target below it is out of reach for Python here; ``python floor x2``
  is two of them on one port (``SO_REUSEPORT``, as edge's workers), with
  ``--workers 2``; ``python floor + edge work`` (``… x2``) is the floor doing edge's
  per-page work through edge's own objects (TCP_INFO, the decision, the token,
  the headers, the counters): the bound for a data plane of edge's own around
  its logic, without uvicorn's machinery;
- ``edge full``: ``edge serve`` with 4G hints (the page gets the switch link
  and the beacon: a byte splice), with 1 and 2 workers;
- ``edge lite``: the same with ``ECT: 2g`` (low-priority widgets dropped). The
  demo page comes back byte for byte, so its layout is a rewrite-cache hit;
- ``lite uncached``: the same with ``--rewrite-cache-bytes 0``, every page laid
  out by lol_html (what a page that changes on every request costs);
- ``direct dynamic`` and ``lite dynamic``: a second storefront, ``edge storefront
  --dynamic``, whose pages change on every request as real shops' do (a CSRF token
  in each form, script nonces, the cart count and recently viewed items from the
  shopper's cookie, a timestamp: :mod:`edge.demo.dynamic`), direct and through
  edge (one worker) at lite; ``… gzip`` the same with ``Accept-Encoding: gzip``
  (the storefront compresses, edge decodes, rewrites and compresses again). Their
  added p50 is over ``direct dynamic`` (``direct dynamic gzip``), not ``direct``;
  ``nginx dynamic`` is nginx in front of that storefront, the reference for ``lite
  dynamic``'s ratio (the gzip case has none). No proxy serves more pages per second
  than the storefront behind it makes: ``direct dynamic``'s req/s bounds them all;
- with ``--compare-transports``, ``full aiohttp`` and ``full httpx``: edge full
  (one worker) over httpx-aiohttp and over httpx's own httpcore instead of
  ``edge.transport.http1``, to show what the default transport buys in the same run.

The load generator is ``wrk`` (Debian's package; one thread, keep-alive
connections) at each concurrency for ``--duration`` seconds after a warm-up.
The table gives req/s, p50 and p99 latency, the added p50 over ``direct`` in
milliseconds and as a ratio to the added p50 of nginx in front of the same
storefront, the proxy's CPU seconds per 1,000 requests (edge's processes, or the
floor's) and edge's peak RSS; ``--json`` writes the same.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EDGE = [sys.executable, "-m", "edge.runtime.cli"]
HINTS_4G = {"ECT": "4g", "RTT": "50", "Downlink": "10"}
HINTS_2G = {"ECT": "2g"}
#: A returning shopper: two items in the cart, three products recently viewed (the dynamic storefront's input).
SHOPPER = {"Cookie": "cart=3.4; recent=7.9.12"}
DYNAMIC = {**HINTS_2G, **SHOPPER}
DYNAMIC_GZIP = {**DYNAMIC, "Accept-Encoding": "gzip"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, deadline_s: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers; ``proc``, the process serving it, must not exit meanwhile."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"bench: the process for {url} exited ({proc.returncode}) before it answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up within {deadline_s:.0f} s")


def ensure_tools() -> bool:
    """wrk is required, nginx optional; install them from Debian's packages when we can (root)."""
    missing = [pkg for pkg, binary in (("wrk", "wrk"), ("nginx-light", "nginx")) if not shutil.which(binary)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"bench: installing {' '.join(missing)} from Debian's packages…", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, check=False, capture_output=True)
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is needed (apt-get install wrk) and could not be installed")
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        print("bench: nginx could not be installed: the nginx case is skipped", file=sys.stderr)
        return False
    return True


NGINX_CONF = """
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream storefront {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://storefront;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $proxy_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering on;
        }}
    }}
}}
"""


def start_nginx(upstream: int, port: int, prefix: Path) -> subprocess.Popen:
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, upstream=upstream, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.Popen([nginx, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"], stderr=subprocess.DEVNULL)


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(port: int, headers: dict[str, str], concurrency: int, duration: float) -> Run:
    args = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s"]  # whole seconds
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    pct = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Run(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), pct["50"], pct["99"], requests, int(non_2xx.group(1)) if non_2xx else 0)


def fetch(port: int, headers: dict[str, str]) -> tuple[str | None, str | None, bytes]:
    """(edge-tier, content-encoding, body) of one GET /."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("edge-tier"), response.headers.get("content-encoding"), response.read()


def expect_tier(port: int, headers: dict[str, str], tier: str | None, label: str) -> None:
    """Refuse to time a case that would not measure what it is named after.

    A dynamic case must also get a page that differs from the previous one (else it would time a
    rewrite-cache hit) and, asked for gzip, a gzip body.
    """
    got, coding, body = fetch(port, headers)
    if got != tier:
        raise SystemExit(f"bench: {label} serves tier {got!r}, not {tier!r}: the case would measure the wrong thing")
    if "dynamic" in label:
        if fetch(port, headers)[2] == body:
            raise SystemExit(f"bench: {label} served the same bytes twice: the page is not dynamic")
        if ("gzip" in label) != (coding == "gzip"):
            raise SystemExit(f"bench: {label} got content-encoding {coding!r}")


def tree_pids(pid: int) -> list[int]:
    """pid and its descendants (a supervisor's workers)."""
    out = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            out += tree_pids(int(c))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def context_switches(pid: int) -> int:
    """Context switches so far of pid and its descendants, voluntary (it slept) and not (preempted), summed
    over their threads (edge's own reading of ``/proc``: :func:`edge.core.sidecar_process.context_switches`)."""
    from edge.core.sidecar_process import context_switches as by_kind

    return sum(sum(by_kind(p).values()) for p in tree_pids(pid))


def proxy_cpu_seconds(procs: dict[str, subprocess.Popen], target: str) -> float | None:
    """CPU seconds so far of the proxy under test: edge's processes (a supervisor's workers too), or the
    floor's; None for the others (the storefront, nginx: its workers are not this script's children)."""
    if not target.startswith(("edge", "python floor")):
        return None
    return sum(cpu_seconds(p.pid) for name, p in procs.items() if name == target or name.startswith(target + " #"))


def start_floors(worker_counts: list[int], shop_port: int, procs: dict[str, subprocess.Popen], ports: dict[str, int]) -> dict[str, int]:
    """The floors (``loadtests/floor_proxy.py``), one per edge worker count, as edge's workers share a port:
    ``python floor`` (one process), ``python floor x2`` (two on one port, ``SO_REUSEPORT``); and the same
    doing edge's per-page work (``--edge-work``): ``python floor + edge work`` (``… x2``). Returns
    {case name: its process count}, in that order."""
    floors: dict[str, int] = {}
    for flags, case in (([], "python floor"), (["--edge-work"], "python floor + edge work")):
        for workers in worker_counts:
            name = case if workers == 1 else f"{case} x{workers}"
            floors[name] = workers
            ports[name] = free_port()
            for index in range(workers):
                procs[name if index == 0 else f"{name} #{index}"] = subprocess.Popen(
                    [sys.executable, str(Path(__file__).with_name("floor_proxy.py")), str(shop_port), str(ports[name]), *flags]
                )
            wait_ready(f"http://127.0.0.1:{ports[name]}/")
            tier, _, body = fetch(ports[name], HINTS_4G)
            if (b"/__edge/switch" if not flags else b"/__edge/beacon") not in body or tier != (None if not flags else "full"):
                raise SystemExit(f"bench: the {name} did not splice its snippet into the page")
    return floors


def peak_rss_mb(pid: int) -> float:
    total = 0.0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="edge worker counts to run (full tier)")
    parser.add_argument(
        "--compare-transports", action="store_true",
        help="also run edge full (1 worker) over the aiohttp and httpx upstream transports, for what edge.transport.http1 buys",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measured run (whole seconds: wrk)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    have_nginx = ensure_tools()

    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    shop_port = free_port()
    procs: dict[str, subprocess.Popen] = {
        "storefront": subprocess.Popen([*EDGE, "storefront", "--port", str(shop_port), "--log-level", "warning"])
    }
    dynamic_port = free_port()
    procs["dynamic storefront"] = subprocess.Popen(
        [*EDGE, "storefront", "--dynamic", "--port", str(dynamic_port), "--log-level", "warning"]
    )
    ports = {"direct": shop_port, "direct dynamic": dynamic_port}
    try:
        wait_ready(f"http://127.0.0.1:{shop_port}/")
        wait_ready(f"http://127.0.0.1:{dynamic_port}/")
        if have_nginx:
            # nginx in front of each storefront: the reference for the static page and for the dynamic one.
            for name, upstream in (("nginx", shop_port), ("nginx dynamic", dynamic_port)):
                ports[name] = free_port()
                prefix = tmp / name.replace(" ", "-")  # (nginx's config takes no spaces in a path)
                prefix.mkdir()
                procs[name] = start_nginx(upstream, ports[name], prefix)
                wait_ready(f"http://127.0.0.1:{ports[name]}/")
        floors = start_floors(args.workers, shop_port, procs, ports)
        edges = [(f"edge x{workers}", workers, "http1", [], shop_port) for workers in args.workers]
        # The demo page comes back byte for byte, so lite is a rewrite-cache hit; this edge lays out every page.
        edges.append(("edge uncached", args.workers[0], "http1", ["--rewrite-cache-bytes", "0"], shop_port))
        edges.append(("edge dynamic", args.workers[0], "http1", [], dynamic_port))
        if args.compare_transports:
            edges += [(f"edge {transport}", 1, transport, [], shop_port) for transport in ("aiohttp", "httpx")]
        for name, workers, transport, flags, upstream in edges:
            ports[name], admin = free_port(), free_port()
            procs[name] = subprocess.Popen(
                [*EDGE, "serve", "--upstream", f"http://127.0.0.1:{upstream}", "--port", str(ports[name]),
                 "--admin-port", str(admin), "--log-level", "warning", "--workers", str(workers),
                 "--upstream-transport", transport, *flags],
                env={**os.environ, "EDGE_FEEDBACK_KEY": "bench-key-0123456789abcdef"},
            )  # fmt: skip
            wait_ready(f"http://127.0.0.1:{admin}/readyz")
            time.sleep(1.0)  # every worker of a supervisor up, not just the first

        # (label, process, request headers, edge workers, the direct case its added p50 is over)
        cases: list[tuple[str, str, dict[str, str], int, str]] = [("direct", "direct", HINTS_4G, 1, "direct")]
        if have_nginx:
            cases.append(("nginx", "nginx", HINTS_4G, 1, "direct"))
        for name, workers in floors.items():  # loadtests/floor_proxy.py
            cases.append((name, name, HINTS_4G, workers, "direct"))
        for workers in args.workers:
            cases.append((f"edge full x{workers}", f"edge x{workers}", HINTS_4G, workers, "direct"))
        cases.append((f"edge lite x{args.workers[0]}", f"edge x{args.workers[0]}", HINTS_2G, args.workers[0], "direct"))
        cases.append(("lite uncached", "edge uncached", HINTS_2G, args.workers[0], "direct"))
        cases.append(("direct dynamic", "direct dynamic", DYNAMIC, 1, "direct dynamic"))
        if have_nginx:
            cases.append(("nginx dynamic", "nginx dynamic", DYNAMIC, 1, "direct dynamic"))
        cases.append(("lite dynamic", "edge dynamic", DYNAMIC, args.workers[0], "direct dynamic"))
        cases.append(("direct dynamic gzip", "direct dynamic", DYNAMIC_GZIP, 1, "direct dynamic gzip"))
        cases.append(("lite dynamic gzip", "edge dynamic", DYNAMIC_GZIP, args.workers[0], "direct dynamic gzip"))
        if args.compare_transports:
            cases += [(f"full {transport}", f"edge {transport}", HINTS_4G, 1, "direct") for transport in ("aiohttp", "httpx")]

        rows = []
        for concurrency in args.concurrency:
            for label, target, headers, workers, baseline in cases:
                if target.startswith("edge"):
                    expect_tier(ports[target], headers, "full" if headers is HINTS_4G else "lite", label)
                elif "dynamic" in label:
                    expect_tier(ports[target], headers, None, label)
                wrk(ports[target], headers, concurrency, args.warmup)  # warm-up: pools, caches, the model
                cpu_before = proxy_cpu_seconds(procs, target)
                run = wrk(ports[target], headers, concurrency, args.duration)
                cpu_after = proxy_cpu_seconds(procs, target)
                cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
                if run.non_2xx:
                    raise SystemExit(f"bench: {label} got {run.non_2xx} non-2xx responses")
                rows.append({
                    "case": label, "baseline": baseline, "concurrency": concurrency, "workers": workers, "requests": run.requests,
                    "rps": run.rps, "p50_ms": run.p50_ms, "p99_ms": run.p99_ms,
                    "proxy_cpu_ms_per_request": None if cpu is None else cpu * 1000 / run.requests,
                })  # fmt: skip
        for row in rows:
            direct = next(r for r in rows if r["case"] == row["baseline"] and r["concurrency"] == row["concurrency"])
            row["added_p50_ms"] = row["p50_ms"] - direct["p50_ms"]
        for row in rows:
            # Each row against nginx in front of the same storefront (none for the gzip cases).
            reference = {"direct": "nginx", "direct dynamic": "nginx dynamic"}.get(row["baseline"])
            nginx = next((r for r in rows if r["case"] == reference and r["concurrency"] == row["concurrency"]), None)
            row["added_p50_vs_nginx"] = row["added_p50_ms"] / nginx["added_p50_ms"] if nginx and nginx["added_p50_ms"] > 0 else None
        print(f"{'case':<28}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'× nginx':>9}{'CPU ms/req':>11}")
        for r in rows:
            ratio = f"{r['added_p50_vs_nginx']:.1f}" if r["added_p50_vs_nginx"] is not None else "-"
            cpu = f"{r['proxy_cpu_ms_per_request']:.3f}" if r["proxy_cpu_ms_per_request"] is not None else "-"
            print(f"{r['case']:<28}{r['concurrency']:>5}{r['rps']:>9.0f}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.2f}{r['added_p50_ms']:>9.3f}{ratio:>9}{cpu:>11}")
        rss = {name: peak_rss_mb(p.pid) for name, p in procs.items() if name.startswith("edge")}  # (a supervisor's workers counted)
        print("edge peak RSS: " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in rss.items()))
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "edge_peak_rss_mb": rss}, indent=2))
    finally:
        stop(procs.values())
        shutil.rmtree(tmp, ignore_errors=True)


def stop(procs: Iterable[subprocess.Popen]) -> None:
    """Terminate every process, then wait for each (killed after 20 s)."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
