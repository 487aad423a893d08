"""Metric samples in multiprocess mode without a system call per increment.

With ``edge serve --workers N`` prometheus-client keeps every sample in a per-process mmap'd file
(``PROMETHEUS_MULTIPROC_DIR``), and its value class checks the process id on every increment and set,
to notice a fork (a forked child must not write into its parent's file). It asks ``os.getpid()``, a
system call: about ten per full-tier page (``strace -c`` on a worker under load: 9.87 ``getpid`` a
page, against 5.4 calls a page for everything else). :func:`install` gives the value class a process id
kept in a variable instead, refreshed in a child after every ``os.fork`` (``os.register_at_fork``), which
is when it can change; the fork check itself is prometheus-client's, unchanged.

Call it before any metric is made (``edge.core.metrics`` and ``edge.state.metrics`` call it first thing);
it is a no-op in one process, where samples are plain values.

    >>> process_id() == os.getpid()
    True
"""

from __future__ import annotations

import os

from prometheus_client import values

__all__ = ["install", "process_id"]

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    """This process's id, as ``os.getpid()`` returns it, without the system call."""
    return _pid


def install() -> None:
    """In multiprocess mode, make metrics made from now on use :func:`process_id` (once; idempotent)."""
    if not getattr(values.ValueClass, "_multiprocess", False) or getattr(values.ValueClass, "_edge_cached_pid", False):
        return
    value_class = values.MultiProcessValue(process_identifier=process_id)
    value_class._edge_cached_pid = True
    values.ValueClass = value_class
