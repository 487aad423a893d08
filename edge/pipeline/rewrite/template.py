"""Layout templates: one lol_html pass serves every later page that differs from it only in inert holes.

Storefront pages change on every request in small places (a CSRF token, a script nonce, a cart
count, a timestamp) and nowhere else. When a page differs from the last one on its route only in
*holes* (maximal runs of :data:`HOLE_CHARS`, in the same places, the rest byte for byte the same),
:func:`learn` puts a unique sentinel in each hole, lays that *template page* out once with the
tier's handlers, and keeps the layout split at the sentinels. A later page that matches the
template (:meth:`LayoutTemplate.match`: the same static bytes, non-empty runs of hole characters
between them) is laid out by filling the holes' values into the split layout: no parse.

Why the filled layout is the layout lol_html would give (the property tests check it on random
edits): a hole is kept only where lol_html's own tokenizer, on the template page, saw its sentinel
exactly once, in the text of the document outside ``script``/``style``/RCDATA/raw-text elements, or
in the value of an attribute no selector and no handler of the route's policy reads
(:func:`relevant_attributes`). There, runs of hole characters (no ``<``, ``>``, quotes, ``&``,
spaces) change no tokenizer state, and a non-empty run cannot turn an unquoted attribute value into
the next attribute; a hole right after ``<`` or ``<!`` (where the tokenizer looks ahead) is refused.
So every selector matches the same elements and every handler reads the same values whatever the
holes hold; lol_html copies the holes' bytes through untouched (or inside a start tag it
re-serializes, where hole characters need no escaping), or drops them with their element. Anything
else (a tag added, a hole in a class, a ``src``, a tag name, a comment, a script) and the page is
laid out in full. Byte budgets (which count bytes) never use templates.

    >>> find_holes(b'<p>Cart (2)</p><i a="xy">', b'<p>Cart (13)</p><i a="q-z">')
    [(9, 11), (22, 25)]
    >>> find_holes(b"<p>a b</p>", b"<p>a</p>") is None  # not the same runs: no template
    True
    >>> t = LayoutTemplate((b"<p>", b"</p>"), (b"<b>", b"</b>"), (0,))
    >>> t.match(b"<p>xyz</p>"), t.match(b"<p>x y</p>"), t.match(b"<p></p>")
    ([b'xyz'], None, None)
    >>> t.fill([b"xyz"])
    b'<b>xyz</b>'
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lolhtml import HTMLRewriter

__all__ = ["HOLE_CHARS", "LayoutTemplate", "Watch", "find_holes", "learn", "relevant_attributes"]

#: What a hole's value is made of: letters, digits and ``_.:/+=?%-`` (tokens, numbers, times, URL paths).
HOLE_CHARS = rb"A-Za-z0-9_.:/+=?%\-"
_HOLE_BYTES = b"".join(re.findall(rb"[" + HOLE_CHARS + rb"]", bytes(range(128))))  # the same, as bytes.translate wants
_SPLIT = re.compile(rb"([" + HOLE_CHARS + rb"]+)")
#: More holes than this and the page is not treated as a template (a page rewritten throughout).
MAX_HOLES = 512
#: Elements whose text is not markup (lol_html's raw-text, RCDATA and script data): no holes in them.
RAW_TEXT = "script, style, textarea, title, xmp, iframe, noembed, noframes, noscript, plaintext"
#: Attributes handlers read or that change how lol_html tokenizes, whatever the policy says.
_ALWAYS_RELEVANT = frozenset(
    ("src", "type", "class", "id", "data-edge-src", "width", "height", "data-edge-bytes", "srcset", "sizes",
     "loading", "decoding", "defer", "async", "charset", "http-equiv", "content", "encoding")
)  # fmt: skip
_SELECTOR_ATTR = re.compile(r"\[\s*([^\s~|^$*=\]]+)")


def relevant_attributes(selectors: Iterable[str], extra: Iterable[str] = ()) -> frozenset[str]:
    """Attribute names no hole may sit in: those the selectors match on, ``extra`` and :data:`_ALWAYS_RELEVANT`.

    >>> sorted(relevant_attributes(['[data-edge-widget="ads"]', "main img"]) - _ALWAYS_RELEVANT)
    ['data-edge-widget']
    """
    names = {m.group(1).lower() for css in selectors for m in _SELECTOR_ATTR.finditer(css)}
    return frozenset(names | {e.lower() for e in extra}) | _ALWAYS_RELEVANT


def find_holes(old: bytes, new: bytes) -> list[tuple[int, int]] | None:
    """Where ``new`` differs from ``old`` if only in runs of hole characters: (start, end) in ``new``.

    None when the pages differ in any other way (a tag, a space, a quote more or less) or in
    more than :data:`MAX_HOLES` runs. The runs are maximal: the bytes either side of a hole are
    not hole characters.
    """
    a, b = old.split(b"<"), new.split(b"<")
    if len(a) != len(b):
        return None
    spans: list[tuple[int, int]] = []
    pos = 0
    for x, y in zip(a, b, strict=True):
        if x != y:
            xs, ys = _SPLIT.split(x), _SPLIT.split(y)
            if len(xs) != len(ys) or xs[0::2] != ys[0::2]:
                return None
            p = pos
            for i, (u, v) in enumerate(zip(xs, ys, strict=True)):
                if i % 2 and u != v:
                    spans.append((p, p + len(v)))
                p += len(v)
            if len(spans) > MAX_HOLES:
                return None
        pos += len(y) + 1
    return spans


@dataclass(frozen=True, slots=True)
class LayoutTemplate:
    """A page's static bytes around its holes, and its layout split where the holes' values go.

    ``statics`` has one more item than there are holes; ``parts`` one more than ``order``, which
    gives the hole whose value follows each part (a hole inside a removed element is in no part).
    """

    statics: tuple[bytes, ...]
    parts: tuple[bytes, ...]
    order: tuple[int, ...]
    #: Per hole: the static after it and its first byte (b"" for an empty last static), for :meth:`match`.
    _after: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)
    #: What the template holds, in bytes (the rewrite cache counts it against its bound on every page it fills).
    nbytes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_after", tuple((static, static[:1]) for static in self.statics[1:]))
        size = sum(map(len, self.statics)) + sum(map(len, self.parts)) + 8 * (len(self.statics) + len(self.parts))
        object.__setattr__(self, "nbytes", size)

    def match(self, page: bytes) -> list[bytes] | None:
        """The holes' values in ``page`` (non-empty runs of hole characters), or None when it does not fit."""
        first = self.statics[0]
        if not page.startswith(first):
            return None
        pos = len(first)
        find, startswith, size = page.find, page.startswith, len(page)
        values: list[bytes] = []
        append = values.append
        # A hole ends where the next static part's first byte (never a hole character) first occurs:
        # if another byte that is no hole character comes before it, the values' check below fails.
        for static, head in self._after:
            end = find(head, pos) if head else size
            if end <= pos or not startswith(static, end):
                return None
            append(page[pos:end])
            pos = end + len(static)
        if pos != size or b"".join(values).translate(None, _HOLE_BYTES):
            return None
        return values

    def fill(self, values: list[bytes]) -> bytes:
        """The layout of the page whose holes hold ``values``."""
        parts = self.parts
        out: list[bytes] = [b""] * (2 * len(parts) - 1)
        out[0::2] = parts
        out[1::2] = [values[i] for i in self.order]
        return b"".join(out)


