"""``edge serve --cpu-policy batch`` on real processes: the supervisor and both workers of ``--workers 2``
under SCHED_BATCH (every thread), serving; without the flag, the kernel's default."""

from __future__ import annotations

import os

import httpx
import pytest

from edge.core.sidecar_process import sidecar_pids

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling")]


def _policies(pid: int) -> dict[int, int]:
    """The scheduling policy of each thread of ``pid``."""
    return {int(tid): os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def test_edge_serve_with_two_workers_runs_supervisor_and_workers_under_batch(stack, start_edge):
    edge = start_edge(stack.storefront_url, "--workers", "2", "--cpu-policy", "batch", name="edge-batch")
    supervisor = edge.proc.pid
    workers = sidecar_pids(supervisor)[1:]
    assert len(workers) == 2
    for pid in [supervisor, *workers]:
        assert set(_policies(pid).values()) == {os.SCHED_BATCH}, pid
    # And it serves as before.
    r = httpx.get(edge.url + "/", headers={"ECT": "2g"}, timeout=10)
    assert r.status_code == 200 and r.headers["edge-tier"] == "lite"


def test_edge_serve_by_default_leaves_the_kernel_default(stack, start_edge):
    edge = start_edge(stack.storefront_url, name="edge-normal")
    assert set(_policies(edge.proc.pid).values()) == {os.SCHED_OTHER}
