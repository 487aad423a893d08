"""Mahimahi link traces: one integer millisecond timestamp a line, each a 1500-byte delivery opportunity.

A timestamp repeated is several packets in that millisecond; the trace loops with the last
timestamp as its period, and a trace shorter than :data:`MAHIMAHI_MIN_S` is looped up to
that. See :mod:`edge.offline.traces`.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator
from pathlib import Path

from edge.offline.traces.base import Sample, Trace, TraceReader, _Lines, _quote

__all__ = ["MAHIMAHI_MIN_S", "MAHIMAHI_PACKET_BYTES", "MahimahiReader"]

#: A Mahimahi delivery opportunity carries one MTU-sized packet.
MAHIMAHI_PACKET_BYTES = 1500
#: A Mahimahi trace shorter than this is looped (as Mahimahi does) up to this many seconds.
MAHIMAHI_MIN_S = 300

_INTEGER = re.compile(r"[0-9]+")


class MahimahiReader(TraceReader):
    """Mahimahi link traces: one delivery opportunity (1500 bytes) per line, integer milliseconds; it loops."""

    name = "mahimahi"
    expected = "one integer millisecond timestamp a line, never decreasing"

    def matches(self, first: str) -> bool:
        return _INTEGER.fullmatch(first.strip()) is not None

    def samples(self, path: Path, trace: Trace) -> Iterator[Sample]:
        lines = _Lines(path)
        schedule: list[int] = []
        for number, text in lines:
            text = text.strip()
            if not text:
                continue
            trace.rows += 1
            if not _INTEGER.fullmatch(text):
                raise self.error(path, f"cannot read {_quote(text)}", number)
            ms = int(text)
            if schedule and ms < schedule[-1]:
                raise self.error(path, f"{ms} comes after {schedule[-1]}: timestamps go backwards", number)
            schedule.append(ms)
        trace.truncated = lines.truncated
        if not schedule:
            raise self.error(path, "no delivery opportunities")
        period = schedule[-1]
        if period <= 0:
            raise self.error(path, "the last timestamp (the trace's period) must be above 0", trace.rows)
        seconds = max(math.ceil(period / 1000), MAHIMAHI_MIN_S)
        kbit = MAHIMAHI_PACKET_BYTES * 8 / 1000.0
        before = 0
        for t in range(seconds):
            upto = _opportunities_before(schedule, period, (t + 1) * 1000)
            yield Sample(t, kbps=(upto - before) * kbit)
            before = upto


def _opportunities_before(schedule: list[int], period: int, x: int) -> int:
    """Delivery opportunities at times < ``x`` ms when ``schedule`` (times in [0, period]) repeats every ``period`` ms.

    >>> _opportunities_before([1], 1, 1000), _opportunities_before([0, 500, 1000], 1000, 2000)
    (999, 5)
    """
    q, r = divmod(x, period)
    n = len(schedule)
    # Loop k delivers schedule[i] + k·period: all of loops 0..q-2, loop q-1 up to period + r, loop q up to r.
    total = max(q - 1, 0) * n
    if q >= 1:
        total += bisect.bisect_left(schedule, period + r)
    return total + bisect.bisect_left(schedule, r)
