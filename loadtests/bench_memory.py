"""Memory under abuse: does the sidecar's RSS stay flat when every request is new garbage? (issue 8, item 5)

    .venv/bin/python loadtests/bench_memory.py                     # 200,000 requests, default bounds
    .venv/bin/python loadtests/bench_memory.py -n 20000 --max-cells 2000 --json out.json

Starts ``edge storefront`` and ``edge serve`` on free loopback ports (edge with ``EDGE_MAX_CELLS``
from ``--max-cells``) and sends ``-n`` requests over ``-c`` raw keep-alive connections, each one
built to create state edge might remember:

- a random client address (``X-Forwarded-For``, an IPv4 address or an IPv6 one in a random /64;
  edge trusts it from the benchmark, ``EDGE_FORWARDED_ALLOW_IPS=127.0.0.1``): every request is a
  new client to edge's per-client label budgets and cell statistics (edge.learning.trust);
- a random cell id (``Edge-Cell: id="<random>", radio=<random>``);
- random cookies: ``edge_m`` garbage or forged signed-looking values, random ``edge_tier`` values,
  random other cookies;
- random User-Agents: random strings (some with Latin-1 bytes) and mutations of real ones;
- ``Edge-Last-Request`` with a forged token, garbage, a replayed token, or the genuine token of the
  connection's previous response (an app's report: it is a label, and a throughput sample for the
  *previous random cell*, so the per-cell table fills and cycles);
- one request in seven a ``POST /__edge/beacon``: random bytes, oversized bodies, JSON with forged
  tokens, or a genuine token with a measurement (another cell sample).

It prints the sidecar's VmRSS after the first 1,000 requests, at the end and at its peak, the
``edge_table_entries`` gauges (largest seen, sampled every 0.25 s, and at the end), the statuses
served and the feedback refusals. ``tests/integration/test_memory.py`` runs the same abuse with a
smaller count and asserts the bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BIN = Path(sys.executable).parent
EDGE_BIN = str(_BIN / "edge") if (_BIN / "edge").exists() else (shutil.which("edge") or "edge")
HOST = "127.0.0.1"

REAL_USER_AGENTS = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
    "Mozilla/5.0 (Mobile; LYF/F300B/LYF-F300B-001-01-15-130718-i;Android; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5",
    "Mozilla/5.0 (Linux; U; Android 8.1.0; en-US; Redmi 5A Build/OPM1.171019.026) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/57.0.2987.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
RADIOS = ("gprs", "edge", "umts", "hspa", "hspa+", "lte", "nr", "5g", "wifi", "x", "LTE-A")
PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "
ID_CHARS = string.ascii_letters + string.digits + "-_.:/"
B64 = string.ascii_letters + string.digits + "-_"


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --- what to send ---------------------------------------------------------------------------------


def _text(rng: random.Random, lo: int, hi: int, alphabet: str = PRINTABLE) -> str:
    return "".join(rng.choices(alphabet, k=rng.randint(lo, hi)))


def _forged_token(rng: random.Random) -> str:
    return _text(rng, 20, 300, B64) + "." + _text(rng, 10, 30, B64)


def user_agent(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        # A random string; some with Latin-1 bytes (obs-text), some longer than edge parses.
        ua = _text(rng, 1, 200)
        if rng.random() < 0.2:
            ua += "".join(chr(rng.randint(0xA0, 0xFF)) for _ in range(rng.randint(1, 10)))
        if rng.random() < 0.05:
            ua = ua * (1 + 1100 // len(ua))
        return ua.strip() or "x"
    ua = list(rng.choice(REAL_USER_AGENTS))
    for _ in range(rng.randint(1, 6)):  # mutations: replace, insert, delete, new version digits
        op, i = rng.random(), rng.randrange(len(ua))
        if op < 0.3:
            ua[i] = rng.choice(PRINTABLE)
        elif op < 0.6:
            ua[i:i] = list(_text(rng, 1, 12))
        elif op < 0.8 and len(ua) > 10:
            del ua[i : i + rng.randint(1, 8)]
        else:
            ua[i:i] = list(str(rng.randint(0, 10**rng.randint(1, 9))))
    return "".join(ua).strip() or "x"


def cookies(rng: random.Random) -> str:
    parts = []
    if rng.random() < 0.7:
        parts.append("edge_m=" + (_forged_token(rng) if rng.random() < 0.5 else _text(rng, 0, 200, B64 + ".=%")))
    if rng.random() < 0.6:
        parts.append("edge_tier=" + rng.choice(("full", "lite", "minimal", "auto", "", _text(rng, 1, 40, B64))))
    for _ in range(rng.randint(0, 6)):
        parts.append(_text(rng, 1, 20, B64) + "=" + _text(rng, 0, 120, B64 + "%.:/"))
    rng.shuffle(parts)
    return "; ".join(parts)


def cell_header(rng: random.Random, cell_id: str) -> str:
    fields = [f'id="{cell_id}"', f"radio={rng.choice(RADIOS).lower() if rng.random() < 0.9 else 'x'}"]
    if rng.random() < 0.5:
        fields.append(f"rsrp={rng.randint(-200, 0)}")
    if rng.random() < 0.3:
        fields.append(f"cqi={rng.randint(-5, 30)}")
    return ", ".join(fields)


def beacon_body(rng: random.Random, genuine: str | None) -> bytes:
    roll = rng.random()
    if roll < 0.2:
        return rng.randbytes(rng.randint(0, 2000))
    if roll < 0.3:
        return b'{"t": "' + _forged_token(rng).encode() + b'", "pad": "' + b"x" * 9000 + b'"}'
    if roll < 0.5:
        return json.dumps({"t": _forged_token(rng), "nav": [1, 2, 3, 4]}).encode()
    if roll < 0.6:
        return json.dumps({"t": genuine or "", "nav": [rng.random(), "x", None, -1], "res": [[1, 2]] * rng.randint(0, 200)}).encode()
    # A genuine token with a plausible measurement: a label, and a sample for the token's cell.
    start = rng.randint(5, 50)
    first = start + rng.randint(50, 3000)
    return json.dumps({"t": genuine or _forged_token(rng), "nav": [start, first, first + rng.randint(100, 8000), rng.randint(20_000, 400_000)]}).encode()


@dataclass
class Conn:
    rng: random.Random
    token: str | None = None  # the genuine token of this connection's last page
    used: list[str] = field(default_factory=list)  # tokens already sent back (for replays)


def client_address(rng: random.Random) -> str:
    """A random client: an IPv4 address, or (one in four) an IPv6 address in a random /64."""
    if rng.random() < 0.75:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return ":".join(f"{rng.getrandbits(16):x}" for _ in range(8))


def build_request(conn: Conn, port: int) -> bytes:
    rng = conn.rng
    headers = [f"Host: {HOST}:{port}", f"User-Agent: {user_agent(rng)}", f"X-Forwarded-For: {client_address(rng)}"]
    if rng.random() < 0.9:
        headers.append(f"Cookie: {cookies(rng)}")
    if rng.random() < 1 / 7:
        token, conn.token = conn.token, None
        body = beacon_body(rng, token)
        headers += ["Content-Type: text/plain;charset=UTF-8", f"Content-Length: {len(body)}"]
        return ("POST /__edge/beacon HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body
    if rng.random() < 0.95:
        cell_id = _text(rng, 6, 40, ID_CHARS)
        headers.append(f"Edge-Cell: {cell_header(rng, cell_id)}")
    roll = rng.random()
    figures = f"ms={rng.randint(50, 9000)}, bytes={rng.randint(65_536, 900_000)}"
    if roll < 0.45 and conn.token:
        headers.append(f'Edge-Last-Request: {figures}, token="{conn.token}"')
        conn.used = (conn.used + [conn.token])[-8:]
        conn.token = None
    elif roll < 0.6:
        headers.append(f'Edge-Last-Request: {figures}, token="{_forged_token(rng)}"')
    elif roll < 0.65 and conn.used:
        headers.append(f'Edge-Last-Request: {figures}, token="{rng.choice(conn.used)}"')  # a replay
    elif roll < 0.8:
        headers.append(f"Edge-Last-Request: {_text(rng, 0, 300)}".rstrip())
    if rng.random() < 0.3:
        headers.append(f"ECT: {rng.choice(('slow-2g', '2g', '3g', '4g', _text(rng, 1, 10, B64)))}")
    if rng.random() < 0.1:
        headers.append("Save-Data: on")
    target = "/slow?ms=0" if rng.random() < 0.95 else f"/search?q={_text(rng, 1, 12, string.ascii_lowercase)}"
    return (f"GET {target} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode("latin-1")


# --- a small keep-alive HTTP/1.1 client -------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size + 2)
            del body[-2:]
        return status, headers, bytes(body)
    length = int(headers.get("content-length", "0"))
    return status, headers, await reader.readexactly(length) if length else b""


async def fetch(host: str, port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        _, _, body = await read_response(reader)
        return body.decode()
    finally:
        writer.close()


def table_sizes(metrics_text: str) -> dict[str, int]:
    return {m.group(1): int(float(m.group(2))) for m in re.finditer(r'^edge_table_entries\{table="([^"]+)"\} (\S+)$', metrics_text, re.M)}


def counters(metrics_text: str, name: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf'^{name}\{{[a-z]+="([^"]+)"\}} (\S+)$', metrics_text, re.M)}


@dataclass
class Result:
    requests: int
    seconds: float
    rss_kib_start: int
    rss_kib_after_1000: int
    rss_kib_end: int
    rss_kib_peak: int
    tables_max: dict[str, int]
    tables_end: dict[str, int]
    statuses: dict[int, int]
    feedback_rejected: dict[str, float]
    fail_open: dict[str, float]
    labels: dict[str, float]
    rss_samples: list[tuple[int, int]]  # (requests done, VmRSS KiB)

    @property
    def growth_kib(self) -> int:
        return self.rss_kib_end - self.rss_kib_after_1000

    def summary(self) -> str:
        mib = lambda kib: f"{kib / 1024:.1f} MiB"  # noqa: E731
        return "\n".join(
            [
                f"requests           {self.requests:,} in {self.seconds:.1f} s ({self.requests / self.seconds:,.0f} req/s)",
                f"VmRSS start        {mib(self.rss_kib_start)}",
                f"VmRSS after 1,000  {mib(self.rss_kib_after_1000)}",
                f"VmRSS end          {mib(self.rss_kib_end)}  (growth since 1,000: {self.growth_kib / 1024:+.1f} MiB)",
                f"VmRSS peak         {mib(self.rss_kib_peak)}",
                f"tables (max seen)  {self.tables_max}",
                f"tables (end)       {self.tables_end}",
                f"statuses           {dict(sorted(self.statuses.items()))}",
                f"feedback refused   { {k: int(v) for k, v in self.feedback_rejected.items() if v} }",
                f"labels learned     { {k: int(v) for k, v in self.labels.items() if v} }",
                f"fail-open          { {k: int(v) for k, v in self.fail_open.items() if v} }",
            ]
        )


async def abuse(
    port: int, admin_port: int, pid: int, requests: int, *, concurrency: int = 8, seed: int = 1, progress: bool = False
) -> Result:
    """Send ``requests`` abusive requests to edge at ``port``; sample its RSS and table gauges meanwhile."""
    done = completed = 0  # requests sent, responses read
    statuses: Counter[int] = Counter()
    tables_max: dict[str, int] = {}
    rss_start = vm_rss_kib(pid)
    rss_1000 = 0
    samples: list[tuple[int, int]] = []
    peak = rss_start
    finished = asyncio.Event()
    sample_every = max(1000, requests // 50)

    async def watch() -> None:
        nonlocal peak
        while not finished.is_set():
            for name, size in table_sizes(await fetch(HOST, admin_port, "/metrics")).items():
                tables_max[name] = max(tables_max.get(name, 0), size)
            peak = max(peak, vm_rss_kib(pid))
            try:
                await asyncio.wait_for(finished.wait(), 0.25)
            except TimeoutError:
                pass

    async def worker(index: int) -> None:
        nonlocal done, completed, rss_1000
        conn = Conn(random.Random(seed * 1000 + index))
        reader = writer = None
        while done < requests:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            done += 1
            writer.write(build_request(conn, port))
            status, headers, _ = await read_response(reader)
            completed += 1
            statuses[status] += 1
            if "edge-token" in headers:
                conn.token = headers["edge-token"]
            if completed == 1000:
                rss_1000 = vm_rss_kib(pid)
            if completed % sample_every == 0:
                samples.append((completed, vm_rss_kib(pid)))
                if progress:
                    print(f"  {completed:>8,} requests  VmRSS {samples[-1][1] / 1024:.1f} MiB  tables {tables_max}", flush=True)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        finished.set()
        await watcher
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.3)  # let edge finish the last responses' bookkeeping
    text = await fetch(HOST, admin_port, "/metrics")
    tables_end = table_sizes(text)
    for name, size in tables_end.items():
        tables_max[name] = max(tables_max.get(name, 0), size)
    rss_end = vm_rss_kib(pid)
    return Result(
        requests=done,
        seconds=seconds,
        rss_kib_start=rss_start,
        rss_kib_after_1000=rss_1000 or rss_start,
        rss_kib_end=rss_end,
        rss_kib_peak=max(peak, rss_end),
        tables_max=tables_max,
        tables_end=tables_end,
        statuses=dict(statuses),
        feedback_rejected=counters(text, "edge_feedback_rejected_total"),
        fail_open=counters(text, "edge_fail_open_total"),
        labels={f"{src}/{lab}": float(v) for lab, src, v in re.findall(r'^edge_labels_total\{label="([^"]+)",source="([^"]+)"\} (\S+)$', text, re.M)},
        rss_samples=samples,
    )


# --- processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def edge_env(max_cells: int | None = None, **extra: str) -> dict[str, str]:
    """The environment for an edge under test: no inherited EDGE_* settings, plus the bounds asked for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["EDGE_FORWARDED_ALLOW_IPS"] = HOST  # the benchmark is the proxy: its X-Forwarded-For is the client
    if max_cells is not None:
        env["EDGE_MAX_CELLS"] = str(max_cells)
    env.update(extra)
    return env


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.get(url).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready (rc {proc.poll()})")


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} (rc {proc.poll()})")


