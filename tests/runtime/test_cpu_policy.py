"""``--cpu-policy`` (edge.runtime.cpu_policy): SCHED_BATCH on every thread of edge's processes, the
workers of ``--workers N`` included, a clear error where the kernel has none, nothing changed by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.core.errors import SettingsError
from edge.core.settings import Settings
from edge.runtime import cpu_policy

linux_only = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH") or not Path("/proc/self/task").is_dir(), reason="Linux scheduling")


def _policies(pid: int) -> dict[int, int]:
    """The scheduling policy of each thread of ``pid``."""
    return {int(tid): os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


@linux_only
def test_batch_puts_every_thread_of_the_process_under_sched_batch():
    # In a child process: the policy cannot be undone without privilege, and the test run must not keep it.
    script = """
import os, threading
from edge.runtime import cpu_policy
started, stop = threading.Event(), threading.Event()
def idle():
    started.set(); stop.wait()
thread = threading.Thread(target=idle); thread.start(); started.wait()
before = {tid: os.sched_getscheduler(int(tid)) for tid in os.listdir('/proc/self/task')}
print(cpu_policy.apply('batch'), os.sched_getscheduler(0) == os.SCHED_BATCH)
after = {tid: os.sched_getscheduler(int(tid)) for tid in os.listdir('/proc/self/task')}
print(len(after), set(before.values()) == {os.SCHED_OTHER}, set(after.values()) == {os.SCHED_BATCH})
stop.set(); thread.join()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == ["batch", "True", "2", "True", "True"]


def test_normal_changes_nothing():
    before = _policies(os.getpid()) if Path("/proc/self/task").is_dir() else None
    assert cpu_policy.apply("normal") == "normal"
    if before is not None:
        assert _policies(os.getpid()) == before
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # (the test run itself is not batch)


def test_a_system_without_sched_batch_gets_an_error_naming_the_setting(monkeypatch):
    monkeypatch.delattr(os, "SCHED_BATCH", raising=False)
    with pytest.raises(SettingsError, match=r"EDGE_CPU_POLICY: 'batch' needs Linux's SCHED_BATCH"):
        cpu_policy.apply("batch")


def test_a_refusal_by_the_kernel_is_an_error_naming_the_setting(monkeypatch):
    def refuse(pid: int, policy: int, param: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "SCHED_BATCH", 3, raising=False)
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with pytest.raises(SettingsError, match="EDGE_CPU_POLICY: the kernel refused 'batch': Operation not permitted"):
        cpu_policy.apply("batch")


def test_the_setting_takes_only_known_policies():
    assert Settings.from_env({"EDGE_CPU_POLICY": "batch"}).cpu_policy == "batch"
    assert Settings().cpu_policy == "normal"
    with pytest.raises(SettingsError, match="EDGE_CPU_POLICY"):
        Settings.from_env({"EDGE_CPU_POLICY": "realtime"})
