"""HTML rewriting with lol_html, Cloudflare's streaming HTML rewriter.

Why lol_html (through ``python-lolhtml``) rather than a DOM parser such as
selectolax/Lexbor: it rewrites as it tokenizes and copies every byte it does
not touch verbatim, so doctypes, comments, conditional comments, entities,
inline scripts (``</`` inside strings) and even legacy charsets (Latin-1,
Shift_JIS: every byte of markup edge matches on is ASCII) survive exactly, and
it is faster: see ``loadtests/bench_rewrite.py`` for the figures measured on
the demo home page.

What a tier does to a page comes from the route's compiled plan
(:meth:`edge.pipeline.policy.Policy.for_path`): widgets kept, dropped, collapsed to a
"show" link or trimmed to their first N items; images pointed at a smaller
variant, lazy-loaded, stripped of ``srcset``/``sizes`` or dropped over a size;
scripts deferred or dropped; and, with a byte budget, the lowest-priority
widgets (then the largest images) dropped until the page fits.

Text edge inserts (collapse placeholders) is ASCII with character references
unless the page is declared UTF-8: lol_html has no output-encoding setting in
this binding and encodes inserted ``str`` as UTF-8, which would put UTF-8
bytes into a Latin-1 or Shift_JIS page. Untouched bytes are never re-encoded.

    >>> from edge.pipeline.policy import Policy
    >>> policy = Policy.from_toml('[[widgets]]\\nwidget = "ads"\\npriority = 1\\nlite = "drop"')
    >>> rewriter = HtmlRewriter(policy)
    >>> page = b'<body><div data-edge-widget="ads">buy!</div><p>caf\\xe9</p></body>'
    >>> rewriter.rewrite(page, "lite", b"<a>Full page</a>")
    b'<body><p>caf\\xe9</p><a>Full page</a></body>'
    >>> rewriter.rewrite(page, "full", b"<a>Light page</a>")
    b'<body><div data-edge-widget="ads">buy!</div><p>caf\\xe9</p><a>Light page</a></body>'
"""

from __future__ import annotations

import bisect
import codecs
import functools
import html
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from lolhtml import ContentType, HTMLRewriter

from edge.pipeline.policy import PLACEHOLDER_TAGS, ImagePlan, Policy, RoutePlan, ScriptPlan, WidgetPlan, declared_image_bytes
from edge.pipeline.rewrite.cache import RewriteCache
from edge.pipeline.rewrite.errors import RewriteError

__all__ = [
    "HtmlRewriter",
    "RewriteReport",
    "splice_before_body_end",
    "SPLICE_WINDOW",
    "StreamSplicer",
    "switch_link",
    "beacon_script",
    "COLLAPSE_SCRIPT",
]

_BEACON_JS = (Path(__file__).with_name("beacon.js")).read_text().strip()
_HTML = ContentType.HTML


def beacon_script(token: str) -> bytes:
    """The inline beacon (``beacon.js``, under 1 KB, no dependencies) carrying this page's token.

    After ``load`` it posts Navigation and Resource Timing figures (and
    ``navigator.connection`` where present) to ``/__edge/beacon`` with
    ``navigator.sendBeacon``. Tokens are base64url and ``.``, safe in a JS string.

    >>> script = beacon_script("abc.def")
    >>> script.startswith(b"<script>") and b'"abc.def"' in script and len(script) < 1024
    True
    """
    return b"<script>" + _BEACON_JS.replace("__EDGE_TOKEN__", token).encode() + b"</script>"


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
        """The last chunk (possibly empty): the held window and it, with the snippet in place."""
        out = self.feed(chunk)
        held = self.held
        self.held = []
        data = held[0] if len(held) == 1 else b"".join(held)
        k = _last_end_tag(data, 0)
        if k >= 0 and _BODY_END.match(data, k):
            view = memoryview(data)
            return b"".join((out, view[:k], self.snippet, view[k:]))
        return b"".join((out, data, self.snippet))


