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

**Modules.** ``base`` (the records, :class:`TraceReader`, :class:`TraceFormatError`, reading
lines), one module per format (``gnettrack``, ``norway``, ``mahimahi``, ``throughput``) and
``detection`` (:data:`READERS` in detection order, :func:`detect_format`, :func:`read_trace`);
everything public is importable from here.
"""

from __future__ import annotations

from edge.offline.traces.base import Sample, Trace, TraceFormatError, TraceReader
from edge.offline.traces.detection import FORMATS, READERS, detect_format, read_trace
from edge.offline.traces.gnettrack import REQUIRED_COLUMNS
from edge.offline.traces.gnettrack import GNetTrackReader as GNetTrackReader
from edge.offline.traces.mahimahi import MAHIMAHI_MIN_S, MAHIMAHI_PACKET_BYTES
from edge.offline.traces.mahimahi import MahimahiReader as MahimahiReader
from edge.offline.traces.norway import NorwayJsonReader as NorwayJsonReader
from edge.offline.traces.norway import NorwayLogReader as NorwayLogReader
from edge.offline.traces.throughput import ThroughputReader as ThroughputReader

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
