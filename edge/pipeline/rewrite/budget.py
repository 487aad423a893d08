"""Measuring a rewritten page and fitting it to the route's byte budget.

When a rewrite is measured (a report is asked for, or the tier has a budget), the handlers of
:mod:`edge.pipeline.rewrite.handlers` bracket every surviving widget and image with marker
comments (``<!--{nonce}w3-->`` … ``<!--{nonce}/w3-->``). :func:`settle` then works in three steps:

1. :func:`read_markers`: where each widget and image is, which widgets hold each image;
2. :class:`_Cut`: one budget cut shared by widgets and images: the lowest-priority widgets
   first (never those at or above the route's ``protect``), then the largest images outside the
   protected widgets, until the page fits;
3. :func:`_strip`: the cut spans and every marker out of the page; the report says who survived.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from edge.pipeline.rewrite.handlers import RewriteReport, Run

__all__ = ["Markers", "read_markers", "settle"]

_Key = tuple[bytes, int]  # (b"w" or b"i", marker id)
_Span = tuple[int, int]  # [start, end) in the marked page


@dataclass(slots=True)
class Markers:
    """What the markers of one marked page say: where things are, and how many bytes they take."""

    #: Where each widget's and image's opening marker starts.
    opens: dict[_Key, int] = field(default_factory=dict)
    #: The span of each widget and image that can be cut whole (both markers, a well-formed end).
    spans: dict[_Key, _Span] = field(default_factory=dict)
    #: Image id → ids of the widgets around it.
    inside: dict[int, list[int]] = field(default_factory=dict)
    #: Each marker's start, and the markers' bytes before each (for the content of a span).
    starts: list[int] = field(default_factory=list)
    cumulative: list[int] = field(default_factory=lambda: [0])
    widgets: list[int] = field(default_factory=list)
    images: list[int] = field(default_factory=list)

    @property
    def marker_bytes(self) -> int:
        return self.cumulative[-1]

    def content(self, s: int, e: int) -> int:
        """The page's bytes in [s, e), markers left out."""
        cumulative, starts = self.cumulative, self.starts
        return (e - s) - (cumulative[bisect.bisect_left(starts, e)] - cumulative[bisect.bisect_left(starts, s)])

    def image_at(self, i: int) -> int:
        """Where image ``i`` is: the start of its span, else of its opening marker."""
        span = self.spans.get((b"i", i))
        return span[0] if span else self.opens[(b"i", i)]


def read_markers(out: bytes, marker: re.Pattern[bytes], run: Run) -> Markers:
    """Step 1: parse the markers of ``out`` (``marker`` matches one: slash, kind, id)."""
    found = Markers()
    opens, spans = found.opens, found.spans
    stack: list[_Key] = []  # open widgets
    for m in marker.finditer(out):
        start, end = m.span()
        found.starts.append(start)
        found.cumulative.append(found.cumulative[-1] + end - start)
        key = (m.group(2), int(m.group(3)))
        if not m.group(1):
            opens[key] = start
            if key[0] == b"i":
                found.inside[key[1]] = [k[1] for k in stack if k[0] == b"w"]
            else:
                stack.append(key)
        elif key[0] == b"i":
            if key in opens:
                spans[key] = (opens[key], end)
        elif key in stack:
            # Widgets opened inside this one but not closed before it ended cross it: never cut them.
            while stack[-1] != key:
                stack.pop()
            stack.pop()
            if _ends_with_end_tag(out, start, run.widgets[key[1]][1]):
                spans[key] = (opens[key], end)
    found.widgets = sorted({k[1] for k in opens if k[0] == b"w"})
    found.images = sorted({k[1] for k in opens if k[0] == b"i"})
    return found


def _ends_with_end_tag(out: bytes, at: int, tag: str) -> bool:
    """Whether ``out[:at]`` ends with ``</tag>``: lol_html closes a widget there and nowhere odd."""
    window = out[max(0, at - len(tag) - 40) : at]
    return re.search(rb"</" + re.escape(tag.encode()) + rb"\s*>\Z", window, re.IGNORECASE) is not None


