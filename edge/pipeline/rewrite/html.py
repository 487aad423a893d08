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

import re
import secrets
from dataclasses import dataclass

from lolhtml import HTMLRewriter

from edge.pipeline.policy import ImagePlan, Policy, RoutePlan, ScriptPlan, WidgetPlan
from edge.pipeline.rewrite.budget import settle
from edge.pipeline.rewrite.cache import RewriteCache
from edge.pipeline.rewrite.errors import RewriteError
from edge.pipeline.rewrite.handlers import (
    COLLAPSE_SCRIPT,
    REMOVE,
    CharsetMode,
    Collapse,
    DropWidget,
    ImageRule,
    ImageStart,
    MarkImage,
    MarkWidget,
    RewriteReport,
    Run,
    ScriptRule,
    TrimItems,
    charset_mode,
)
from edge.pipeline.rewrite.splice import SPLICE_WINDOW, StreamSplicer, beacon_script, splice_before_body_end, switch_link
from edge.pipeline.rewrite.template import learn, relevant_attributes

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

#: Misses to wait, after a page that could not be made a template (or whose template served no
#: page), before trying again.
LEARN_COOLDOWN = 8


@dataclass(frozen=True, slots=True)
class _TierPlan:
    """Handler registrations for one (route, tier), built once per policy."""

    route: RoutePlan
    tier: str
    drops: tuple[WidgetPlan, ...]
    collapses: tuple[WidgetPlan, ...]
    trims: tuple[tuple[str, WidgetPlan], ...]  # (the trim selector, the widget)
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
        #: Per route: attributes no template hole may sit in (what its selectors and handlers read).
        self._relevant = {
            route.index: relevant_attributes(
                [*(w.css for w in route.widgets), *(w.trim_css for w in route.widgets if w.trim_css),
                 *(r.css for r in route.images), *(s.css for s in route.scripts)],
                [name for w in route.widgets for _, name in (w.url or ()) if name is not None],
            )
            for route in policy.routes
        }  # fmt: skip
        for route in policy.routes:
            for tier in ("full", "lite", "minimal"):
                self._plans[(route.index, tier)] = _TierPlan(
                    route=route,
                    tier=tier,
                    drops=tuple(w for w in route.widgets if w.actions[tier] == "drop"),
                    collapses=tuple(w for w in route.widgets if w.actions[tier] == "collapse"),
                    # (a trim always has its selector: the policy refuses `trim` without `keep`)
                    trims=tuple((w.trim_css, w) for w in route.widgets if w.actions[tier] == "trim" and w.trim_css is not None),
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
        mode = charset_mode(charset)
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
            layout = self._miss(cache, key, body, plan, path, mode)
        return splice_before_body_end(layout, link)

    def _miss(
        self, cache: RewriteCache, key: tuple[int, str, str, str], body: bytes, plan: _TierPlan, path: str, mode: CharsetMode
    ) -> bytes:
        """The layout of a page not in the cache: filled into the last page's template, else learnt, else laid out."""
        last = cache.last(key)
        cooldown = 0
        if last is not None and plan.budget is None:  # (a budget counts bytes: holes' lengths would matter)
            if last.template is not None:
                values = last.template.match(body)
                if values is not None:
                    layout = last.template.fill(values)
                    cache.put(key, body, layout, last.template, filled=True)
                    return layout
            if last.cooldown > 0:
                cooldown = last.cooldown - 1
            elif last.template is not None and not last.filled:
                # A template that served no page before one failed to fit counts as a failure: pages
                # whose changing parts move around would otherwise cost a learn every time.
                cooldown = LEARN_COOLDOWN
            else:
                try:
                    learned = learn(
                        last.page, body, lambda page: self._layout(page, plan, path, mode, None)[0],
                        self._relevant[plan.route.index],
                    )  # fmt: skip
                except RewriteError:  # (the page itself is laid out below, and raises the same way)
                    learned = None
                if learned is not None:
                    cache.put(key, body, learned[1], learned[0])
                    return learned[1]
                cooldown = LEARN_COOLDOWN
        layout = self._layout(body, plan, path, mode, report=None)[0]
        cache.put(key, body, layout, None, cooldown)
        return layout

    def rewrite_with_report(
        self, body: bytes, tier: str, link: bytes = b"", *, path: str = "/", charset: str | None = None
    ) -> tuple[bytes, RewriteReport]:
        """:meth:`rewrite`, measured: the page plus a :class:`RewriteReport` (``edge policy check``, logs).

        Slower (marks every widget and image); the full tier is measured too but left unchanged.
        """
        mode = charset_mode(charset)
        if mode == "unsafe":
            raise RewriteError(f"charset {charset!r} is not ASCII-compatible; pass the page through")
        route = self.policy.for_path(path)
        plan = self._plans[(route.index, tier if tier in ("lite", "minimal") else "full")]
        report = RewriteReport(tier, route.name)
        return self._run(body, plan, link, path, mode, report=report)[0], report

    def _run(
        self, body: bytes, plan: _TierPlan, link: bytes, path: str, mode: CharsetMode, report: RewriteReport | None
    ) -> tuple[bytes, RewriteReport | None]:
        layout, report = self._layout(body, plan, path, mode, report)
        final = splice_before_body_end(layout, link)
        if report is not None:
            report.html_bytes = len(final)
        return final, report

    def _layout(
        self, body: bytes, plan: _TierPlan, path: str, mode: CharsetMode, report: RewriteReport | None
    ) -> tuple[bytes, RewriteReport | None]:
        """The page laid out for the plan, before the switch link and beacon go in."""
        measure = report is not None or plan.budget is not None
        if measure and report is None:
            report = RewriteReport(plan.tier, plan.route.name)
        run = Run(plan.route, path, mode, report, self._nonce if measure else None)
        out = bytearray()
        rewriter = HTMLRewriter(out.extend)
        on = rewriter.on
        try:
            for w in plan.drops:
                on(w.css, DropWidget(w, run) if report is not None else REMOVE)
            for w in plan.collapses:
                on(w.css, Collapse(w, run))
            for css, w in plan.trims:
                on(css, TrimItems(w, run))
            if plan.images or measure:
                on("img", ImageStart(run))
            for rule in plan.images:
                on(rule.css, ImageRule(rule, run))
            for script, action in plan.scripts:
                on(script.css, ScriptRule(script, action, run))
            if measure:
                for w in plan.route.widgets:
                    on(w.css, MarkWidget(w, run))
                on("img", MarkImage(run))
            rewriter.write(body)
            rewriter.end()
        except Exception as exc:  # lol_html raises RuntimeError (e.g. a parsing ambiguity in strict mode)
            raise RewriteError(f"lol_html could not rewrite the page: {exc}") from exc
        if not measure:
            return bytes(out), report
        assert report is not None
        return settle(bytes(out), self._marker, run, report, plan.budget), report