class Watch:
    """lol_html handlers that see where the template page's sentinels fall (:func:`watch`).

    ``text``/``comments`` go on the document, :attr:`tags` on ``*`` and :attr:`raw` on
    :data:`RAW_TEXT` (separate objects: lol_html would also give an element handler with a
    ``text`` method the text inside the element). A hole is accepted when its sentinel was seen exactly once, in document
    text or an irrelevant attribute's value, and never in a tag or attribute name, a relevant
    attribute, raw text or a comment.
    """

    __slots__ = ("find", "relevant", "ok", "bad", "text_parts", "tags", "raw")

    def __init__(self, sentinel: re.Pattern[str], relevant: frozenset[str]) -> None:
        self.find = sentinel.findall
        self.relevant = relevant
        self.ok: list[str] = []
        self.bad: set[str] = set()
        self.text_parts: list[str] = []
        self.tags = _Tags(self)
        self.raw = _RawText(self)

    def text(self, chunk: object) -> None:
        self.text_parts.append(chunk.text)  # type: ignore[attr-defined]
        if chunk.last_in_text_node:  # type: ignore[attr-defined]
            self.ok.extend(self.find("".join(self.text_parts)))
            self.text_parts.clear()

    def comments(self, comment: object) -> None:
        self.bad.update(self.find(comment.text))  # type: ignore[attr-defined]

    def accepted(self, holes: int) -> bool:
        ids = [int(i) for i in self.ok]
        return not self.bad and len(ids) == holes and sorted(ids) == list(range(holes))