class _Cut:
    """The spans cut from the page so far (none inside another), and the bytes each cut frees."""

    __slots__ = ("markers", "run", "dropped")

    def __init__(self, markers: Markers, run: Run) -> None:
        self.markers, self.run = markers, run
        self.dropped: list[_Span] = []

    def covered(self, s: int, e: int) -> bool:
        return any(ds <= s and e <= de for ds, de in self.dropped)

    def drop(self, s: int, e: int) -> int:
        """Cut [s, e); return the bytes (HTML and images) that leaves the page."""
        markers = self.markers
        inner = [(ds, de) for ds, de in self.dropped if s <= ds and de <= e]
        removed = markers.content(s, e) - sum(markers.content(ds, de) for ds, de in inner)
        for i in markers.images:
            position = markers.image_at(i)
            if s <= position < e and not any(ds <= position < de for ds, de in inner):
                removed += self.run.images[i][0]
        for d in inner:
            self.dropped.remove(d)
        self.dropped.append((s, e))
        return removed


def _candidates(markers: Markers, run: Run) -> list[tuple[_Span, str]]:
    """What the budget may cut, in order: unprotected widgets by priority (the later first on a tie),
    then the images outside protected widgets, largest first; each with the name the report gives it."""
    protect = run.plan.protect
    spans = markers.spans
    widgets = [i for i in markers.widgets if (b"w", i) in spans and run.widgets[i][0].priority < protect]
    widgets.sort(key=lambda i: (run.widgets[i][0].priority, -i))
    protected = {i for i in markers.widgets if run.widgets[i][0].priority >= protect}
    images = [i for i in markers.images if (b"i", i) in spans and not protected.intersection(markers.inside.get(i, ()))]
    images.sort(key=lambda i: -run.images[i][0])
    return [(spans[(b"w", i)], run.widgets[i][0].name) for i in widgets] + [
        (spans[(b"i", i)], "img " + run.images[i][1]) for i in images
    ]


def cut_to_budget(markers: Markers, run: Run, total: int, budget: int, report: RewriteReport) -> _Cut:
    """Step 2: cut candidates (see :func:`_candidates`) until ``total`` bytes fit ``budget``."""
    cut = _Cut(markers, run)
    if total <= budget:
        return cut
    for (s, e), name in _candidates(markers, run):
        if total <= budget:
            break
        if cut.covered(s, e):
            continue
        total -= cut.drop(s, e)
        report.budget_dropped.append(name)
    return cut


def _report_survivors(markers: Markers, run: Run, cut: _Cut, report: RewriteReport) -> None:
    """Who survived, by the markers left outside the cut spans."""
    for i in markers.widgets:
        at = markers.opens[(b"w", i)]
        if not cut.covered(at, at + 1):
            report.kept.append(run.widgets[i][0].name)
    report.images_kept = 0
    report.image_bytes = 0
    for i in markers.images:
        at = markers.opens[(b"i", i)]
        if not cut.covered(at, at + 1):
            report.images_kept += 1
            report.image_bytes += run.images[i][0]


def _strip(out: bytes, dropped: list[_Span], marker: re.Pattern[bytes]) -> bytes:
    """Step 3: the page without the cut spans and without markers."""
    pieces = []
    last = 0
    for s, e in sorted(dropped):
        pieces.append(out[last:s])
        last = e
    pieces.append(out[last:])
    return marker.sub(b"", b"".join(pieces))


def settle(out: bytes, marker: re.Pattern[bytes], run: Run, report: RewriteReport, budget: int | None) -> bytes:
    """Read the markers back: who survived, their bytes; drop for the budget; strip the markers."""
    markers = read_markers(out, marker, run)
    report.budget = budget
    total = len(out) - markers.marker_bytes + sum(run.images[i][0] for i in markers.images)
    cut = cut_to_budget(markers, run, total, budget, report) if budget is not None else _Cut(markers, run)
    _report_survivors(markers, run, cut, report)
    return _strip(out, cut.dropped, marker)
