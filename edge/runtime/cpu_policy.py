"""How the kernel schedules edge's processes: ``edge serve --cpu-policy normal|batch`` (``EDGE_CPU_POLICY``).

A sidecar shares its CPUs with the storefront it fronts. Once they are saturated, a worker that wakes
(a shopper's request came, the storefront answered) preempts whatever runs on its CPU, often the
storefront in the middle of a page, and each switch costs both processes their caches. Measured with two
workers under ``wrk -c16`` on a 2-core machine (docs/performance.md, "What a second worker costs: context
switches"), the two switched ~0.8 times a page between them against ~0.1–0.4 for one worker, and their
CPU a page rose by about a fifth.

``batch`` asks Linux for ``SCHED_BATCH`` (sched(7)): the same fair share of CPU, but a waking edge process
does not preempt the running task; it runs when that task sleeps or its slice ends. Fewer switches, more
work done per wake-up. It changes nothing on an idle CPU (a waking task takes it at once), and it needs no
privilege. ``normal`` (the default) leaves the kernel's default policy as it is.

The policy is set on every thread of the calling process; processes it starts afterwards (the workers of
``--workers N``) inherit it.

    >>> apply("normal")
    'normal'
"""

from __future__ import annotations

import os

from edge.core.errors import SettingsError
from edge.core.settings import CpuPolicy

__all__ = ["apply"]


def apply(policy: CpuPolicy) -> str:
    """Put every thread of this process under ``policy``; returns it. ``normal`` changes nothing.

    Raises :class:`~edge.core.errors.SettingsError` naming ``EDGE_CPU_POLICY`` when the kernel has no
    such policy (not Linux) or refuses it.
    """
    if policy == "normal":
        return policy
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is None:
        raise SettingsError(f"EDGE_CPU_POLICY: {policy!r} needs Linux's SCHED_BATCH (this system has none)")
    try:
        for thread in _threads():
            os.sched_setscheduler(thread, batch, os.sched_param(0))
    except OSError as exc:
        raise SettingsError(f"EDGE_CPU_POLICY: the kernel refused {policy!r}: {exc.strerror}") from None
    return policy


def _threads() -> list[int]:
    """This process's thread ids (Linux's /proc), or [0] (the calling thread) where there is no /proc."""
    try:
        return [int(entry) for entry in os.listdir("/proc/self/task")]
    except OSError:
        return [0]
