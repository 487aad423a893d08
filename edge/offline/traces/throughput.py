"""Per-second throughput logs: seconds and kbit/s a line, separated by whitespace or a comma; ``#`` starts a comment.

See :mod:`edge.offline.traces`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from edge.offline.traces.base import _SPLIT, Sample, Trace, TraceReader, _Lines, _meaningful, _number, _numeric_fields, _quote

__all__ = ["ThroughputReader"]


class ThroughputReader(TraceReader):
    """A per-second throughput log: ``seconds kbit/s`` a line (whitespace or comma), ``#`` comments."""

    name = "throughput"
    expected = "two numbers a line: seconds (never decreasing) and kbit/s (>=0), separated by blanks or a comma"

    def matches(self, first: str) -> bool:
        fields = _numeric_fields(first)
        return fields is not None and len(fields) == 2

    def samples(self, path: Path, trace: Trace) -> Iterator[Sample]:
        lines = _Lines(path)
        sums: dict[int, list[float]] = {}
        last: float | None = None
        for number, text in lines:
            text = _meaningful(text)
            if not text:
                continue
            trace.rows += 1
            fields = _SPLIT.split(text)
            values = [_number(v) for v in fields] if len(fields) == 2 else []
            if len(values) != 2 or values[0] is None or values[1] is None:
                raise self.error(path, f"cannot read {_quote(text)}", number)
            t, kbps = values
            assert t is not None and kbps is not None  # checked just above
            if kbps < 0:
                raise self.error(path, f"negative throughput in {_quote(text)}", number)
            if last is not None and t < last:
                raise self.error(path, f"time {t:g} comes after {last:g}: time goes backwards", number)
            last = t
            sums.setdefault(math.floor(t), []).append(kbps)
        trace.truncated = lines.truncated
        if not sums:
            raise self.error(path, "no samples")
        for t in sorted(sums):
            yield Sample(t, kbps=sum(sums[t]) / len(sums[t]))
