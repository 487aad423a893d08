"""A small closed-loop HTTP/1.1 load generator on raw keep-alive sockets.

Each of ``concurrency`` connections sends a request, reads the whole response
(``Content-Length`` framed), records the latency, and sends the next, until
``requests`` responses have arrived in total. Low overhead per request (no
HTTP client library in the loop), so it measures the server, not itself.

    >>> # result = asyncio.run(run_load("127.0.0.1", 8080, "/", {"ECT": "2g"}, requests=1000, concurrency=8))
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    body_bytes: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        return self.percentile(99)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("loadgen reads Content-Length framed responses only")
    if length:
        await reader.readexactly(length)
    return status, length


async def run_load(
    host: str, port: int, path: str, headers: dict[str, str], *, requests: int, concurrency: int
) -> LoadResult:
    """Send ``requests`` GETs over ``concurrency`` keep-alive connections."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    remaining = requests
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    body_bytes = 0

    async def worker() -> None:
        nonlocal remaining, body_bytes
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        try:
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                writer.write(raw)
                status, length = await _read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                body_bytes += length
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(len(latencies), time.perf_counter() - started, latencies, statuses, body_bytes)