def switch_link(to_tier: str, next_path: str, text: str) -> bytes:
    """The small link that switches the shopper's tier (sets the preference cookie, then returns).

    >>> switch_link("full", "/search?q=tea", "Full page")
    b'<p class="edge-switch" style="text-align:center;font:14px sans-serif;margin:12px"><a href="/__edge/tier/full?next=/search%3Fq%3Dtea" rel="nofollow">Full page</a></p>'
    """
    href = f"/__edge/tier/{to_tier}?next={quote(next_path, safe='/')}"
    return (
        '<p class="edge-switch" style="text-align:center;font:14px sans-serif;margin:12px">'
        f'<a href="{html.escape(href)}" rel="nofollow">{html.escape(text)}</a></p>'
    ).encode()


#: Inserted once, before the first collapse placeholder whose link is a fragment URL. Without JS
#: the link is a plain link; with JS a tap fetches the fragment and swaps it in (falling back to
#: following the link). ASCII only: it must be valid in any ASCII-compatible page encoding.
COLLAPSE_SCRIPT = (
    "<script>window.__edgeShow||(window.__edgeShow=1,document.addEventListener('click',function(e){"
    "var a=e.target&&e.target.closest&&e.target.closest('a[data-edge-fragment]');"
    "if(!a||!window.fetch)return;e.preventDefault();var box=a.parentNode;"
    "fetch(a.href,{credentials:'same-origin'}).then(function(r){if(!r.ok)throw r;return r.text()})"
    ".then(function(h){box.outerHTML=h}).catch(function(){location.href=a.href})}))</script>"
)

# Scripts with one of these types run as JavaScript; others (JSON, templates, importmaps) are data.
_JS_TYPES = frozenset(
    ("", "text/javascript", "application/javascript", "module", "text/ecmascript", "application/ecmascript",
     "application/x-javascript", "text/x-javascript", "text/jscript", "text/livescript")
)  # fmt: skip
# Character encodings lol_html cannot tokenize byte-wise: not ASCII-compatible, or stateful 7-bit.
_UNSAFE_CHARSETS = ("utf_16", "utf_32", "utf_7", "iso2022", "hz", "cp037", "cp500", "cp1140", "cp273", "cp424", "cp875")


@functools.lru_cache(maxsize=64)
def _charset_mode(charset: str | None) -> str:
    """``"utf8"`` (insert as is), ``"ascii"`` (insert ASCII with character references) or ``"unsafe"``.

    >>> _charset_mode("UTF-8"), _charset_mode("Shift_JIS"), _charset_mode(None), _charset_mode("utf-16le")
    ('utf8', 'ascii', 'ascii', 'unsafe')
    """
    if charset is None:
        return "ascii"
    try:
        name = codecs.lookup(charset.strip().strip("\"'")).name.replace("-", "_")
    except (LookupError, ValueError):
        return "ascii"  # unknown label: browsers fall back to windows-1252, which is ASCII-compatible
    if name == "utf_8" or name == "utf_8_sig":
        return "utf8"
    if name.startswith(_UNSAFE_CHARSETS):
        return "unsafe"
    return "ascii"


def _out(text: str, mode: str) -> str:
    return text if mode == "utf8" or text.isascii() else text.encode("ascii", "xmlcharrefreplace").decode("ascii")


# ---------------------------------------------------------------- reports


@dataclass(slots=True)
class RewriteReport:
    """What a rewrite did to one page: widgets by fate, images, scripts, bytes and the budget.

    Bytes are the HTML served (snippet included) plus every image the page still
    references, by declared size (``data-edge-bytes``, else width × height ×
    ``[sizes] bytes_per_pixel``; a rewritten variant counts ``variant_bytes`` of it).
    """

    tier: str
    route: str
    html_bytes: int = 0
    image_bytes: int = 0
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    collapsed: list[str] = field(default_factory=list)
    trimmed: dict[str, int] = field(default_factory=dict)
    images_kept: int = 0
    images_dropped: list[str] = field(default_factory=list)
    images_rewritten: int = 0
    scripts_deferred: int = 0
    scripts_dropped: int = 0
    budget: int | None = None
    budget_dropped: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return self.html_bytes + self.image_bytes

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total_bytes <= self.budget


