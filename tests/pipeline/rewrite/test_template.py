"""Layout templates (edge.pipeline.rewrite.template): a page that changes on every request is laid out
by filling the last page's template, and the result is always what a full rewrite gives.

The property tests edit real-shaped pages (the demo storefront's home, product and search pages,
under the demo policy) at random places and at the places that matter: inside widgets the tier
removes, across widget boundaries, in the attribute values the policy matches on (widget names,
image sources, classes), in scripts and comments; each page is then served several times with
different values in the same places, through a caching rewriter and through a fresh one.
"""

from __future__ import annotations

import asyncio
import re
from functools import cache

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.core.settings import DEFAULT_POLICY
from edge.demo import build_storefront
from edge.demo.dynamic import personalize
from edge.pipeline.policy import load_policy
from edge.pipeline.rewrite import HtmlRewriter, RewriteCache
from edge.pipeline.rewrite import template as template_module
from edge.pipeline.rewrite.template import LayoutTemplate, find_holes

POLICY = load_policy(DEFAULT_POLICY)
LINK = b'<p class="edge-switch">x</p>'
PATHS = {"home": "/", "product": "/product/3", "search": "/search?q=tea"}


@cache
def demo_page(name: str) -> bytes:
    async def get() -> bytes:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_storefront()), base_url="http://shop") as c:
            return (await c.get(PATHS[name])).content

    return asyncio.run(get())


def route_path(name: str) -> str:
    return PATHS[name].split("?")[0]


