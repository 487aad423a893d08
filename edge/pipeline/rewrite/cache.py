"""RewriteCache: a page's last layout per tier, reused while the storefront serves that page byte for byte.

A lite or minimal layout costs a full lol_html pass (~0.7 ms for the demo's
135 KB home page, most of a lite request's CPU), and many storefront pages
(categories, products for anonymous shoppers) come back identical request
after request. The cache keeps, per route, tier and path, the last page seen
and its layout (before the per-request switch link and beacon are spliced
in); a page equal to the stored one byte for byte reuses the layout. Any
difference (a CSRF token, a cart count) is a miss (as the hit/miss counters
count it) that costs one comparison (bytes equality: a length check, then
memcmp) and replaces the entry.

A page that differs from the stored one only in small runs (a token, a count:
:mod:`edge.pipeline.rewrite.template`) may carry a :class:`LayoutTemplate` learnt
from the two, which the rewriter fills instead of laying the next page out; the
entry also keeps how many misses to wait before trying to learn again after a failure.

Bounded by bytes (pages, layouts and templates, ``EDGE_REWRITE_CACHE_BYTES``), least
recently used out first; an entry over a quarter of the bound is not kept. A
policy reload builds a new rewriter and so starts an empty cache.

>>> cache = RewriteCache(max_bytes=100)
>>> cache.get(("/", "lite"), b"<p>page</p>") is None
True
>>> cache.put(("/", "lite"), b"<p>page</p>", b"<p>pg</p>")
>>> cache.get(("/", "lite"), b"<p>page</p>"), cache.get(("/", "lite"), b"<p>PAGE</p>")
(b'<p>pg</p>', None)
>>> cache.put(("/a", "lite"), b"x" * 40, b"y")  # over a quarter of the bound: not kept
>>> len(cache), cache.bytes
(1, 20)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import NamedTuple

from edge.pipeline.rewrite.template import LayoutTemplate

__all__ = ["RewriteCache"]


def _nothing() -> None:
    return None


class Entry(NamedTuple):
    page: bytes
    layout: bytes
    template: LayoutTemplate | None
    cooldown: int  # misses before the next attempt to learn a template
    size: int
    filled: bool  # the layout was filled into the template (it has served a page since it was learnt)


class RewriteCache:
    """Layouts by key, valid only for the exact page they were made from."""

    def __init__(self, max_bytes: int, on_hit: Callable[[], None] = _nothing, on_miss: Callable[[], None] = _nothing) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._on_hit = on_hit
        self._on_miss = on_miss

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, page: bytes) -> bytes | None:
        """The layout made from exactly ``page`` under ``key``, or None."""
        entry = self._entries.get(key)
        if entry is None or entry.page != page:
            self._on_miss()
            return None
        self._entries.move_to_end(key)
        self._on_hit()
        return entry.layout

    def last(self, key: Hashable) -> Entry | None:
        """The entry under ``key`` whatever its page (no hit or miss counted)."""
        return self._entries.get(key)

    def put(
        self, key: Hashable, page: bytes, layout: bytes, template: LayoutTemplate | None = None, cooldown: int = 0, *, filled: bool = False
    ) -> None:
        size = len(page) + len(layout) + (template.nbytes if template is not None else 0)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        if size > self.max_bytes // 4:
            return
        self._entries[key] = Entry(page, layout, template, cooldown, size, filled)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
