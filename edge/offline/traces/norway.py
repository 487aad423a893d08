"""The Norway 3G commute logs (Riiser et al.), in both forms: the JSON intervals and the raw six-column log.

Interval formats carry bytes over a span of milliseconds: the bytes are spread evenly over
their span and each whole second gets the bits that fell in it divided by the part of the
second the trace covers. See :mod:`edge.offline.traces`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import orjson

from edge.offline.traces.base import (
    _DAMAGE,
    Sample,
    Trace,
    TraceFormatError,
    TraceReader,
    _Lines,
    _number,
    _numeric_fields,
    _open_text,
    _quote,
)

__all__ = ["NorwayJsonReader", "NorwayLogReader"]


class _PerSecond:
    """Bits delivered over millisecond intervals → per-second throughput, spreading each evenly."""

    __slots__ = ("bits", "covered")

    def __init__(self) -> None:
        self.bits: dict[int, float] = {}
        self.covered: dict[int, float] = {}

    def add(self, start_ms: float, end_ms: float, bits: float) -> None:
        span = end_ms - start_ms
        if span <= 0:
            return
        rate = bits / span  # bits per ms = kbit/s
        second = math.floor(start_ms / 1000.0)
        while second * 1000.0 < end_ms:
            lo, hi = max(start_ms, second * 1000.0), min(end_ms, (second + 1) * 1000.0)
            if hi > lo:
                self.bits[second] = self.bits.get(second, 0.0) + rate * (hi - lo)
                self.covered[second] = self.covered.get(second, 0.0) + (hi - lo)
            second += 1

    def samples(self) -> Iterator[Sample]:
        for t in sorted(self.bits):
            yield Sample(int(t), kbps=self.bits[t] / self.covered[t])


class NorwayJsonReader(TraceReader):
    """The JSON form of the Norway 3G logs: ``[{"duration_ms": 1008, "bandwidth_kbps": 2290, …}, …]``."""

    name = "norway-json"
    expected = 'a JSON list of {"duration_ms": >0, "bandwidth_kbps": >=0} objects'

    def matches(self, first: str) -> bool:
        return first.lstrip("\ufeff \t").startswith(("[", "{"))

    def samples(self, path: Path, trace: Trace) -> Iterator[Sample]:
        try:
            with _open_text(path) as f:
                text = f.read()
        except _DAMAGE as exc:
            raise TraceFormatError(path, f"damaged or truncated gzip ({exc})") from exc
        try:
            entries = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise self.error(path, f"not valid JSON ({exc.msg})", exc.lineno) from None
        if not isinstance(entries, list):
            raise self.error(path, "the JSON is not a list", 1)
        acc = _PerSecond()
        t_ms = 0.0
        for k, entry in enumerate(entries):
            trace.rows += 1
            duration, kbps = self._entry(entry)
            if duration is None or kbps is None:
                raise self.error(path, f"entry {k + 1} is {_short(entry)}", _entry_line(text, k))
            acc.add(t_ms, t_ms + duration, kbps * duration)
            t_ms += duration
        yield from acc.samples()

    @staticmethod
    def _entry(entry: object) -> tuple[float | None, float | None]:
        if not isinstance(entry, dict):
            return None, None
        duration, kbps = _json_number(entry.get("duration_ms")), _json_number(entry.get("bandwidth_kbps"))
        if duration is None or duration <= 0 or kbps is None or kbps < 0:
            return None, None
        return duration, kbps


def _json_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _short(value: object) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _entry_line(text: str, index: int) -> int | None:
    """The line on which the ``index``-th element of the top-level JSON list starts."""
    depth, in_string, escaped, line, count = 0, False, False, 1, -1
    expecting = False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if depth == 1 and expecting and not ch.isspace() and ch not in ",]":
            count += 1
            expecting = False
            if count == index:
                return line
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth == 1:
                expecting = True
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 1:
            expecting = True
    return None


class NorwayLogReader(TraceReader):
    """The original Norway 3G logs: ``unix_s ms_counter lat lon bytes ms`` a line (bytes and ms since the previous line)."""

    name = "norway-log"
    expected = "six numbers: unix seconds, millisecond counter, latitude, longitude, bytes (>=0), milliseconds (>=0)"

    def matches(self, first: str) -> bool:
        fields = _numeric_fields(first)
        return fields is not None and len(fields) == 6

    def samples(self, path: Path, trace: Trace) -> Iterator[Sample]:
        lines = _Lines(path)
        acc = _PerSecond()
        end_ms: float | None = None
        for number, text in lines:
            text = text.strip()
            if not text:
                continue
            trace.rows += 1
            fields = text.split()
            values = [_number(v) for v in fields] if len(fields) == 6 else []
            if len(values) != 6 or any(v is None for v in values):
                raise self.error(path, f"cannot read {_quote(text)}", number)
            unix_s, _, _, _, size, ms = values
            if size < 0 or ms < 0 or unix_s < 0:  # type: ignore[operator]
                raise self.error(path, f"negative bytes, milliseconds or time in {_quote(text)}", number)
            if end_ms is None:  # the first line's bytes arrived over the ms before its own timestamp
                end_ms = unix_s * 1000.0 - ms  # type: ignore[operator]
            acc.add(end_ms, end_ms + ms, size * 8.0)  # type: ignore[operator]
            end_ms += ms  # type: ignore[operator]
        trace.truncated = lines.truncated
        if end_ms is None:
            raise self.error(path, "no samples")
        yield from acc.samples()