class _Tags:
    __slots__ = ("watch",)

    def __init__(self, watch: Watch) -> None:
        self.watch = watch

    def element(self, el: object) -> None:
        watch = self.watch
        watch.bad.update(watch.find(el.tag_name))  # type: ignore[attr-defined]
        for name, value in el.attributes:  # type: ignore[attr-defined]
            watch.bad.update(watch.find(name))
            (watch.bad.update if name.lower() in watch.relevant else watch.ok.extend)(watch.find(value))


class _RawText:
    __slots__ = ("watch", "parts")

    def __init__(self, watch: Watch) -> None:
        self.watch, self.parts = watch, list[str]()

    def text(self, chunk: object) -> None:
        self.parts.append(chunk.text)  # type: ignore[attr-defined]
        if chunk.last_in_text_node:  # type: ignore[attr-defined]
            self.watch.bad.update(self.watch.find("".join(self.parts)))
            self.parts.clear()


def _discard(chunk: object) -> None:
    return None


def watch(page: bytes, sentinel: re.Pattern[str], relevant: frozenset[str], holes: int) -> bool:
    """Whether each of ``holes`` sentinels in ``page`` sits where a value cannot change the layout.

    A pass of its own, its output discarded: lol_html re-encodes the text it hands a text handler
    (invalid UTF-8, and any non-UTF-8 page's non-ASCII text, would come out as U+FFFD), so a
    watched pass's output is not the page's layout.
    """
    w = Watch(sentinel, relevant)
    rewriter = HTMLRewriter(_discard)
    try:
        rewriter.on("*", w.tags)
        rewriter.on(RAW_TEXT, w.raw)
        rewriter.on_document(w)
        rewriter.write(page)
        rewriter.end()
    except Exception:  # lol_html refuses the page: the layout pass will say so
        return False
    return w.accepted(holes)


def learn(old: bytes, new: bytes, lay_out: Callable[[bytes], bytes], relevant: frozenset[str]) -> tuple[LayoutTemplate, bytes] | None:
    """A template from ``new`` whose holes are where it differs from ``old``, and ``new``'s layout; or None.

    ``lay_out(page)`` is the tier's layout. None when the pages differ otherwise than in holes, a
    hole is not inert (see the module's docstring), or there is nothing to gain (no holes). Raises
    what ``lay_out`` raises.
    """
    spans = find_holes(old, new)
    if not spans:
        return None
    for start, _ in spans:
        if new[start - 1 : start] == b"<" or new[max(0, start - 2) : start] == b"<!":
            return None  # the tokenizer looks ahead here: a value could open a tag or a comment
    nonce = "edgeh" + secrets.token_hex(6)
    if nonce.encode() in new:
        return None
    statics, values, pos = [], [], 0
    for start, end in spans:
        statics.append(new[pos:start])
        values.append(new[start:end])
        pos = end
    statics.append(new[pos:])
    page = b"".join(s + f"{nonce}x{i}".encode() for i, s in enumerate(statics[:-1])) + statics[-1]
    if not watch(page, re.compile(nonce + r"x(\d+)"), relevant, len(spans)):
        return None
    layout = lay_out(page)
    pieces = re.split(nonce.encode() + rb"x(\d+)", layout)
    order = tuple(int(i) for i in pieces[1::2])
    if len(set(order)) != len(order):
        return None  # a value copied twice (it cannot happen with inert holes; never assume it)
    template = LayoutTemplate(tuple(statics), tuple(pieces[0::2]), order)
    return template, template.fill(values)
