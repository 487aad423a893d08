"""Cellular trace readers: five file formats, one per-second record.

Every reader turns a file (plain or gzip) into a :class:`Trace`: one client's session as a
list of :class:`Sample` records, one per second, each with the second (``t``), the measured
throughput in kbit/s and, when the format has them, the cell, radio and channel figures.
Formats are told apart by their content (:func:`detect_format`), never by the file name:

=============== ==================================================================== =========
format          content                                                              saturated
=============== ==================================================================== =========
``gnettrack``   G-NetTrack Pro CSV export: a header row naming ``Timestamp``,        no
                ``DL_bitrate``, ``State`` …; several rows may share a second
``norway-json`` a JSON list of ``{"duration_ms": …, "bandwidth_kbps": …}`` intervals  yes
                (the Riiser et al. 3G commute logs as UMass-LIDS/sabre converted them)
``norway-log``  the original Riiser et al. logs, six columns a line: unix seconds,   yes
                a millisecond counter, latitude, longitude, bytes since the previous
                line, milliseconds since the previous line
``mahimahi``    Mahimahi link traces: one integer millisecond timestamp a line, each yes
                a 1500-byte delivery opportunity (a timestamp repeated = several
                packets in that millisecond); the trace loops with the last timestamp
                as its period
``throughput``  a per-second log: seconds and kbit/s a line, separated by            yes
                whitespace or a comma; ``#`` starts a comment
=============== ==================================================================== =========

**The physics.** Interval formats (the two Norway forms) carry bytes over a span of
milliseconds: the bytes are spread evenly over their span and each whole second gets the
bits that fell in it divided by the part of the second the trace covers (so a 55 s interval
with 3 kbit/s is 55 seconds of 3 kbit/s: an outage, not one slow sample). Mahimahi traces
are capacity: a second's throughput is its delivery opportunities × 1500 bytes × 8, and a
trace shorter than :data:`MAHIMAHI_MIN_S` is looped up to that. A *saturated* trace measures
what a greedy download (or the link) could carry every second, so a second near zero is an
outage and a real measurement; in G-NetTrack's video sessions a near-zero downloading
second is a full player buffer trickling, which says nothing about the network (the replay's
label rule uses this flag).

Formats without absolute clocks (Norway JSON, Mahimahi, and throughput logs, whose seconds are
whatever the file says) start at their own second 0; G-NetTrack and the raw Norway log carry
wall-clock time (UTC seconds).

**Errors.** A file that cannot be read raises :class:`TraceFormatError` naming the file, the
line and what was expected there. G-NetTrack exports are the exception for *rows*: real
exports contain stray rows, so a row with the wrong field count, a bad timestamp or a bad
``DL_bitrate`` is skipped and counted (``Trace.rows_skipped``); only a file without the
required columns is an error. A truncated gzip keeps the lines read before the damage
(``Trace.truncated``), except in the JSON form, which cannot be read in part.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> path = os.path.join(d, "link.log")
    >>> with open(path, "w") as f:
    ...     _ = f.write("# t kbit/s\\n0 800\\n1 650.5\\n2,0\\n")
    >>> trace = read_trace(path)
    >>> trace.format, [(s.t, s.kbps) for s in trace.seconds]
    ('throughput', [(0, 800.0), (1, 650.5), (2, 0.0)])
"""

from __future__ import annotations

import bisect
import calendar
import csv
import gzip
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar

import orjson

from edge.core.errors import EdgeError

__all__ = [
    "FORMATS",
    "Sample",
    "Trace",
    "TraceFormatError",
    "TraceReader",
    "READERS",
    "REQUIRED_COLUMNS",
    "MAHIMAHI_MIN_S",
    "MAHIMAHI_PACKET_BYTES",
    "detect_format",
    "read_trace",
]