# ---------------------------------------------------------------- per-request state and handlers


class _Run:
    """State of one rewrite: route, charset, counters and (when measuring) the marker bookkeeping."""

    __slots__ = ("plan", "path", "mode", "report", "marks", "nonce", "script_done", "img_scale", "widgets", "images")

    def __init__(self, plan: RoutePlan, path: str, mode: str, report: RewriteReport | None, nonce: str | None) -> None:
        self.plan = plan
        self.path = path
        self.mode = mode
        self.report = report
        self.nonce = nonce
        self.script_done = False
        self.img_scale = 1.0
        self.widgets: list[tuple[WidgetPlan, str]] = []  # marker id → (widget, tag)
        self.images: list[tuple[int, str]] = []  # marker id → (bytes, src)

    def full_page_url(self) -> str:
        return f"/__edge/tier/full?next={quote(self.path, safe='/')}"


class _Remove:
    __slots__ = ()

    def element(self, el) -> None:  # noqa: ANN001 - lolhtml.Element
        if not el.removed:
            el.remove()


_REMOVE = _Remove()


class _WidgetHandler:
    """A lol_html element handler for one widget rule during one rewrite.

    An element an earlier rule already removed is left alone; subclasses act in :meth:`handle`.
    """

    __slots__ = ("w", "run")

    def __init__(self, w: WidgetPlan, run: _Run) -> None:
        self.w, self.run = w, run

    def element(self, el) -> None:  # noqa: ANN001 - lolhtml.Element
        if not el.removed:
            self.handle(el)

    def handle(self, el) -> None:  # noqa: ANN001
        raise NotImplementedError


class _DropWidget(_WidgetHandler):
    __slots__ = ()

    def handle(self, el) -> None:  # noqa: ANN001
        el.remove()
        self.run.report.dropped.append(self.w.name)  # type: ignore[union-attr]


class _TrimItems(_WidgetHandler):
    """Registered on ``widget > item:nth-of-type(n+N+1)``: every item past the first N goes."""

    __slots__ = ()

    def handle(self, el) -> None:  # noqa: ANN001
        el.remove()
        report = self.run.report
        if report is not None:
            report.trimmed[self.w.name] = report.trimmed.get(self.w.name, 0) + 1


class _Collapse(_WidgetHandler):
    """Replace the widget by a placeholder holding a plain "show" link (progressively enhanced).

    The placeholder keeps the element's tag (when it can hold a link, else it is a ``div``) and
    its classes, so it keeps the element's place in the page's grid (``col-md-4``…); the
    widget's ``placeholder_tag`` and ``placeholder_class`` override both.
    """

    __slots__ = ()

    def handle(self, el) -> None:  # noqa: ANN001
        run, w = self.run, self.w
        url = _widget_url(w, el, run.path)
        fragment = url is not None
        href = url if fragment else run.full_page_url()
        tag = w.placeholder_tag or (el.tag_name if el.tag_name in PLACEHOLDER_TAGS else "div")
        classes = w.placeholder_class
        if "{class}" in classes:
            classes = classes.replace("{class}", _own_classes(el, run.mode))
        classes = html.escape(" ".join([*classes.split(), "edge-collapsed"]))
        data = ' data-edge-fragment=""' if fragment else ""
        placeholder = (
            f'<{tag} class="{classes}" data-edge-collapsed="{html.escape(w.name)}">'
            f'<a href="{html.escape(href)}"{data} rel="nofollow">{html.escape(w.label)}</a></{tag}>'
        )
        if fragment and not run.script_done:
            run.script_done = True
            placeholder = COLLAPSE_SCRIPT + placeholder
        el.before(_out(placeholder, run.mode), _HTML)
        el.remove()
        if run.report is not None:
            run.report.collapsed.append(w.name)


