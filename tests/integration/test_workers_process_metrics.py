"""``edge serve --workers 2``: the admin port's /metrics carries the whole sidecar's process_* metrics
(the Grafana dashboard's Resources row), summed over the supervisor and its workers, as one sample each.
A multiprocess registry holds none of its own: without edge.core.sidecar_process they were missing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from edge.core.sidecar_process import sidecar_pids

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")]


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def test_two_workers_report_the_sidecars_cpu_memory_and_descriptors(stack, start_edge):
    # (flags of its own: the factory hands out a running edge started with the same flags)
    edge = start_edge(stack.storefront_url, "--workers", "2", "--graceful-timeout", "5", name="edge-process-metrics")
    supervisor = edge.proc.pid
    workers = sidecar_pids(supervisor)[1:]
    assert len(workers) == 2
    with httpx.Client(timeout=10) as client:
        for _ in range(20):  # some CPU to count
            assert client.get(edge.url + "/", headers={"ECT": "2g"}).status_code == 200
        before = _cpu_seconds([supervisor, *workers])
        text = client.get(edge.admin_url + "/metrics").text
        after = _cpu_seconds([supervisor, *workers])
    samples = {name: re.findall(rf"^{name} (\S+)$", text, re.M) for name in
               ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds")}  # fmt: skip
    assert all(len(found) == 1 for found in samples.values()), samples  # one sidecar, one sample each
    cpu = float(samples["process_cpu_seconds_total"][0])
    own = _cpu_seconds([workers[0]])
    assert before <= cpu <= after and cpu > own, (before, cpu, after, own)  # all three processes, not one
    rss_kib = sum(int(re.search(r"^VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1)) for pid in [supervisor, *workers])
    assert 0.8 * rss_kib * 1024 <= float(samples["process_resident_memory_bytes"][0]) <= 1.25 * rss_kib * 1024
    assert float(samples["process_open_fds"][0]) > len(os.listdir(f"/proc/{workers[0]}/fd"))