#: Columns without which a file is not a usable G-NetTrack export.
REQUIRED_COLUMNS = ("Timestamp", "CellID", "NetworkMode", "DL_bitrate", "State")
#: A Mahimahi delivery opportunity carries one MTU-sized packet.
MAHIMAHI_PACKET_BYTES = 1500
#: A Mahimahi trace shorter than this is looped (as Mahimahi does) up to this many seconds.
MAHIMAHI_MIN_S = 300
#: How far into a file :func:`detect_format` looks for its first meaningful line.
_DETECT_BYTES = 64 * 1024

_TIMESTAMP = re.compile(r"^\s*(\d{4})\.(\d{1,2})\.(\d{1,2})_(\d{1,2})\.(\d{1,2})\.(\d{1,2})\s*$")
_SAFE_ID = re.compile(r"[^A-Za-z0-9:._-]")
_SPLIT = re.compile(r"[\s,]+")
_INTEGER = re.compile(r"[0-9]+")
#: G-NetTrack column → Edge-Cell member (the header the app sends live).
_RADIO_FIGURES = (("RSRP", "rsrp"), ("RSRQ", "rsrq"), ("SNR", "sinr"), ("CQI", "cqi"), ("Speed", "speed"))


class TraceFormatError(EdgeError, ValueError):
    """A trace file that cannot be read; the message names the file (and the line, when there is one)."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None, expected: str | None = None) -> None:
        where = f"{path}: line {line}: " if line is not None else f"{path}: "
        super().__init__(where + problem + (f" (expected {expected})" if expected else ""))
        self.path = str(path)
        self.line = line


@dataclass(slots=True)
class Sample:
    """One second of one trace: the common record every reader yields."""

    t: int  #: the second (UTC seconds, or the trace's own second 0 for formats without a clock)
    kbps: float | None = None  #: throughput measured over the second (None: not measured)
    downloading: bool = True  #: the phone was downloading (G-NetTrack ``State`` D; always for the others)
    ping: bool = False  #: the measurement tool pinged in this second (G-NetTrack ``PINGAVG``)
    cell_id: str | None = None
    mode: str | None = None  #: radio access, lower case (``lte``, ``5g``, ``hsdpa`` …)
    figures: dict[str, float] = field(default_factory=dict)  #: Edge-Cell members: rsrp, rsrq, sinr, cqi, speed

    def edge_cell(self) -> str:
        """The ``Edge-Cell`` header an app on this phone would send now (empty when nothing is known)."""
        parts = []
        if self.cell_id:
            parts.append(f'id="{self.cell_id}"')
        if self.mode:
            parts.append(f'radio="{self.mode}"')
        for name, value in self.figures.items():
            parts.append(f"{name}={value:.1f}")
        return ", ".join(parts)


@dataclass(slots=True)
class Trace:
    """One file: one client's session, one :class:`Sample` per second, in time order."""

    name: str
    seconds: list[Sample]
    format: str = "gnettrack"
    #: Throughput is what a greedy download (or the link) carried: a near-zero second is an outage.
    saturated: bool = False
    rows: int = 0
    rows_skipped: int = 0
    truncated: bool = False