def _own_classes(el, mode: str) -> str:  # noqa: ANN001
    """The element's class names (lol_html gives attribute values raw: unescaped here).

    lol_html reads the page as UTF-8, so in a page that is not, a non-ASCII class name may not be
    the one the page has: such names are left out (the ASCII ones, ``col-md-4``…, are kept).
    """
    value = el.get_attribute("class")
    if not value:
        return ""
    names = html.unescape(value).split()
    return " ".join(names if mode == "utf8" else [n for n in names if n.isascii()])


def _widget_url(w: WidgetPlan, el, path: str) -> str | None:  # noqa: ANN001
    """The widget's fragment URL: its ``url`` template, else its ``data-edge-src``; None when neither works."""
    if w.url is not None:
        parts = []
        for literal, name in w.url:
            parts.append(literal)
            if name is None:
                continue
            if name == "path":
                parts.append(quote(path, safe="/?&=%:@!$'()*+,;~-._"))
                continue
            value = el.get_attribute(name)
            if value is None or "\ufffd" in value:
                parts = None
                break
            parts.append(quote(html.unescape(value), safe=""))  # lol_html gives attribute values raw
        if parts is not None:
            return "".join(parts)
    src = el.get_attribute("data-edge-src")
    src = html.unescape(src) if src else src
    if src and "\ufffd" not in src and ((src.startswith("/") and not src.startswith("//")) or src.startswith(("https://", "http://"))):
        return src
    return None


class _ImageStart:
    """Runs first for every ``<img>``: resets the per-image variant scale the rules below multiply."""

    __slots__ = ("run",)

    def __init__(self, run: _Run) -> None:
        self.run = run

    def element(self, el) -> None:  # noqa: ANN001
        self.run.img_scale = 1.0


class _ImageRule:
    __slots__ = ("rule", "run")

    def __init__(self, rule: ImagePlan, run: _Run) -> None:
        self.rule, self.run = rule, run

    def element(self, el) -> None:  # noqa: ANN001
        if el.removed or el.tag_name != "img":
            return
        rule, run = self.rule, self.run
        if rule.src is not None:
            src = el.get_attribute("src")
            if src is None or "\ufffd" in src or rule.src.search(src) is None:
                return
            if rule.variant is not None:
                new = rule.src.sub(rule.variant, src, count=1)
                # A non-ASCII URL in a non-UTF-8 page would come out UTF-8 encoded: leave it alone.
                if new != src and (run.mode == "utf8" or new.isascii()):
                    el.set_attribute("src", new)
                    run.img_scale *= rule.variant_bytes
                    if run.report is not None:
                        run.report.images_rewritten += 1
        if rule.max_bytes is not None:
            size = declared_image_bytes(el, run.plan.bytes_per_pixel)
            if size is not None and size * run.img_scale > rule.max_bytes:
                el.remove()
                if run.report is not None:
                    run.report.images_dropped.append(el.get_attribute("src") or "?")
                return
        if rule.lazy:
            if not el.has_attribute("loading"):
                el.set_attribute("loading", "lazy")
            if not el.has_attribute("decoding"):
                el.set_attribute("decoding", "async")
        if rule.drop_srcset:
            if el.has_attribute("srcset"):
                el.remove_attribute("srcset")
            if el.has_attribute("sizes"):
                el.remove_attribute("sizes")


class _ScriptRule:
    __slots__ = ("rule", "action", "run")

    def __init__(self, rule: ScriptPlan, action: str, run: _Run) -> None:
        self.rule, self.action, self.run = rule, action, run

    def element(self, el) -> None:  # noqa: ANN001
        if el.removed or el.tag_name != "script":
            return
        rule = self.rule
        if not rule.all_types and (el.get_attribute("type") or "").strip().lower() not in _JS_TYPES:
            return  # JSON-LD, inline state, templates: data, not code
        src = el.get_attribute("src")
        if rule.src is not None and (src is None or rule.src.search(src) is None):
            return
        report = self.run.report
        if self.action == "drop":
            el.remove()
            if report is not None:
                report.scripts_dropped += 1
        elif src is not None and not el.has_attribute("defer") and not el.has_attribute("async"):
            # defer only means something for external scripts; async ones already don't block.
            el.set_attribute("defer", "")
            if report is not None:
                report.scripts_deferred += 1


