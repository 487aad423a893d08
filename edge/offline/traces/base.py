"""The trace readers' shared machinery: the records, the reader interface, errors, and reading lines.

Every reader (one module per format beside this one) yields :class:`Sample` records into a
:class:`Trace` and raises :class:`TraceFormatError`; see :mod:`edge.offline.traces`.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar

from edge.core.errors import EdgeError

__all__ = ["Sample", "Trace", "TraceFormatError", "TraceReader"]

_SPLIT = re.compile(r"[\s,]+")


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




def _quote(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