# ---------------------------------------------------------------------------------------------
# Opening files
# ---------------------------------------------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open_text(path: Path) -> IO[str]:
    try:
        if _is_gzip(path):
            return gzip.open(path, "rt", newline="", encoding="utf-8", errors="replace")
        return open(path, newline="", encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TraceFormatError(path, f"cannot open ({exc.strerror or exc})") from exc


_DAMAGE = (OSError, EOFError, zlib.error)


class _Lines:
    """A file's lines with their numbers; a damaged gzip ends the iteration and sets ``truncated``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.truncated = False

    def __iter__(self) -> Iterator[tuple[int, str]]:
        with _open_text(self.path) as f:
            number = 0
            while True:
                try:
                    line = f.readline()
                except _DAMAGE:
                    self.truncated = True
                    return
                except UnicodeError as exc:  # pragma: no cover - errors="replace" decodes anything
                    raise TraceFormatError(self.path, f"not text ({exc})", number + 1) from exc
                if not line:
                    return
                number += 1
                yield number, line


def _meaningful(text: str) -> str:
    """A line without its ``#`` comment and surrounding blanks."""
    return text.split("#", 1)[0].strip()


def _number(raw: str) -> float | None:
    raw = raw.strip()
    if not raw or raw == "-":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# The readers
# ---------------------------------------------------------------------------------------------


class TraceReader:
    """One format: ``samples(path, trace)`` yields the file's :class:`Sample` records in time order.

    ``trace`` is the :class:`Trace` being filled: a reader counts rows into it and marks
    it truncated. ``matches(first)`` says whether a file whose first meaningful line (comments
    and blanks removed) is ``first`` is in this format: the first line decides, and the reader
    then names any later line that breaks the format.
    """

    name: ClassVar[str]
    saturated: ClassVar[bool] = True
    #: What a line looks like, for error messages.
    expected: ClassVar[str]

    def matches(self, first: str) -> bool:
        raise NotImplementedError

    def samples(self, path: Path, trace: Trace) -> Iterator[Sample]:
        raise NotImplementedError

    def error(self, path: Path, problem: str, line: int | None = None) -> TraceFormatError:
        return TraceFormatError(path, problem, line, self.expected)


def _numeric_fields(text: str) -> list[str] | None:
    """The line's fields if they are all numbers, else None."""
    fields = _SPLIT.split(text.strip())
    return None if any(_number(f) is None for f in fields) else fields


# --- G-NetTrack ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Columns:
    """Where a G-NetTrack export keeps what the replay reads."""

    width: int
    ts: int
    dl: int
    state: int
    mode: int
    cell: int
    ping: int | None
    raw: int | None
    node: int | None
    op: int | None
    figures: list[tuple[int, str]]

    @classmethod
    def from_header(cls, header: list[str]) -> _Columns | list[str]:
        """The column indices, or the list of missing required columns."""
        columns = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            return missing
        return cls(
            width=len(header),
            ts=columns["Timestamp"],
            dl=columns["DL_bitrate"],
            state=columns["State"],
            mode=columns["NetworkMode"],
            cell=columns["CellID"],
            ping=columns.get("PINGAVG"),
            raw=columns.get("RAWCELLID"),
            node=columns.get("NODEHEX"),
            op=columns.get("Operatorname"),
            figures=[(columns[c], name) for c, name in _RADIO_FIGURES if c in columns],
        )

    def cell_id(self, row: list[str]) -> str | None:
        """``Operatorname:RAWCELLID``, else ``NODEHEX-CellID``, else ``CellID``."""

        def get(i: int | None) -> str:
            if i is None:
                return ""
            v = row[i].strip()
            return "" if v == "-" else _SAFE_ID.sub("", v)

        raw, node, cell, op = get(self.raw), get(self.node), get(self.cell), get(self.op)
        if raw:
            ident = raw
        elif node and cell:
            ident = f"{node}-{cell}"
        elif cell:
            ident = cell
        else:
            return None
        return f"{op}:{ident}"[:64] if op else ident[:64]


class _SecondBuilder:
    """Several G-NetTrack rows of one second → one :class:`Sample` (numbers averaged, last cell kept)."""

    __slots__ = ("sample", "dl", "figures")

    def __init__(self, t: int) -> None:
        self.sample = Sample(t, downloading=False)
        self.dl: list[float] = []
        self.figures: dict[str, list[float]] = {}

    def add(self, row: list[str], cols: _Columns, dl: float | None) -> None:
        s = self.sample
        if row[cols.state].strip() == "D":
            s.downloading = True
            if dl is not None:
                self.dl.append(dl)
        if cols.ping is not None and _number(row[cols.ping]) is not None:
            s.ping = True
        mode = row[cols.mode].strip().lower()
        if mode and mode != "-":
            s.mode = _SAFE_ID.sub("", mode)[:16] or None
        cell = cols.cell_id(row)
        if cell is not None:
            s.cell_id = cell
        for idx, name in cols.figures:
            value = _number(row[idx])
            if value is not None:
                self.figures.setdefault(name, []).append(value)

    def build(self) -> Sample:
        s = self.sample
        if self.dl:
            s.kbps = sum(self.dl) / len(self.dl)
        for name, values in self.figures.items():
            s.figures[name] = sum(values) / len(values)
        return s


class _Clock:
    """G-NetTrack timestamps (``YYYY.MM.DD_HH.MM.SS``) → UTC seconds, caching the last one."""

    __slots__ = ("last_ts", "last_t")

    def __init__(self) -> None:
        self.last_ts: str | None = None
        self.last_t = 0

    def seconds(self, ts: str) -> int | None:
        if ts == self.last_ts:
            return self.last_t
        m = _TIMESTAMP.match(ts)
        if m is None:
            return None
        try:
            t = calendar.timegm((*(int(g) for g in m.groups()), 0, 0, 0))
        except (ValueError, OverflowError):
            return None
        self.last_ts, self.last_t = ts, t
        return t


class GNetTrackReader(TraceReader):
    """G-NetTrack Pro CSV exports (see ``../shared/data/gnettrack-5g-video/README.md``)."""

    name = "gnettrack"
    saturated = False
    expected = "a G-NetTrack export: a CSV header naming " + ", ".join(REQUIRED_COLUMNS)

    def matches(self, first: str) -> bool:
        return "Timestamp" in first or (first.count(",") >= 2 and _numeric_fields(first) is None)

    def samples(self, path: Path, trace: Trace) -> Iterator[Sample]:
        with _open_text(path) as f:
            reader = csv.reader(f)
            try:
                header = next(reader, None)
            except (*_DAMAGE, csv.Error, UnicodeError) as exc:
                raise TraceFormatError(path, f"not a G-NetTrack export (unreadable: {exc})", 1) from exc
            if header is None:
                raise TraceFormatError(path, "not a G-NetTrack export (empty file)")
            cols = _Columns.from_header(header)
            if isinstance(cols, list):
                raise TraceFormatError(path, f"not a G-NetTrack export (missing columns: {', '.join(cols)})", 1)
            by_second: dict[int, _SecondBuilder] = {}
            clock = _Clock()
            for row in self._rows(reader, trace):
                parsed = self._parse(row, cols, clock)
                if parsed is None:
                    trace.rows_skipped += 1
                    continue
                t, dl = parsed
                builder = by_second.get(t)
                if builder is None:
                    builder = by_second[t] = _SecondBuilder(t)
                builder.add(row, cols, dl)
        for t in sorted(by_second):
            yield by_second[t].build()

    @staticmethod
    def _rows(reader: Iterator[list[str]], trace: Trace) -> Iterator[list[str]]:
        """Non-empty rows, counted; an unparseable CSV row is counted as skipped; damage ends the file."""
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except _DAMAGE:  # truncated/corrupt gzip: keep what we have
                trace.truncated = True
                return
            except csv.Error:
                trace.rows += 1
                trace.rows_skipped += 1
                continue
            if row:
                trace.rows += 1
                yield row

    @staticmethod
    def _parse(row: list[str], cols: _Columns, clock: _Clock) -> tuple[int, float | None] | None:
        """(second, DL_bitrate or None when missing), or None for a row to skip."""
        if len(row) != cols.width:
            return None
        t = clock.seconds(row[cols.ts])
        if t is None:
            return None
        dl_raw = row[cols.dl].strip()
        dl = _number(dl_raw)
        if dl is None:
            return (t, None) if dl_raw in ("", "-") else None
        return None if dl < 0 else (t, dl)


# --- intervals (the two Norway forms) ----------------------------------------------------------


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


def _quote(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


# --- Mahimahi -----------------------------------------------------------------------------------


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


# --- per-second throughput logs ------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Detection and the entry point
# ---------------------------------------------------------------------------------------------

#: The readers, in detection order.
READERS: dict[str, TraceReader] = {
    r.name: r for r in (GNetTrackReader(), NorwayJsonReader(), MahimahiReader(), NorwayLogReader(), ThroughputReader())
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
    """Which format a file is in, from its first meaningful line (see the module docstring).

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