class _MarkWidget:
    """Measuring mode: bracket each surviving widget with marker comments (removed again afterwards)."""

    __slots__ = ("w", "run")

    def __init__(self, w: WidgetPlan, run: _Run) -> None:
        self.w, self.run = w, run

    def element(self, el) -> None:  # noqa: ANN001
        if el.removed:
            return
        run = self.run
        i = len(run.widgets)
        run.widgets.append((self.w, el.tag_name))
        el.before(f"<!--{run.nonce}w{i}-->", _HTML)
        el.after(f"<!--{run.nonce}/w{i}-->", _HTML)


class _MarkImage:
    __slots__ = ("run",)

    def __init__(self, run: _Run) -> None:
        self.run = run

    def element(self, el) -> None:  # noqa: ANN001
        if el.removed:
            return
        run = self.run
        size = declared_image_bytes(el, run.plan.bytes_per_pixel)
        i = len(run.images)
        run.images.append((int((size or 0) * run.img_scale), el.get_attribute("src") or "?"))
        el.before(f"<!--{run.nonce}i{i}-->", _HTML)
        el.after(f"<!--{run.nonce}/i{i}-->", _HTML)


# ---------------------------------------------------------------- the rewriter


@dataclass(frozen=True, slots=True)
class _TierPlan:
    """Handler registrations for one (route, tier), built once per policy."""

    route: RoutePlan
    tier: str
    drops: tuple[WidgetPlan, ...]
    collapses: tuple[WidgetPlan, ...]
    trims: tuple[WidgetPlan, ...]
    images: tuple[ImagePlan, ...]
    scripts: tuple[tuple[ScriptPlan, str], ...]
    budget: int | None

    @property
    def empty(self) -> bool:
        return not (self.drops or self.collapses or self.trims or self.images or self.scripts)