@cache
def anchors(name: str) -> tuple[int, ...]:
    """Places worth editing: widget names and boundaries, sources, classes, scripts, comments, text."""
    page = demo_page(name)
    patterns = [
        rb'data-edge-widget="[^"]*"', rb"</div>", rb"<div", rb"</section>", rb'src="[^"]*"', rb'class="[^"]*"',
        rb"<script[^>]*>", rb"</script>", rb"<!--", rb"-->", rb">[^<]{3,}<", rb'value="[^"]*"', rb"<img",
    ]  # fmt: skip
    found = sorted(
        {i for p in patterns for m in re.finditer(p, page) for i in (m.start(), m.start() + 1, (m.start() + m.end()) // 2, m.end() - 1)}
    )
    return tuple(i for i in found if i < len(page))


@cache
def quiet_spots(name: str) -> tuple[int, ...]:
    """Places a shop's per-request values usually are: text, and attributes the policy does not read."""
    page = demo_page(name)
    found = set()
    for m in re.finditer(rb'>([^<>]{2,})<|(?:href|alt|value|aria-label|action|title)="([^"]+)"', page):
        group = 1 if m.group(1) is not None else 2
        found.update((m.start(group), m.end(group) - 1, (m.start(group) + m.end(group)) // 2))
    return tuple(sorted(found))


HOLEISH = "abcXYZ0189_-.:/=?%"
NASTY = HOLEISH + "<>\"'& !\n/"


@st.composite
def edited_pages(draw: st.DrawFn) -> tuple[str, str, str | None, list[bytes]]:
    """(page name, tier, versions of a page: edited in the same places with other values each time, then the original)."""
    name = draw(st.sampled_from(sorted(PATHS)))
    tier = draw(st.sampled_from(["lite", "lite", "lite", "minimal"]))  # (minimal has a byte budget: never templated)
    page = demo_page(name)
    spots = draw(
        st.lists(
            st.one_of(
                st.integers(0, len(page) - 1),
                st.builds(lambda a, d: max(0, min(len(page) - 1, a + d)), st.sampled_from(anchors(name)), st.integers(-8, 8)),
                st.sampled_from(quiet_spots(name)),
                st.sampled_from(quiet_spots(name)),
            ),
            min_size=1, max_size=6, unique=True,
        )
    )  # fmt: skip
    spans = []
    for start in sorted(spots):
        end = min(len(page), start + draw(st.integers(0, 10)))
        if spans and start < spans[-1][1]:
            continue
        spans.append((start, end))
    alphabet = draw(st.sampled_from([HOLEISH, HOLEISH, NASTY]))
    versions = []
    for _ in range(4):
        values = [draw(st.text(alphabet, min_size=int(alphabet == HOLEISH), max_size=8)).encode() for _ in spans]
        out, pos = [], 0
        for (start, end), value in zip(spans, values, strict=True):
            out += [page[pos:start], value]
            pos = end
        versions.append(b"".join([*out, page[pos:]]))
    charset = draw(st.sampled_from([None, "utf-8", "latin-1"]))
    return name, tier, charset, [*versions, page]  # the edited page four times, then the original


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(edited_pages())
def test_a_templated_layout_is_always_the_full_rewrite(case):
    name, tier, charset, versions = case
    cached = HtmlRewriter(POLICY, RewriteCache(8 << 20))
    templated = False
    for page in versions:
        templated = templated or any(cached.cache.last(k).template is not None for k in cached.cache._entries)
        try:
            want = HtmlRewriter(POLICY).rewrite(page, tier, LINK, path=route_path(name), charset=charset)
        except Exception as exc:  # a page lol_html refuses must be refused the same way
            with pytest.raises(type(exc)):
                cached.rewrite(page, tier, LINK, path=route_path(name), charset=charset)
            continue
        assert cached.rewrite(page, tier, LINK, path=route_path(name), charset=charset) == want
    event("filled from a template" if templated else "laid out in full")


def dynamic_versions(name: str, n: int) -> list[bytes]:
    return [personalize(demo_page(name), "3.4", "7.9.12") for _ in range(n)]


@pytest.mark.parametrize("name", sorted(PATHS))
def test_the_dynamic_storefronts_pages_are_filled_not_laid_out(name):
    cached = HtmlRewriter(POLICY, RewriteCache(8 << 20))
    path = route_path(name)
    pages = dynamic_versions(name, 6)
    outputs = [cached.rewrite(page, "lite", LINK, path=path) for page in pages]
    assert outputs == [HtmlRewriter(POLICY).rewrite(page, "lite", LINK, path=path) for page in pages]
    (entry,) = [cached.cache.last(key) for key in cached.cache._entries]
    holes = pages[-1].count(b"csrf_token") + 2  # a token per form, the nonce (one per page), the time, at least
    assert entry.template is not None and len(entry.template.statics) - 1 >= holes
    assert entry.template.match(pages[-1]) is not None
    # Each page's own tokens are in its layout (the kept forms), not the previous page's.
    token = re.search(rb'name="csrf_token" value="([\w-]+)"', pages[-1]).group(1)
    assert token in outputs[-1] and token not in outputs[-2]


def serve_all(pages: list[bytes]) -> HtmlRewriter:
    """A caching rewriter that served ``pages`` in turn at lite on ``/``, each as a full rewrite would."""
    cached = HtmlRewriter(POLICY, RewriteCache(8 << 20))
    for page in pages:
        assert cached.rewrite(page, "lite", LINK, path="/") == HtmlRewriter(POLICY).rewrite(page, "lite", LINK, path="/")
    return cached


def only_entry(rewriter: HtmlRewriter):
    (key,) = list(rewriter.cache._entries)
    return rewriter.cache.last(key)


@pytest.mark.parametrize(
    "old, values",
    [
        (b'data-edge-widget="ads"', [b'data-edge-widget="ads"', b'data-edge-widget="ads1"']),  # the policy matches on it
        (b'src="/static/img/ad-1.png"', [b'src="/static/img/ad-2.png"', b'src="/static/img/ad-3.png"']),  # the image rule reads it
        (b'class="ad-label"', [b'class="ad-x"', b'class="ad-y"']),  # selectors and placeholders read classes
        (b"<!-- storefront build 2024.11.3;", [b"<!-- storefront build 2024.11.4;", b"<!-- storefront build 2024.11.5;"]),
        (b"<h2>", [b"<h3>", b"<h4>"]),  # a tag name
    ],
)
def test_holes_the_policy_reads_or_in_markup_are_never_templated(old, values):
    page = demo_page("home")
    assert old in page
    rewriter = serve_all([page, *(page.replace(old, v, 1) for v in values)])
    assert only_entry(rewriter).template is None


def test_holes_in_text_and_unread_attributes_are_templated():
    page = demo_page("home")
    edits = [(b"Bestsellers this week", b"Bestsellers this %s"), (b'name="product_id" value="1"', b'name="product_id" value="%s"')]
    versions = [page]
    for v in (b"1x", b"22", b"333x"):
        p = page
        for old, new in edits:
            p = p.replace(old, new % v, 1)
        versions.append(p)
    entry = only_entry(serve_all(versions))
    assert entry.template is not None and len(entry.template.statics) == 3


def test_find_holes_and_the_template_round_trip():
    old = b'<form><input name="csrf" value="abc"><p>Cart (2) at 10:00</p></form>'
    new = b'<form><input name="csrf" value="x-y_z"><p>Cart (13) at 10:01</p></form>'
    spans = find_holes(old, new)
    assert [new[s:e] for s, e in spans] == [b"x-y_z", b"13", b"10:01"]
    assert find_holes(old, old.replace(b"abc", b"a c")) is None  # a space is markup-ish: no holes
    assert find_holes(old, old.replace(b"<p>", b"<p><b>")) is None
    statics = (new[: spans[0][0]], new[spans[0][1] : spans[1][0]], new[spans[1][1] : spans[2][0]], new[spans[2][1] :])
    template = LayoutTemplate(statics, (b"A", b"B", b"C"), (2, 0))
    assert template.match(new) == [b"x-y_z", b"13", b"10:01"]
    assert template.match(new.replace(b"x-y_z", b"x y")) is None and template.match(new + b" ") is None
    assert template.fill([b"t", b"n", b"h"]) == b"AhBtC"
    # A hole at the very end of the page, and a value with a byte that is no hole character.
    tail = LayoutTemplate((b"<p>", b"</p>", b""), (b"L",), ())
    assert tail.match(b"<p>a</p>xyz") == [b"a", b"xyz"] and tail.match(b"<p>a</p>x<") is None
    assert tail.match(b"<p>a&b</p>x") is None and tail.match(b"<p></p>x") is None


def test_the_cache_stays_within_its_bound_whatever_pages_arrive():
    bound = 1_500_000
    cached = HtmlRewriter(POLICY, RewriteCache(bound))
    pages = dynamic_versions("home", 3)
    for i in range(40):  # distinct paths (each its own entry) and, on each, a page that changes
        for page in pages[: 1 + i % 3]:
            cached.rewrite(page + str(i).encode(), "lite", LINK, path=f"/p{i}")
            assert cached.cache.bytes <= bound
    entries = [cached.cache.last(k) for k in cached.cache._entries]
    assert sum(e.size for e in entries) == cached.cache.bytes
    assert any(e.template is not None for e in entries)  # templates are counted, not free
    assert all(e.size >= len(e.page) + len(e.layout) + (e.template.nbytes if e.template else 0) for e in entries)


def test_pages_whose_changing_parts_move_around_cost_little_more_than_a_plain_layout(monkeypatch):
    """Each page differs from the last in one run, alternately the heading and a form's value: every
    template learnt is wrong for the next page. Learning backs off, so the passes stay near one a page."""
    page = demo_page("home")
    heading, value = b"Bestsellers this week", b'name="product_id" value="1"'
    versions = []
    for n in range(40):
        a, b = (n + 1) // 2, n // 2  # (0,0) (1,0) (1,1) (2,1) (2,2)…
        versions.append(page.replace(heading, b"Bestsellers %d" % a, 1).replace(value, b'name="product_id" value="%d"' % b, 1))
    cached = HtmlRewriter(POLICY, RewriteCache(8 << 20))
    passes = []
    layout = cached._layout
    monkeypatch.setattr(cached, "_layout", lambda *args, **kwargs: passes.append(1) or layout(*args, **kwargs))
    monkeypatch.setattr(template_module, "watch", _counting(template_module.watch, passes))
    for p in versions:
        assert cached.rewrite(p, "lite", LINK, path="/") == HtmlRewriter(POLICY).rewrite(p, "lite", LINK, path="/")
    assert len(passes) <= 1.25 * len(versions), len(passes)


def _counting(fn, calls):
    def wrapped(*args):
        calls.append(1)
        return fn(*args)

    return wrapped
