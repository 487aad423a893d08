"""G-NetTrack Pro CSV exports: a header row naming ``Timestamp``, ``DL_bitrate``, ``State`` …; several rows may share a second.

Not saturated: in G-NetTrack's video sessions a near-zero downloading second is a full player
buffer trickling. Stray rows are skipped and counted (``Trace.rows_skipped``); only a file
without :data:`REQUIRED_COLUMNS` is an error. See :mod:`edge.offline.traces`.
"""

from __future__ import annotations

import calendar
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.offline.traces.base import _DAMAGE, Sample, Trace, TraceFormatError, TraceReader, _number, _numeric_fields, _open_text

__all__ = ["GNetTrackReader", "REQUIRED_COLUMNS"]

#: Columns without which a file is not a usable G-NetTrack export.
REQUIRED_COLUMNS = ("Timestamp", "CellID", "NetworkMode", "DL_bitrate", "State")
_TIMESTAMP = re.compile(r"^\s*(\d{4})\.(\d{1,2})\.(\d{1,2})_(\d{1,2})\.(\d{1,2})\.(\d{1,2})\s*$")
_SAFE_ID = re.compile(r"[^A-Za-z0-9:._-]")
#: G-NetTrack column → Edge-Cell member (the header the app sends live).
_RADIO_FIGURES = (("RSRP", "rsrp"), ("RSRQ", "rsrq"), ("SNR", "sinr"), ("CQI", "cqi"), ("Speed", "speed"))


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