class HtmlRewriter:
    """Rewrite HTML pages per tier and route for one compiled :class:`~edge.pipeline.policy.Policy`.

    :meth:`rewrite` raises only :class:`~edge.pipeline.rewrite.errors.RewriteError`.
    """

    def __init__(self, policy: Policy, cache: RewriteCache | None = None) -> None:
        self.policy = policy
        #: Layouts reused for pages that come back byte for byte (None: every page is laid out).
        self.cache = cache
        self._nonce = "edge" + secrets.token_hex(6)
        self._marker = re.compile(rb"<!--" + self._nonce.encode() + rb"(/?)([wi])(\d+)-->")
        self._plans: dict[tuple[int, str], _TierPlan] = {}
        for route in policy.routes:
            for tier in ("full", "lite", "minimal"):
                self._plans[(route.index, tier)] = _TierPlan(
                    route=route,
                    tier=tier,
                    drops=tuple(w for w in route.widgets if w.actions[tier] == "drop"),
                    collapses=tuple(w for w in route.widgets if w.actions[tier] == "collapse"),
                    trims=tuple(w for w in route.widgets if w.actions[tier] == "trim"),
                    images=tuple(r for r in route.images if tier in r.tiers),
                    scripts=tuple((s, s.actions[tier]) for s in route.scripts if s.actions[tier] != "keep"),
                    budget=route.budget.get(tier),
                )

    def rewrite(self, body: bytes, tier: str, link: bytes, *, path: str = "/", charset: str | None = None) -> bytes:
        """Return ``body`` laid out for ``tier`` on the route of ``path``, with ``link`` before ``</body>``.

        ``charset`` is the page's encoding (from ``Content-Type`` or ``<meta charset>``); text
        edge inserts is written so it is valid in it. The full tier, and any tier with nothing
        to do, is a byte splice. Raises :class:`RewriteError` for a charset lol_html cannot
        tokenize (UTF-16, ISO-2022-JP…) or markup it refuses.
        """
        mode = _charset_mode(charset)
        if mode == "unsafe":
            raise RewriteError(f"charset {charset!r} is not ASCII-compatible; pass the page through")
        plan = self._plans.get((self.policy.for_path(path).index, tier))
        if plan is None or tier == "full" or (plan.empty and plan.budget is None):
            return splice_before_body_end(body, link)
        cache = self.cache
        if cache is None:
            return self._run(body, plan, link, path, mode, report=None)[0]
        key = (plan.route.index, tier, path, mode)
        layout = cache.get(key, body)
        if layout is None:
            layout = self._layout(body, plan, path, mode, report=None)[0]
            cache.put(key, body, layout)
        return splice_before_body_end(layout, link)

    def rewrite_with_report(
        self, body: bytes, tier: str, link: bytes = b"", *, path: str = "/", charset: str | None = None
    ) -> tuple[bytes, RewriteReport]:
        """:meth:`rewrite`, measured: the page plus a :class:`RewriteReport` (``edge policy check``, logs).

        Slower (marks every widget and image); the full tier is measured too but left unchanged.
        """
        mode = _charset_mode(charset)
        if mode == "unsafe":
            raise RewriteError(f"charset {charset!r} is not ASCII-compatible; pass the page through")
        route = self.policy.for_path(path)
        plan = self._plans[(route.index, tier if tier in ("lite", "minimal") else "full")]
        report = RewriteReport(tier, route.name)
        return self._run(body, plan, link, path, mode, report=report)

    def _run(
        self, body: bytes, plan: _TierPlan, link: bytes, path: str, mode: str, report: RewriteReport | None
    ) -> tuple[bytes, RewriteReport]:
        layout, report = self._layout(body, plan, path, mode, report)
        final = splice_before_body_end(layout, link)
        if report is not None:
            report.html_bytes = len(final)
        return final, report  # type: ignore[return-value]

    def _layout(
        self, body: bytes, plan: _TierPlan, path: str, mode: str, report: RewriteReport | None
    ) -> tuple[bytes, RewriteReport | None]:
        """The page laid out for the plan, before the switch link and beacon go in."""
        measure = report is not None or plan.budget is not None
        if measure and report is None:
            report = RewriteReport(plan.tier, plan.route.name)
        run = _Run(plan.route, path, mode, report, self._nonce if measure else None)
        out = bytearray()
        rewriter = HTMLRewriter(out.extend)
        on = rewriter.on
        try:
            for w in plan.drops:
                on(w.css, _DropWidget(w, run) if report is not None else _REMOVE)
            for w in plan.collapses:
                on(w.css, _Collapse(w, run))
            for w in plan.trims:
                on(w.trim_css, _TrimItems(w, run))
            if plan.images or measure:
                on("img", _ImageStart(run))
            for rule in plan.images:
                on(rule.css, _ImageRule(rule, run))
            for rule, action in plan.scripts:
                on(rule.css, _ScriptRule(rule, action, run))
            if measure:
                for w in plan.route.widgets:
                    on(w.css, _MarkWidget(w, run))
                on("img", _MarkImage(run))
            rewriter.write(body)
            rewriter.end()
        except Exception as exc:  # lol_html raises RuntimeError (e.g. a parsing ambiguity in strict mode)
            raise RewriteError(f"lol_html could not rewrite the page: {exc}") from exc
        if not measure:
            return bytes(out), report
        assert report is not None
        return self._settle(bytes(out), run, report, plan.budget), report

    def _settle(self, out: bytes, run: _Run, report: RewriteReport, budget: int | None) -> bytes:  # noqa: C901 (issue 15: split into marker parsing, one budget cut, stripping)
        """Read the markers back: who survived, their bytes; drop for the budget; strip the markers."""
        markers: list[tuple[int, int]] = []
        opens: dict[tuple[bytes, int], int] = {}
        spans: dict[tuple[bytes, int], tuple[int, int]] = {}
        inside: dict[int, list[int]] = {}  # image id → ids of the widgets around it
        stack: list[tuple[bytes, int]] = []
        for m in self._marker.finditer(out):
            markers.append((m.start(), m.end()))
            key = (m.group(2), int(m.group(3)))
            if not m.group(1):
                opens[key] = m.start()
                if key[0] == b"i":
                    inside[key[1]] = [k[1] for k in stack if k[0] == b"w"]
                else:
                    stack.append(key)
            elif key[0] == b"i":
                if key in opens:
                    spans[key] = (opens[key], m.end())
            elif key in stack:
                # Widgets opened inside this one but not closed before it ended cross it: never cut them.
                while stack[-1] != key:
                    stack.pop()
                stack.pop()
                if _ends_with_end_tag(out, m.start(), run.widgets[key[1]][1]):
                    spans[key] = (opens[key], m.end())
        starts = [s for s, _ in markers]
        cumulative = [0]
        for s, e in markers:
            cumulative.append(cumulative[-1] + e - s)

        def content(s: int, e: int) -> int:
            return (e - s) - (cumulative[bisect.bisect_left(starts, e)] - cumulative[bisect.bisect_left(starts, s)])

        marker_bytes = cumulative[-1]
        widgets_seen = sorted({k[1] for k in opens if k[0] == b"w"})
        images_seen = sorted({k[1] for k in opens if k[0] == b"i"})
        html_bytes = len(out) - marker_bytes
        image_bytes = sum(run.images[i][0] for i in images_seen)
        total = html_bytes + image_bytes
        report.budget = budget
        dropped: list[tuple[int, int]] = []

        def covered(s: int, e: int) -> bool:
            return any(ds <= s and e <= de for ds, de in dropped)

        def drop(s: int, e: int) -> int:
            """Cut [s, e); return the bytes (HTML and images) that leaves the page."""
            inner = [(ds, de) for ds, de in dropped if s <= ds and de <= e]
            removed = content(s, e) - sum(content(ds, de) for ds, de in inner)
            for i in images_seen:
                span = spans.get((b"i", i))
                position = span[0] if span else opens[(b"i", i)]
                if s <= position < e and not any(ds <= position < de for ds, de in inner):
                    removed += run.images[i][0]
            for d in inner:
                dropped.remove(d)
            dropped.append((s, e))
            return removed

        if budget is not None and total > budget:
            protect = run.plan.protect
            candidates = [i for i in widgets_seen if (b"w", i) in spans and run.widgets[i][0].priority < protect]
            candidates.sort(key=lambda i: (run.widgets[i][0].priority, -i))
            for i in candidates:
                if total <= budget:
                    break
                s, e = spans[(b"w", i)]
                if covered(s, e):
                    continue
                total -= drop(s, e)
                report.budget_dropped.append(run.widgets[i][0].name)
            if total > budget:
                protected = {i for i in widgets_seen if run.widgets[i][0].priority >= protect}
                images = [i for i in images_seen if (b"i", i) in spans and not protected.intersection(inside.get(i, ()))]
                images.sort(key=lambda i: -run.images[i][0])
                for i in images:
                    if total <= budget:
                        break
                    s, e = spans[(b"i", i)]
                    if covered(s, e):
                        continue
                    total -= drop(s, e)
                    report.budget_dropped.append("img " + run.images[i][1])
        # Who survived, by the markers left outside the cut spans.
        for i in widgets_seen:
            if not covered(opens[(b"w", i)], opens[(b"w", i)] + 1):
                report.kept.append(run.widgets[i][0].name)
        report.images_kept = 0
        report.image_bytes = 0
        for i in images_seen:
            if not covered(opens[(b"i", i)], opens[(b"i", i)] + 1):
                report.images_kept += 1
                report.image_bytes += run.images[i][0]
        pieces = []
        last = 0
        for s, e in sorted(dropped):
            pieces.append(out[last:s])
            last = e
        pieces.append(out[last:])
        return self._marker.sub(b"", b"".join(pieces))


def _ends_with_end_tag(out: bytes, at: int, tag: str) -> bool:
    """Whether ``out[:at]`` ends with ``</tag>``: lol_html closes a widget there and nowhere odd."""
    window = out[max(0, at - len(tag) - 40) : at]
    return re.search(rb"</" + re.escape(tag.encode()) + rb"\s*>\Z", window, re.IGNORECASE) is not None
