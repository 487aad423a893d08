"""The lol_html element handlers of one rewrite, the state they share, and what they report.

:class:`HtmlRewriter <edge.pipeline.rewrite.html.HtmlRewriter>` registers one handler per rule
of the tier's plan: widgets dropped, collapsed to a "show" link or trimmed; images pointed at a
variant, lazy-loaded or dropped over a size; scripts deferred or dropped; and, when measuring,
marker comments around every surviving widget and image (read back by
:mod:`edge.pipeline.rewrite.budget`). They share one :class:`Run`; what they did goes into its
:class:`RewriteReport`.
"""

from __future__ import annotations

import codecs
import functools
import html
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import quote

from lolhtml import ContentType

from edge.pipeline.policy import PLACEHOLDER_TAGS, ImagePlan, RoutePlan, ScriptPlan, WidgetPlan
from edge.pipeline.rewrite.images import declared_image_bytes

__all__ = [
    "COLLAPSE_SCRIPT",
    "REMOVE",
    "CharsetMode",
    "Collapse",
    "DropWidget",
    "Element",
    "ImageRule",
    "ImageStart",
    "MarkImage",
    "MarkWidget",
    "RewriteReport",
    "Run",
    "ScriptRule",
    "TrimItems",
    "charset_mode",
]

_HTML = ContentType.HTML

#: How inserted text is written: as is (a UTF-8 page), ASCII with character references, or not at all.
CharsetMode = Literal["utf8", "ascii", "unsafe"]


class Element(Protocol):
    """What the handlers use of a lol_html element (the binding ships no types)."""

    @property
    def removed(self) -> bool: ...
    @property
    def tag_name(self) -> str: ...
    def remove(self) -> None: ...
    def get_attribute(self, name: str) -> str | None: ...
    def set_attribute(self, name: str, value: str) -> None: ...
    def has_attribute(self, name: str) -> bool: ...
    def remove_attribute(self, name: str) -> None: ...
    def before(self, content: str, content_type: ContentType) -> None: ...
    def after(self, content: str, content_type: ContentType) -> None: ...



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
def charset_mode(charset: str | None) -> CharsetMode:
    """``"utf8"`` (insert as is), ``"ascii"`` (insert ASCII with character references) or ``"unsafe"``.

    >>> charset_mode("UTF-8"), charset_mode("Shift_JIS"), charset_mode(None), charset_mode("utf-16le")
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


def _out(text: str, mode: CharsetMode) -> str:
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


class Run:
    """State of one rewrite: route, charset, counters and (when measuring) the marker bookkeeping."""

    __slots__ = ("plan", "path", "mode", "report", "marks", "nonce", "script_done", "img_scale", "widgets", "images")

    def __init__(self, plan: RoutePlan, path: str, mode: CharsetMode, report: RewriteReport | None, nonce: str | None) -> None:
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

    def element(self, el: Element) -> None:
        if not el.removed:
            el.remove()


REMOVE = _Remove()


class _WidgetHandler:
    """A lol_html element handler for one widget rule during one rewrite.

    An element an earlier rule already removed is left alone; subclasses act in :meth:`handle`.
    """

    __slots__ = ("w", "run")

    def __init__(self, w: WidgetPlan, run: Run) -> None:
        self.w, self.run = w, run

    def element(self, el: Element) -> None:
        if not el.removed:
            self.handle(el)

    def handle(self, el: Element) -> None:
        raise NotImplementedError


class DropWidget(_WidgetHandler):
    __slots__ = ()

    def handle(self, el: Element) -> None:
        el.remove()
        report = self.run.report
        if report is not None:  # (registered only when measuring: the plain drop is REMOVE)
            report.dropped.append(self.w.name)


class TrimItems(_WidgetHandler):
    """Registered on ``widget > item:nth-of-type(n+N+1)``: every item past the first N goes."""

    __slots__ = ()

    def handle(self, el: Element) -> None:
        el.remove()
        report = self.run.report
        if report is not None:
            report.trimmed[self.w.name] = report.trimmed.get(self.w.name, 0) + 1


class Collapse(_WidgetHandler):
    """Replace the widget by a placeholder holding a plain "show" link (progressively enhanced).

    The placeholder keeps the element's tag (when it can hold a link, else it is a ``div``) and
    its classes, so it keeps the element's place in the page's grid (``col-md-4``…); the
    widget's ``placeholder_tag`` and ``placeholder_class`` override both.
    """

    __slots__ = ()

    def handle(self, el: Element) -> None:
        run, w = self.run, self.w
        url = _widget_url(w, el, run.path)
        fragment = url is not None
        href = url if url is not None else run.full_page_url()
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


def _own_classes(el: Element, mode: CharsetMode) -> str:
    """The element's class names (lol_html gives attribute values raw: unescaped here).

    lol_html reads the page as UTF-8, so in a page that is not, a non-ASCII class name may not be
    the one the page has: such names are left out (the ASCII ones, ``col-md-4``…, are kept).
    """
    value = el.get_attribute("class")
    if not value:
        return ""
    names = html.unescape(value).split()
    return " ".join(names if mode == "utf8" else [n for n in names if n.isascii()])


def _widget_url(w: WidgetPlan, el: Element, path: str) -> str | None:
    """The widget's fragment URL: its ``url`` template, else its ``data-edge-src``; None when neither works."""
    if w.url is not None:
        url = _template_url(w.url, el, path)
        if url is not None:
            return url
    src = el.get_attribute("data-edge-src")
    src = html.unescape(src) if src else src
    if src and "\ufffd" not in src and ((src.startswith("/") and not src.startswith("//")) or src.startswith(("https://", "http://"))):
        return src
    return None