def start_edge(upstream: str, log_path: Path, env: dict[str, str], *flags: str) -> tuple[subprocess.Popen, int, int]:
    """``edge serve`` in front of ``upstream`` with ``env``; returns (process, public port, admin port) once ready."""
    port, admin_port = free_port(), free_port()
    while admin_port == port:
        admin_port = free_port()
    args = [EDGE_BIN, "serve", "--upstream", upstream, "--host", HOST, "--port", str(port), "--admin-host", HOST,
            "--admin-port", str(admin_port), "--log-level", "warning", "--read-timeout", "10", *flags]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    try:
        wait_ready(f"http://{HOST}:{admin_port}/readyz", proc)
        wait_listening(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, port, admin_port


def start_storefront(log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([EDGE_BIN, "storefront", "--host", HOST, "--port", str(port), "--log-level", "warning"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=edge_env())
    url = f"http://{HOST}:{port}"
    try:
        wait_ready(url + "/", proc)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=200_000)
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--max-cells", type=int, default=None, help="EDGE_MAX_CELLS for the edge (default: edge's own, 50,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--bound-mib", type=float, default=50.0, help="the issue's bound on growth after the first 1,000 (exit 1 past it)")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    storefront, upstream = start_storefront(log_dir / "storefront.log")
    try:
        edge, port, admin_port = start_edge(upstream, log_dir / "edge.log", edge_env(args.max_cells))
        try:
            print(f"edge pid {edge.pid} on :{port} (admin :{admin_port}), EDGE_MAX_CELLS={args.max_cells or 'default (50000)'}; "
                  f"{args.requests:,} requests over {args.concurrency} connections; logs in {log_dir}", flush=True)
            result = asyncio.run(abuse(port, admin_port, edge.pid, args.requests, concurrency=args.concurrency, seed=args.seed, progress=True))
            alive = edge.poll() is None
        finally:
            stop(edge)
    finally:
        stop(storefront)
    print(result.summary())
    print(f"edge alive at the end: {alive}")
    ok = alive and result.growth_kib <= args.bound_mib * 1024
    print(f"RSS growth after the first 1,000 requests: {result.growth_kib / 1024:+.1f} MiB (bound {args.bound_mib:.0f} MiB): {'OK' if ok else 'FAIL'}")
    if args.json:
        payload = {**result.__dict__, "growth_kib": result.growth_kib, "max_cells": args.max_cells, "ok": ok}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
