"""Multiprocess metric samples (``edge serve --workers N``) without a ``getpid`` system call per increment,
and still right across a fork (edge.core.metric_values)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A fresh interpreter with PROMETHEUS_MULTIPROC_DIR set, as a worker is: counts the os.getpid calls made by
# 1,000 increments of a page counter, then forks a child that increments it too, and reads every process's
# samples back as a scrape does. "stock" keeps prometheus-client's own value class (the control).
_WORKER = textwrap.dedent(
    """
    import json, os, sys
    from prometheus_client import CollectorRegistry, multiprocess, values
    if sys.argv[1] == "stock":
        values.ValueClass._edge_cached_pid = True  # edge.core.metric_values.install then leaves it as it is
    from edge.core import metrics
    inc = metrics.REQUESTS.labels("full", "rules")._value.inc
    calls = 0
    def profile(frame, event, arg):
        global calls
        if event == "c_call" and arg is os.getpid:
            calls += 1
    sys.setprofile(profile)
    for _ in range(1000):
        inc(1)
    sys.setprofile(None)
    child = os.fork()
    if child == 0:
        inc(5)  # into the child's own file, not its parent's
        os._exit(0)
    os.waitpid(child, 0)
    inc(1)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    total = sum(s.value for m in registry.collect() if m.name == "edge_requests" for s in m.samples if s.name.endswith("_total"))
    files = sorted(name for name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]) if name.startswith("counter_"))
    print(json.dumps({"getpid_calls": calls, "total": total, "files": files, "pid": os.getpid(), "child": child}))
    """
)


def _worker(kind: str, directory: Path) -> dict:
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run([sys.executable, "-c", _WORKER, kind], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_worker_counts_without_a_getpid_system_call_per_increment(tmp_path: Path) -> None:
    stock = _worker("stock", tmp_path / "stock")
    edge = _worker("edge", tmp_path / "edge")
    assert stock["getpid_calls"] == 1000  # prometheus-client's own: one per increment (the check can fail)
    assert edge["getpid_calls"] == 0


def test_a_forked_child_still_counts_into_its_own_file(tmp_path: Path) -> None:
    edge = _worker("edge", tmp_path / "edge")
    assert edge["total"] == 1000 + 5 + 1  # the parent's and the child's increments, each counted once
    assert edge["files"] == sorted([f"counter_{edge['pid']}.db", f"counter_{edge['child']}.db"])