def _template_url(template: tuple[tuple[str, str | None], ...], el: Element, path: str) -> str | None:
    """A ``url`` template filled from the element's attributes (and the page's path); None when one is missing."""
    parts = []
    for literal, name in template:
        parts.append(literal)
        if name is None:
            continue
        if name == "path":
            parts.append(quote(path, safe="/?&=%:@!$'()*+,;~-._"))
            continue
        value = el.get_attribute(name)
        if value is None or "\ufffd" in value:
            return None
        parts.append(quote(html.unescape(value), safe=""))  # lol_html gives attribute values raw
    return "".join(parts)


class ImageStart:
    """Runs first for every ``<img>``: resets the per-image variant scale the rules below multiply."""

    __slots__ = ("run",)

    def __init__(self, run: Run) -> None:
        self.run = run

    def element(self, el: Element) -> None:
        self.run.img_scale = 1.0


class ImageRule:
    __slots__ = ("rule", "run")

    def __init__(self, rule: ImagePlan, run: Run) -> None:
        self.rule, self.run = rule, run

    def element(self, el: Element) -> None:
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


class ScriptRule:
    __slots__ = ("rule", "action", "run")

    def __init__(self, rule: ScriptPlan, action: str, run: Run) -> None:
        self.rule, self.action, self.run = rule, action, run

    def element(self, el: Element) -> None:
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


class MarkWidget:
    """Measuring mode: bracket each surviving widget with marker comments (removed again afterwards)."""

    __slots__ = ("w", "run")

    def __init__(self, w: WidgetPlan, run: Run) -> None:
        self.w, self.run = w, run

    def element(self, el: Element) -> None:
        if el.removed:
            return
        run = self.run
        i = len(run.widgets)
        run.widgets.append((self.w, el.tag_name))
        el.before(f"<!--{run.nonce}w{i}-->", _HTML)
        el.after(f"<!--{run.nonce}/w{i}-->", _HTML)


class MarkImage:
    __slots__ = ("run",)

    def __init__(self, run: Run) -> None:
        self.run = run

    def element(self, el: Element) -> None:
        if el.removed:
            return
        run = self.run
        size = declared_image_bytes(el, run.plan.bytes_per_pixel)
        i = len(run.images)
        run.images.append((int((size or 0) * run.img_scale), el.get_attribute("src") or "?"))
        el.before(f"<!--{run.nonce}i{i}-->", _HTML)
        el.after(f"<!--{run.nonce}/i{i}-->", _HTML)

