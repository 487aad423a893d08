"""The ``process_*`` metrics of a whole sidecar under ``edge serve --workers N``.

One process exposes prometheus-client's standard process metrics (CPU seconds, resident memory, open
descriptors…) from its default registry. With ``--workers N`` the admin port's registry is a
:class:`~prometheus_client.multiprocess.MultiProcessCollector` over the workers' sample files, which holds
no process metrics, so the dashboard's **Resources** row (and an SRE's "is this sidecar near its CPU
limit?") went blank. :class:`SidecarProcessCollector` gives them back for the whole sidecar: the
supervisor and every worker it started, read from ``/proc`` at each scrape and summed (the start time is
the supervisor's; the descriptor limit is the scraping worker's, as the workers share the supervisor's).

The sum of resident memory counts pages the workers share (the interpreter's, after the fork) once per
process, as ``ps`` does; the CPU seconds are exact.

It adds ``edge_process_context_switches_total{kind="voluntary"|"involuntary"}``, one process or many: the
switches of every thread (``/proc/PID/task/*/status``). A worker switches when it sleeps for want of work
(voluntary) or is preempted (involuntary); several a page, with several workers on CPUs shared with the
storefront, is what ``--cpu-policy batch`` is for (docs/operations.md, *Scaling*). One process registers
it alone (``standard=False``: prometheus-client's own collector gives the ``process_*`` there).

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> _ = SidecarProcessCollector(os.getpid(), registry=registry)
    >>> b"process_cpu_seconds_total" in generate_latest(registry)
    True
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["SidecarProcessCollector", "sidecar_pids", "context_switches"]


def sidecar_pids(root: int, proc: str = "/proc") -> list[int]:
    """``root`` and its children (the supervisor's workers), from ``/proc/ROOT/task/*/children``."""
    pids = [root]
    for children in Path(proc, str(root), "task").glob("*/children"):
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except (OSError, ValueError):
            continue
    return pids


class SidecarProcessCollector(Collector):
    """``process_*`` summed over ``root`` (the supervisor) and its children (module docstring)."""

    def __init__(self, root: int | None, proc: str = "/proc", registry: CollectorRegistry | None = None, standard: bool = True) -> None:
        #: The supervisor's pid; None: this process, whatever its pid when scraped (after a fork too).
        self.root = root
        self.proc = proc
        self.standard = standard
        self._ticks = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._pagesize = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._btime = _boot_time(proc)
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        if self._btime is None:
            return []  # no /proc (not Linux): nothing, as prometheus-client's own collector
        root = os.getpid() if self.root is None else self.root
        cpu = rss = vmem = 0.0
        fds = 0
        start: float | None = None
        switches = {"voluntary": 0, "involuntary": 0}
        for pid in sidecar_pids(root, self.proc):
            for kind, count in context_switches(pid, self.proc).items():
                switches[kind] += count
            if not self.standard:
                continue
            try:
                fields = Path(self.proc, str(pid), "stat").read_bytes().rsplit(b")", 1)[1].split()
                fds += len(os.listdir(Path(self.proc, str(pid), "fd")))
            except (OSError, IndexError):
                continue  # (a worker that just exited)
            cpu += (int(fields[11]) + int(fields[12])) / self._ticks
            vmem += float(fields[20])
            rss += float(fields[21]) * self._pagesize
            if pid == root:
                start = float(fields[19]) / self._ticks + self._btime
        switched = CounterMetricFamily(
            "edge_process_context_switches_total", "Context switches of edge's threads: voluntary (slept), involuntary (preempted).", labels=["kind"]
        )
        for kind, count in switches.items():
            switched.add_metric([kind], count)
        if not self.standard:
            return [switched]
        result: list[Metric] = [
            switched,
            CounterMetricFamily("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", value=cpu),
            GaugeMetricFamily("process_resident_memory_bytes", "Resident memory size in bytes.", value=rss),
            GaugeMetricFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.", value=vmem),
            GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", value=fds),
        ]
        if start is not None:
            result.append(GaugeMetricFamily("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", value=start))
        max_fds = self._max_fds()
        if max_fds is not None:
            result.append(GaugeMetricFamily("process_max_fds", "Maximum number of open file descriptors.", value=max_fds))
        return result

    def _max_fds(self) -> float | None:
        try:
            for line in Path(self.proc, "self", "limits").read_bytes().splitlines():
                if line.startswith(b"Max open files"):
                    return float(line.split()[3])
        except (OSError, IndexError, ValueError):
            pass
        return None


@functools.cache
def _boot_time(proc: str) -> float | None:
    """The boot time (``btime`` in ``/proc/stat``), read once: a multiprocess registry makes a collector per scrape."""
    try:
        for line in Path(proc, "stat").read_bytes().splitlines():
            if line.startswith(b"btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def context_switches(pid: int, proc: str = "/proc") -> dict[str, int]:
    """The context switches so far of every thread of ``pid`` (``/proc/PID/task/*/status``), by kind:
    ``voluntary`` (slept) and ``involuntary`` (preempted). ``loadtests/bench.py`` reads them too.

    >>> sorted(context_switches(os.getpid()))
    ['involuntary', 'voluntary']
    """
    switches = {"voluntary": 0, "involuntary": 0}
    for status in Path(proc, str(pid), "task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # (a thread that just exited)
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                switches["voluntary"] += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                switches["involuntary"] += int(line.split()[1])
    return switches
