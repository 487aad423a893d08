"""Which format a trace file is in (from its content, never its name), and the entry point that reads it.

See :mod:`edge.offline.traces`.
"""

from __future__ import annotations

from pathlib import Path

from edge.offline.traces.base import Trace, TraceFormatError, TraceReader, _Lines, _meaningful, _numeric_fields, _quote
from edge.offline.traces.gnettrack import GNetTrackReader
from edge.offline.traces.mahimahi import MahimahiReader
from edge.offline.traces.norway import NorwayJsonReader, NorwayLogReader
from edge.offline.traces.throughput import ThroughputReader

__all__ = ["FORMATS", "READERS", "detect_format", "read_trace"]

#: How far into a file :func:`detect_format` looks for its first meaningful line.
_DETECT_BYTES = 64 * 1024

#: The readers, in detection order. JSON comes first: a JSON list written on one line has commas and
#: words, as a CSV header has, but a CSV header never starts with ``[`` or ``{``.
READERS: dict[str, TraceReader] = {
    r.name: r for r in (NorwayJsonReader(), GNetTrackReader(), MahimahiReader(), NorwayLogReader(), ThroughputReader())
}
FORMATS = tuple(READERS)


def _first_line(path: Path) -> tuple[int, str] | None:
    """The first meaningful line and its number (``#`` comments and blanks skipped), kept whole."""
    read = 0
    for number, text in _Lines(path):
        stripped = text.strip().lstrip("\ufeff")
        if _meaningful(stripped):
            return number, stripped if _numeric_fields(_meaningful(stripped)) is None else _meaningful(stripped)
        read += len(text)
        if read >= _DETECT_BYTES:
            break
    return None


def detect_format(path: str | Path) -> str:
    """Which format a file is in, from its first meaningful line (see :mod:`edge.offline.traces`).

    Raises :class:`TraceFormatError` naming the file and the line when no format fits.
    """
    path = Path(path)
    first = _first_line(path)
    expected = (
        "a G-NetTrack CSV header, a JSON list, one integer a line (Mahimahi), "
        "two numbers a line (seconds, kbit/s) or six (a Norway log)"
    )
    if first is None:
        raise TraceFormatError(path, "empty file (no samples)", expected=expected)
    number, text = first
    for name, reader in READERS.items():
        if reader.matches(text):
            return name
    fields = _numeric_fields(text)
    if fields is None:
        problem = f"cannot tell the trace format from {_quote(text)}"
    elif len(fields) == 1:
        problem = f"{_quote(text)} is not an integer number of milliseconds"
    else:
        problem = f"{len(fields)} numbers a line fits no trace format"
    raise TraceFormatError(path, problem, number, expected)


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read one trace file (plain or gzip) in format ``fmt``, or the format its content shows.

    Raises :class:`TraceFormatError` (naming the file, and the line when there is one).
    """
    path = Path(path)
    if fmt is None:
        fmt = detect_format(path)
    reader = READERS.get(fmt)
    if reader is None:
        raise ValueError(f"unknown trace format {fmt!r} (one of: {', '.join(FORMATS)})")
    trace = Trace(name=path.name, seconds=[], format=fmt, saturated=reader.saturated)
    try:
        trace.seconds = list(reader.samples(path, trace))
    except UnicodeError as exc:  # pragma: no cover - files are decoded with errors="replace"
        raise TraceFormatError(path, f"not text ({exc})") from exc
    return trace
