"""RewriteCache: a page's last layout per tier, reused while the storefront serves that page byte for byte.

A lite or minimal layout costs a full lol_html pass (~0.7 ms for the demo's
135 KB home page, most of a lite request's CPU), and many storefront pages
(categories, products for anonymous shoppers) come back identical request
after request. The cache keeps, per route, tier and path, the last page seen
and its layout (before the per-request switch link and beacon are spliced
in); a page equal to the stored one byte for byte reuses the layout. Any
difference (a CSRF token, a cart count) is a miss that costs one comparison
(bytes equality: a length check, then memcmp) and replaces the entry.

Bounded by bytes (pages plus layouts, ``EDGE_REWRITE_CACHE_BYTES``), least
recently used out first; a page over a quarter of the bound is not kept. A
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

__all__ = ["RewriteCache"]


def _nothing() -> None:
    return None


class RewriteCache:
    """Layouts by key, valid only for the exact page they were made from."""

    def __init__(self, max_bytes: int, on_hit: Callable[[], None] = _nothing, on_miss: Callable[[], None] = _nothing) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[bytes, bytes]] = OrderedDict()
        self._on_hit = on_hit
        self._on_miss = on_miss

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, page: bytes) -> bytes | None:
        """The layout made from exactly ``page`` under ``key``, or None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != page:
            self._on_miss()
            return None
        self._entries.move_to_end(key)
        self._on_hit()
        return entry[1]

    def put(self, key: Hashable, page: bytes, layout: bytes) -> None:
        size = len(page) + len(layout)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old[0]) + len(old[1])
        if size > self.max_bytes // 4:
            return
        self._entries[key] = (page, layout)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (old_page, old_layout) = self._entries.popitem(last=False)
            self.bytes -= len(old_page) + len(old_layout)
