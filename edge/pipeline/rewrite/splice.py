"""The snippet every page gets (switch link and beacon) and where it goes: before ``</body>``.

The full tier is a byte splice, never a parse: :func:`splice_before_body_end` for a body held
whole, :class:`StreamSplicer` for one streaming through (the proxy's hot path).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

__all__ = ["SPLICE_WINDOW", "StreamSplicer", "beacon_script", "splice_before_body_end", "switch_link"]

_BEACON_JS = (Path(__file__).with_name("beacon.js")).read_text().strip()


def beacon_script(token: str) -> bytes:
    """The inline beacon (``beacon.js``, under 1 KB, no dependencies) carrying this page's token.

    After ``load`` it posts Navigation and Resource Timing figures (and
    ``navigator.connection`` where present) to ``/__edge/beacon`` with
    ``navigator.sendBeacon``. Tokens are base64url and ``.``, safe in a JS string.

    >>> script = beacon_script("abc.def")
    >>> script.startswith(b"<script>") and b'"abc.def"' in script and len(script) < 1024
    True
    """
    return b"".join((_BEACON_HEAD, token.encode(), _BEACON_TAIL))


# The script around the token's one place, encoded once (a page's token is its only part that changes).
_head_js, _tail_js = _BEACON_JS.split("__EDGE_TOKEN__")
_BEACON_HEAD, _BEACON_TAIL = b"<script>" + _head_js.encode(), _tail_js.encode() + b"</script>"


_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)

#: Where the snippet may go: the last "</body" (any case) starting in the page's last 64 KB. Past
#: that the page is not bounded by what streams through: a page whose end tag is further from its
#: end (a huge trailing script, or no end tag at all) gets the snippet appended, which browsers run
#: all the same.
SPLICE_WINDOW = 64 * 1024


def _last_end_tag(data: bytes, lo: int) -> int:
    """Where the last ``</body`` (any case) at or after ``lo`` starts, or -1.

    >>> _last_end_tag(b"</body></Body>x</BODY", 0), _last_end_tag(b"</body>x", 1)
    (15, -1)
    """
    # Lower or upper case first (C-speed scans from the end); only the bytes after a hit, or the
    # window when neither case is there, are lower-cased to catch a mixed-case one.
    k = data.rfind(b"</body", lo)
    k = max(k, data.rfind(b"</BODY", max(lo, k + 1)))
    if k >= 0:
        later = data[k + 1 :].lower().rfind(b"</body")
        return k + 1 + later if later >= 0 else k
    k = data[lo:].lower().rfind(b"</body")
    return lo + k if k >= 0 else -1


def splice_before_body_end(body: bytes, snippet: bytes) -> bytes:
    """Insert ``snippet`` before the page's end tag (or at the end when there is none).

    The end tag is the last ``</body`` in any case (an inline script may hold the string
    ``"</body>"`` earlier), starting within the last :data:`SPLICE_WINDOW` bytes, and
    followed by optional spaces and ``>``.

    >>> splice_before_body_end(b"<body>x</BODY >", b"<i>")
    b'<body>x<i></BODY >'
    >>> splice_before_body_end(b"<p>fragment", b"<i>")
    b'<p>fragment<i>'
    >>> splice_before_body_end(b"<body></body><script>'</Body>'</script></Body>", b"<i>")
    b"<body></body><script>'</Body>'</script><i></Body>"
    """
    k = _last_end_tag(body, max(0, len(body) - SPLICE_WINDOW))
    if k >= 0 and _BODY_END.match(body, k):
        view = memoryview(body)  # one copy of the page, not three
        return b"".join((view[:k], snippet, view[k:]))
    return body + snippet


class StreamSplicer:
    """:func:`splice_before_body_end` for a body of known ``length`` that streams through in chunks.

    The full tier's hot path. Chunks before the splice window (the page's last
    :data:`SPLICE_WINDOW` bytes) go out as they come, untouched and unscanned; the
    window's bytes are held until the last chunk, when one search from the end finds
    the end tag (nearly always within the last few bytes) and the snippet goes in. The
    output is always the input plus the snippet, so ``Content-Length`` is known before
    the first byte, and at most the window is held.

    >>> splicer = StreamSplicer(b"<i>", length=24)
    >>> out = [splicer.feed(b"<body>hello</bo"), splicer.feed(b"dy></ht"), splicer.finish(b"ml>")]
    >>> out, b"".join(out)
    ([b'', b'', b'<body>hello<i></body></html>'], b'<body>hello<i></body></html>')
    """

    __slots__ = ("snippet", "held", "seen", "window_start")

    def __init__(self, snippet: bytes, length: int) -> None:
        self.snippet = snippet
        self.held: list[bytes] = []
        self.seen = 0
        self.window_start = max(0, length - SPLICE_WINDOW)

    def feed(self, chunk: bytes) -> bytes:
        """What can go out now: the part of ``chunk`` before the window."""
        start = self.seen
        self.seen += len(chunk)
        if self.seen <= self.window_start:
            return chunk
        cut = max(0, self.window_start - start)
        self.held.append(chunk[cut:] if cut else chunk)
        return chunk[:cut]

    def finish(self, chunk: bytes) -> bytes:
        """The last chunk (possibly empty): the held window and it, with the snippet in place.

        A body whose window comes in this one chunk (the proxy's usual case: the page arrives whole) is
        searched in place and copied once, not cut into pieces first.
        """
        return b"".join(self.finish_pieces(chunk))

    def finish_pieces(self, chunk: bytes) -> list[bytes | memoryview]:
        """:meth:`finish` as the pieces it joins, for a write that takes them as they are (no copy).

        >>> [bytes(piece) for piece in StreamSplicer(b"<i>", length=14).finish_pieces(b"<b>x</body>")]
        [b'<b>x', b'<i>', b'</body>']
        """
        if not self.held:
            cut = max(0, self.window_start - self.seen)
            self.seen += len(chunk)
            k = _last_end_tag(chunk, cut)
            if k >= 0 and _BODY_END.match(chunk, k):
                view = memoryview(chunk)
                return [view[:k], self.snippet, view[k:]]
            return [chunk, self.snippet]
        out = self.feed(chunk)
        held = self.held
        self.held = []
        data = held[0] if len(held) == 1 else b"".join(held)
        k = _last_end_tag(data, 0)
        if k >= 0 and _BODY_END.match(data, k):
            view = memoryview(data)
            return [out, view[:k], self.snippet, view[k:]]
        return [out, data, self.snippet]


def switch_link(to_tier: str, next_path: str, text: str, from_tier: str | None = None) -> bytes:
    """The small link that switches the shopper's tier (sets the preference cookie, then returns).

    ``from_tier`` names the tier the shopper leaves when the target does not imply it (a minimal
    page's "Full page": a lite page's is implied), so the refusal is counted against the right tier.

    >>> switch_link("full", "/search?q=tea", "Full page")
    b'<p class="edge-switch" style="text-align:center;font:14px sans-serif;margin:12px"><a href="/__edge/tier/full?next=/search%3Fq%3Dtea" rel="nofollow">Full page</a></p>'
    >>> b"/__edge/tier/full?next=/&amp;from=minimal" in switch_link("full", "/", "Full page", "minimal")
    True
    """
    href = f"/__edge/tier/{to_tier}?next={quote(next_path, safe='/')}"
    if from_tier is not None:
        href += f"&from={quote(from_tier)}"
    return (
        '<p class="edge-switch" style="text-align:center;font:14px sans-serif;margin:12px">'
        f'<a href="{html.escape(href)}" rel="nofollow">{html.escape(text)}</a></p>'
    ).encode()
