"""The HTML rewriter: drops the tier's widgets, injects the switch link, and leaves everything else byte-exact."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.pipeline.policy import Policy
from edge.pipeline.rewrite import HtmlRewriter, splice_before_body_end, switch_link

POLICY = Policy.from_toml(
    """
[[widgets]]
widget = "ads"
priority = 1
lite = "drop"

[[widgets]]
selector = "aside.promo"
priority = 2
lite = "keep"
minimal = "drop"

[[widgets]]
widget = "grid"
priority = 90
"""
)
LINK = b'<p class="edge-switch"><a href="/__edge/tier/full?next=/">Full page</a></p>'

TRICKY = (
    b"<!DOCTYPE html>\n<html lang=fr><head><meta charset=utf-8>"
    b"<!--[if lt IE 9]><script src=html5shiv.js></script><![endif]-->"
    b'<script>var tpl = "<div data-edge-widget=\\"ads\\"><\\/div>"; if (a < b && c > d) {}</script>'
    b'<script type="application/ld+json">{"name": "Caf\xc3\xa9 &amp; cr\xc3\xa8me", "html": "</p>"}</script>'
    b"<style>.a>.b{content:'</div>'}</style></head>"
    b"<body><!-- a comment --><div data-edge-widget=grid><p>&euro;12&nbsp;&#8217;s<br></div>"
    b'<div data-edge-widget="ads"><img src=ad.png><p>unclosed<div>nested</div></div>'
    b'<aside class="promo">promo</aside><template><div data-edge-widget="x"></div></template>'
    b"<noscript><img src=pixel.gif></noscript></body></html>"
)


def rewrite(body: bytes, tier: str) -> bytes:
    return HtmlRewriter(POLICY).rewrite(body, tier, LINK)


def test_full_tier_is_the_original_plus_the_link():
    out = rewrite(TRICKY, "full")
    assert out.replace(LINK, b"", 1) == TRICKY
    assert out.index(LINK) == TRICKY.rindex(b"</body>")


def test_lite_drops_only_the_tiers_widgets_and_keeps_everything_else_byte_exact():
    out = rewrite(TRICKY, "lite")
    assert b'<div data-edge-widget="ads"><img' not in out
    assert b"ad.png" not in out
    for kept in (
        b"<!DOCTYPE html>\n",
        b"<!--[if lt IE 9]><script src=html5shiv.js></script><![endif]-->",
        b'var tpl = "<div data-edge-widget=\\"ads\\"><\\/div>"',  # the string inside the script survives
        b'"html": "</p>"}</script>',
        b"<style>.a>.b{content:'</div>'}</style>",
        b"<!-- a comment -->",
        b"&euro;12&nbsp;&#8217;s<br>",
        b"Caf\xc3\xa9",
        b'<aside class="promo">promo</aside>',
        b"<noscript><img src=pixel.gif></noscript>",
    ):
        assert kept in out, kept
    assert out.endswith(LINK + b"</body></html>")


def test_minimal_applies_its_own_actions():
    out = rewrite(TRICKY, "minimal")
    assert b"promo" not in out and b"ad.png" not in out
    assert b"data-edge-widget=grid" in out


def test_legacy_charset_bytes_pass_through_untouched():
    latin1 = "<html><body><p>Caf\u00e9 cr\u00e8me \u00a312</p><div data-edge-widget=ads>x</div></body></html>".encode("latin-1")
    out = rewrite(latin1, "lite")
    assert b"Caf\xe9 cr\xe8me \xa312" in out
    sjis = "<html><body><p>\u5927\u962a\u306e\u304a\u8336\u30bb\u30c3\u30c8\u8868</p><div data-edge-widget=ads>x</div></body></html>".encode("shift_jis")
    out = rewrite(sjis, "lite")
    assert "\u5927\u962a\u306e\u304a\u8336\u30bb\u30c3\u30c8\u8868".encode("shift_jis") in out
    assert b"data-edge-widget=ads" not in out


def test_fragment_without_body_gets_the_link_at_the_end():
    assert rewrite(b"<p>hi", "lite") == b"<p>hi" + LINK
    assert rewrite(b"<p>hi", "full") == b"<p>hi" + LINK


def test_body_end_inside_a_script_is_not_mistaken_for_the_real_one():
    page = b'<body><script>document.write("</body>")</script><p>x</p></body></html>'
    assert splice_before_body_end(page, b"<i>") == page.replace(b"<p>x</p></body>", b"<p>x</p><i></body>")


def test_switch_link_escapes_the_return_path():
    link = switch_link("full", '/search?q="><script>', "Full page")
    assert b"<script>" not in link
    assert link.startswith(b'<p class="edge-switch"')


TOKENS = list("<>/=\"'!- abcdiv&;#x0123\u00e9") + ["<div>", "</div>", "<body>", "</body>", "<script>", "</script>", "<!--", "-->", "&amp;", "<p class=a>", "<![CDATA[", "<!DOCTYPE html>"]
markup = st.lists(st.sampled_from(TOKENS), max_size=120).map("".join)
WIDGET = ["<div data-edge-widget=ads>", "<div data-edge-widget=grid>"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS + WIDGET), max_size=120).map("".join))
def test_random_markup_full_tier_is_input_plus_link(page):
    body = page.encode()
    out = rewrite(body, "full")
    assert out.replace(LINK, b"", 1) == body


@settings(max_examples=300, deadline=None)
@given(markup)
def test_random_markup_without_widgets_survives_lite_byte_exact(page):
    # Nothing to drop: the streaming rewriter must hand back every byte it was given, plus the link.
    body = page.encode()
    out = rewrite(body, "lite")
    assert out.replace(LINK, b"", 1) == body


# ---------------------------------------------------------------- every action, rule and the budget

from hypothesis import HealthCheck  # noqa: E402
from selectolax.lexbor import LexborHTMLParser  # noqa: E402

from edge.pipeline.rewrite import COLLAPSE_SCRIPT, RewriteError  # noqa: E402

ACTIONS = Policy.from_toml(
    """
[[widgets]]
widget = "reviews"
priority = 40
lite = "collapse"
minimal = "drop"
url = "/fragments/reviews?id={data-id}&from={path}"
label = "Show reviews"

[[widgets]]
widget = "recs"
priority = 30
lite = "collapse"

[[widgets]]
selector = "ul.list"
priority = 50
lite = "trim"
keep = 2
item = "li"

[[widgets]]
widget = "grid"
priority = 90
minimal = "trim"
keep = 1

[[images]]
src = '^(/static/img/.+\\.png)$'
variant = '\\1?w=160'
variant_bytes = 0.25
tiers = ["lite"]

[[images]]
lazy = true
drop_srcset = true
max_bytes = 10000

[[scripts]]
src = 'analytics'
lite = "defer"
minimal = "drop"

[[scripts]]
selector = "script.chat"
lite = "drop"
"""
)
PAGE = (
    b"<!doctype html><html><head>"
    b'<script src="/js/analytics.js"></script><script src="/js/app.js"></script>'
    b'<script class="chat">chat()</script><script type="application/ld+json" class="chat">{"a":1}</script>'
    b"</head><body>"
    b'<div data-edge-widget="reviews" data-id="7 &amp; 8"><p>great</p></div>'
    b'<section data-edge-widget="recs" data-edge-src="/fragments/recs"><p>also</p></section>'
    b'<aside data-edge-widget="recs"><p>no src</p></aside>'
    b'<ul class="list"><li>1</li><li>2</li><li>3</li><li>4</li></ul>'
    b'<div data-edge-widget="grid"><h2>g</h2><div>a</div></div>'
    b'<img src="/static/img/a.png" width="100" height="100" data-edge-bytes="8000" srcset="/a2.png 2x" sizes="50vw">'
    b'<img src="/static/img/big.png" data-edge-bytes="50000">'
    b'<img src="/other.jpg" width="400" height="300" loading="eager">'
    b"</body></html>"
)


def test_collapse_puts_a_plain_link_with_the_url_template_and_the_script_once():
    out = HtmlRewriter(ACTIONS).rewrite(PAGE, "lite", LINK, path="/p/1?x=2")
    assert b"great" not in out and b"also" not in out and b"no src" not in out
    assert out.count(COLLAPSE_SCRIPT.encode()) == 1
    assert (
        b'<div class="edge-collapsed" data-edge-collapsed="reviews">'
        b'<a href="/fragments/reviews?id=7%20%26%208&amp;from=/p/1?x=2" data-edge-fragment="" rel="nofollow">Show reviews</a></div>'
    ) in out
    assert b'<section class="edge-collapsed" data-edge-collapsed="recs"><a href="/fragments/recs" data-edge-fragment=""' in out
    # No URL at all: the link opens the full page (no fragment, no script needed for it).
    assert b'<aside class="edge-collapsed" data-edge-collapsed="recs"><a href="/__edge/tier/full?next=/p/1%3Fx%3D2" rel="nofollow">Show recs</a></aside>' in out
    assert LexborHTMLParser(out).css_first("a[data-edge-fragment]").attributes["href"].startswith("/fragments/reviews")


def test_collapse_without_any_fragment_url_inserts_no_script():
    policy = Policy.from_toml('[[widgets]]\nwidget = "recs"\npriority = 1\nlite = "collapse"')
    out = HtmlRewriter(policy).rewrite(b'<body><div data-edge-widget="recs">x</div></body>', "lite", b"")
    assert b"<script" not in out and b"edge-collapsed" in out


def test_trim_keeps_the_first_n_items():
    lite = HtmlRewriter(ACTIONS).rewrite(PAGE, "lite", LINK)
    assert b'<ul class="list"><li>1</li><li>2</li></ul>' in lite
    minimal = HtmlRewriter(ACTIONS).rewrite(PAGE, "minimal", LINK)
    assert b'<div data-edge-widget="grid"><h2>g</h2></div>' in minimal  # keep = 1 element child, any tag
    assert b'<ul class="list"><li>1</li><li>2</li></ul>' in minimal  # no minimal action: the lite one applies


def test_trim_leaves_unclosed_list_items_alone():
    # lol_html does not imply </li>, so unclosed items nest: trim sees one child and cuts nothing.
    page = b'<ul class="list"><li>1<li>2<li>3</ul>'
    assert HtmlRewriter(ACTIONS).rewrite(page, "lite", b"") == page


def test_image_rules_variant_lazy_srcset_and_size_cap():
    out = HtmlRewriter(ACTIONS).rewrite(PAGE, "lite", LINK)
    assert b'src="/static/img/a.png?w=160"' in out
    tag = re.search(rb'<img src="/static/img/a.png\?w=160"[^>]*>', out).group()
    assert b'loading="lazy"' in tag and b'decoding="async"' in tag and b"srcset" not in tag and b"sizes" not in tag
    # 50 000 declared × 0.25 for the variant = 12 500 > 10 000: dropped.
    assert b"big.png" not in out
    # 400 × 300 × 0.5 B/px = 60 000 > 10 000: dropped; an explicit loading="eager" would have been kept.
    assert b"other.jpg" not in out
    minimal = HtmlRewriter(ACTIONS).rewrite(PAGE, "minimal", LINK)
    assert b'src="/static/img/a.png"' in minimal  # the variant rule is lite-only


def test_lazy_keeps_an_existing_loading_attribute():
    policy = Policy.from_toml("[[images]]\nlazy = true")
    out = HtmlRewriter(policy).rewrite(b'<img src="a" loading="eager"><img src=b>', "lite", b"")
    assert out == b'<img src="a" loading="eager" decoding="async"><img src=b loading="lazy" decoding="async">'


def test_script_rules_defer_drop_and_leave_json_ld_alone():
    lite = HtmlRewriter(ACTIONS).rewrite(PAGE, "lite", LINK)
    assert b'<script src="/js/analytics.js" defer=""></script>' in lite
    assert b'<script src="/js/app.js"></script>' in lite
    assert b"chat()" not in lite
    assert b'<script type="application/ld+json" class="chat">{"a":1}</script>' in lite
    minimal = HtmlRewriter(ACTIONS).rewrite(PAGE, "minimal", LINK)
    assert b"analytics" not in minimal


def test_script_rule_all_types_reaches_data_scripts():
    policy = Policy.from_toml('[[scripts]]\nselector = "script#state"\nlite = "drop"\nall_types = true')
    page = b'<script id="state" type="application/json">{}</script><p>x</p>'
    assert HtmlRewriter(policy).rewrite(page, "lite", b"") == b"<p>x</p>"


def test_routes_pick_their_own_rules():
    policy = Policy.from_toml(
        '[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n'
        '[[routes]]\nname = "checkout"\npath = "/checkout/**"\n'
        '[[routes.widgets]]\nwidget = "ads"\npriority = 1\nlite = "keep"\n'
    )
    page = b'<body><div data-edge-widget="ads">ad</div></body>'
    assert b"ad</div>" not in HtmlRewriter(policy).rewrite(page, "lite", b"", path="/")
    assert HtmlRewriter(policy).rewrite(page, "lite", b"", path="/checkout/pay") == page


BUDGET = Policy.from_toml(
    """
[budget]
lite = 3000
protect = 90
[[widgets]]
widget = "essential"
priority = 95
[[widgets]]
widget = "low"
priority = 10
[[widgets]]
widget = "mid"
priority = 50
[[widgets]]
widget = "inner"
priority = 5
"""
)


def budget_page(essential_img: int = 1000, loose_img: int = 800) -> bytes:
    return (
        b"<html><body>"
        b'<div data-edge-widget="essential"><img src="/e.png" data-edge-bytes="%d"></div>'
        b'<div data-edge-widget="mid">' + b"m" * 500 + b'<div data-edge-widget="inner">' + b"i" * 100 + b"</div></div>"
        b'<div data-edge-widget="low"><img src="/l.png" data-edge-bytes="1500"></div>'
        b'<img src="/loose.png" data-edge-bytes="%d">'
        b"</body></html>"
    ) % (essential_img, loose_img)


def test_budget_drops_lowest_priority_widgets_until_the_page_fits():
    page = budget_page()
    out, report = HtmlRewriter(BUDGET).rewrite_with_report(page, "lite", b"")
    # HTML ~0.9 KB + images 1000 + 1500 + 800: over 3000. inner (5) goes first, then low (10, with its 1500 B image).
    assert report.budget_dropped == ["inner", "low"]
    assert b'data-edge-widget="low"' not in out and b"iiii" not in out and b"mmmm" in out
    assert report.fits and report.total_bytes == len(out) + 1000 + 800
    assert report.kept == ["essential", "mid"]
    assert HtmlRewriter(BUDGET).rewrite(page, "lite", b"") == out  # the plain call gives the same page
    assert b"<!--edge" not in out


def test_budget_then_drops_the_largest_unprotected_images():
    page = budget_page(essential_img=3200, loose_img=900)
    out, report = HtmlRewriter(BUDGET).rewrite_with_report(page, "lite", b"")
    assert report.budget_dropped[:3] == ["inner", "low", "mid"]
    assert report.budget_dropped[3:] == ["img /loose.png"]
    assert b"/e.png" in out  # inside a protected widget
    assert not report.fits  # essential alone is over: reported, never cut


def test_budget_never_cuts_a_widget_lol_html_closed_somewhere_odd():
    policy = Policy.from_toml('[budget]\nlite = 10\n[[widgets]]\nwidget = "w"\npriority = 1')
    page = b'<div><section data-edge-widget="w"><p>x</div><p>after</p>'
    out, report = HtmlRewriter(policy).rewrite_with_report(page, "lite", b"")
    assert out == page and report.budget_dropped == [] and not report.fits


def test_report_counts_everything():
    _, report = HtmlRewriter(ACTIONS).rewrite_with_report(PAGE, "lite", LINK, path="/p/1")
    assert report.collapsed == ["reviews", "recs", "recs"]
    assert report.trimmed == {"ul.list": 2}
    assert report.images_rewritten == 2 and len(report.images_dropped) == 2 and report.images_kept == 1
    assert report.image_bytes == 2000  # a.png's 8000 declared bytes × 0.25
    assert (report.scripts_deferred, report.scripts_dropped) == (1, 1)
    _, full = HtmlRewriter(ACTIONS).rewrite_with_report(PAGE, "full", LINK)
    assert full.html_bytes == len(PAGE) + len(LINK) and full.images_kept == 3
    assert full.image_bytes == 8000 + 50000 + 60000


def test_inserted_text_follows_the_page_charset():
    policy = Policy.from_toml('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nlabel = "Avis – voir"')
    page = '<body><p>Café</p><div data-edge-widget="r">x</div></body>'
    utf8 = HtmlRewriter(policy).rewrite(page.encode(), "lite", b"", charset="utf-8")
    assert "Avis – voir".encode() in utf8
    for charset in ("iso-8859-1", "windows-1252", "shift_jis", None, "x-unknown"):
        body = page.encode("latin-1") if charset != "shift_jis" else page.replace("Café", "大阪").encode("shift_jis")
        out = HtmlRewriter(policy).rewrite(body, "lite", b"", charset=charset)
        assert b"Avis &#8211; voir" in out, charset
        assert out.startswith(body[: body.index(b"<div")])  # untouched bytes identical


@pytest.mark.parametrize("charset", ["utf-16", "UTF-16LE", "utf-32", "iso-2022-jp", "cp500"])
def test_charsets_lol_html_cannot_tokenize_are_refused(charset):
    with pytest.raises(RewriteError, match="not ASCII-compatible"):
        HtmlRewriter(ACTIONS).rewrite(b"<p>x</p>", "lite", b"", charset=charset)
    with pytest.raises(RewriteError):
        HtmlRewriter(ACTIONS).rewrite(b"<p>x</p>", "full", b"", charset=charset)


def test_markup_lol_html_refuses_is_a_rewrite_error():
    # strict mode: a text-content tag where lol_html cannot tell how to parse what follows
    with pytest.raises(RewriteError, match="lol_html"):
        HtmlRewriter(POLICY).rewrite(b'<select><xmp>a</xmp></select><div data-edge-widget="ads">x</div>', "lite", b"")


RICH = st.lists(
    st.sampled_from(
        TOKENS + WIDGET + ['<div data-edge-widget="reviews" data-id=3>', '<ul class="list">', "<li>", "</li>", "</ul>",
                           '<img src="/static/img/a.png" data-edge-bytes="9000">', "<img src=x width=10 height=10>",
                           '<script src="/analytics.js">', "<select>", "<xmp>", "<textarea>", "<svg>", "</svg>", "<math>",
                           "<template>", "</template>", '<script type="application/ld+json">', "<iframe>", "<noscript>"]
    ),
    max_size=150,
).map("".join)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RICH, st.sampled_from(["full", "lite", "minimal"]), st.sampled_from([None, "utf-8", "latin-1", "shift_jis"]))
def test_random_markup_never_raises_anything_but_rewrite_error(page, tier, charset):
    body = page.encode()
    for policy in (ACTIONS, BUDGET):
        try:
            out = HtmlRewriter(policy).rewrite(body, tier, LINK, path="/p/1", charset=charset)
            _, report = HtmlRewriter(policy).rewrite_with_report(body, tier, LINK, path="/p/1", charset=charset)
        except RewriteError:
            continue
        assert LINK in out
        assert report.html_bytes >= len(LINK)
        if tier == "full":
            assert out.replace(LINK, b"", 1) == body


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["full", "lite", "minimal"]))
def test_random_bytes_never_raise_anything_but_rewrite_error(body, tier):
    try:
        out = HtmlRewriter(ACTIONS).rewrite(body, tier, LINK, charset="latin-1")
    except RewriteError:
        return
    if tier == "full":
        assert out.replace(LINK, b"", 1) == body


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(TOKENS + WIDGET + ["</BODY>", "</body >", "</Body>", "</bo", "dy>", "</bodyx"]), max_size=120).map("".join),
    st.data(),
    st.booleans(),
)
def test_streamed_splice_is_the_buffered_splice_in_any_chunking(page, data, empty_last):
    from edge.pipeline.rewrite import StreamSplicer

    body = page.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
    if empty_last:
        chunks.append(b"")  # an app's final empty body message
    splicer = StreamSplicer(LINK, length=len(body))
    out = b"".join([splicer.feed(c) for c in chunks[:-1]]) + splicer.finish(chunks[-1])
    assert out.replace(LINK, b"", 1) == body
    assert out == splice_before_body_end(body, LINK)


@pytest.mark.parametrize("after_end_kb", [0, 1, 63, 65, 200])
@pytest.mark.parametrize("chunk_kb", [1, 16, 64, 1000])
def test_splice_window_is_the_same_streamed_and_buffered(after_end_kb, chunk_kb):
    """The end tag counts only within the page's last 64 KB, in both paths, for any chunk size."""
    from edge.pipeline.rewrite import SPLICE_WINDOW, StreamSplicer

    body = b"<html><body>" + b"<p>x</p>" * 20_000 + b"</body>" + b"<!--" + b"y" * (after_end_kb * 1024) + b"-->"
    chunks = [body[i : i + chunk_kb * 1024] for i in range(0, len(body), chunk_kb * 1024)]
    splicer = StreamSplicer(LINK, length=len(body))
    parts = [splicer.feed(c) for c in chunks[:-1]]
    # Everything before the window went out as it came; only window bytes are held.
    fed = sum(map(len, chunks[:-1]))
    window_start = max(0, len(body) - SPLICE_WINDOW)
    assert b"".join(parts) == body[: min(fed, window_start)]
    assert sum(map(len, splicer.held)) == max(0, fed - window_start) <= SPLICE_WINDOW
    out = b"".join(parts) + splicer.finish(chunks[-1])
    assert out == splice_before_body_end(body, LINK)
    tag = body.rindex(b"</body>")
    if len(body) - tag <= SPLICE_WINDOW:
        assert out == body[:tag] + LINK + body[tag:]
    else:
        assert out == body + LINK
    assert len(splicer.held) == 0


def _real_end_at(body: bytes, k: int) -> bool:
    import re

    return re.compile(rb"</body\s*>", re.I).match(body, k) is not None


def _has_real_end(body: bytes) -> bool:
    import re

    return re.search(rb"</body\s*>", body, re.I) is not None


# --- the rewrite cache: a page served again byte for byte reuses its layout ------------------------


def _cached(policy, max_bytes=1 << 20):
    from edge.pipeline.rewrite import RewriteCache

    counts = {"hit": 0, "miss": 0}
    cache = RewriteCache(max_bytes, lambda: counts.__setitem__("hit", counts["hit"] + 1), lambda: counts.__setitem__("miss", counts["miss"] + 1))
    return HtmlRewriter(policy, cache), cache, counts


@pytest.mark.parametrize(
    "policy, page, tier",
    [(ACTIONS, PAGE, "lite"), (ACTIONS, PAGE, "minimal"), (BUDGET, budget_page(), "lite")],
    ids=["actions-lite", "actions-minimal", "budget-lite"],
)
def test_a_cached_layout_is_the_layout_with_this_requests_link(policy, page, tier):
    cached, cache, counts = _cached(policy)
    plain = HtmlRewriter(policy)
    for n, path in enumerate(["/p/1", "/p/1", "/p/1", "/p/2"]):
        link = b"<a>token %d</a>" % n  # every response carries its own token
        assert cached.rewrite(page, tier, link, path=path) == plain.rewrite(page, tier, link, path=path)
    assert counts == {"hit": 2, "miss": 2}  # /p/1 laid out once, reused twice; /p/2 is its own entry
    assert len(cache) == 2


def test_a_page_that_changed_by_one_byte_is_laid_out_again():
    cached, cache, counts = _cached(ACTIONS)
    changed = PAGE.replace(b"<h2>g</h2>", b"<h2>h</h2>")  # in the grid, which lite keeps
    assert cached.rewrite(PAGE, "lite", LINK) != cached.rewrite(changed, "lite", LINK)
    assert cached.rewrite(changed, "lite", LINK) == HtmlRewriter(ACTIONS).rewrite(changed, "lite", LINK)
    assert counts == {"hit": 1, "miss": 2} and len(cache) == 1


def test_the_cache_stays_within_its_bytes_least_recently_used_out_first():
    cached, cache, _ = _cached(ACTIONS, max_bytes=40 * len(PAGE))
    for i in range(200):
        cached.rewrite(PAGE, "lite", LINK, path=f"/p/{i}")
        assert cache.bytes <= cache.max_bytes
    assert 0 < len(cache) < 40
    # The newest pages stayed, the oldest went.
    assert counts_after(cached, "/p/199") == "hit" and counts_after(cached, "/p/0") == "miss"


def counts_after(rewriter, path):
    cache = rewriter.cache
    hits = []
    cache._on_hit, cache._on_miss = (lambda: hits.append("hit")), (lambda: hits.append("miss"))
    rewriter.rewrite(PAGE, "lite", LINK, path=path)
    return hits[-1]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([PAGE, PAGE.replace(b"great", b"fine"), budget_page(), b"<p>frag"]), min_size=1, max_size=6), st.sampled_from(["lite", "minimal", "full"]))
def test_any_sequence_of_pages_gets_what_an_uncached_rewriter_gives(pages, tier):
    cached, _, _ = _cached(ACTIONS, max_bytes=3 * len(PAGE))
    plain = HtmlRewriter(ACTIONS)
    for n, page in enumerate(pages):
        link = b"<i>%d</i>" % n
        assert cached.rewrite(page, tier, link, path="/x") == plain.rewrite(page, tier, link, path="/x")


# --- collapse placeholders keep the element's tag and classes (issue 13 item 3) -------------------

GRID = (
    b'<body><div class="container"><div class="row">'
    b'<div class="col-md-8" data-edge-widget="grid">products</div>'
    b'<div class="col-md-4 d-none d-lg-block" data-edge-widget="recs">also bought</div>'
    b"</div></div></body>"
)


def _collapse_policy(extra: str = "") -> Policy:
    return Policy.from_toml(f'[[widgets]]\nwidget = "recs"\npriority = 1\nlite = "collapse"\n{extra}')


def test_a_collapsed_widget_stays_in_the_page_grid():
    out = HtmlRewriter(_collapse_policy()).rewrite(GRID, "lite", b"")
    assert b'<div class="col-md-4 d-none d-lg-block edge-collapsed" data-edge-collapsed="recs"><a href=' in out
    tree = LexborHTMLParser(out)
    columns = tree.css(".container > .row > [class*=col-]")
    assert [c.attributes["class"] for c in columns] == ["col-md-8", "col-md-4 d-none d-lg-block edge-collapsed"]
    assert b"also bought" not in out and tree.css_first(".edge-collapsed a").text() == "Show recs"


@pytest.mark.parametrize(
    ("element", "placeholder"),
    [
        (b'<li class="card span-2" data-edge-widget="recs">x</li>', b'<li class="card span-2 edge-collapsed"'),
        (b'<td class="cell" data-edge-widget="recs">x</td>', b'<td class="cell edge-collapsed"'),
        (b'<section data-edge-widget="recs">x</section>', b'<section class="edge-collapsed"'),
        (b'<ul class="grid" data-edge-widget="recs"><li>x</li></ul>', b'<div class="grid edge-collapsed"'),  # a <ul> holds no link
        (b"<div class='a&amp;b \"q' data-edge-widget=\"recs\">x</div>", b'<div class="a&amp;b &quot;q edge-collapsed"'),
    ],
    ids=["li", "td", "no-class", "ul-becomes-div", "escaped"],
)
def test_the_placeholder_keeps_the_tag_and_classes(element, placeholder):
    out = HtmlRewriter(_collapse_policy()).rewrite(b"<body>" + element + b"</body>", "lite", b"")
    assert placeholder + b' data-edge-collapsed="recs">' in out


@pytest.mark.parametrize(
    ("extra", "placeholder"),
    [
        ('placeholder_class = "{class} skeleton"', b'<div class="col-md-4 d-none d-lg-block skeleton edge-collapsed"'),
        ('placeholder_class = "col-12"', b'<div class="col-12 edge-collapsed"'),
        ('placeholder_class = ""', b'<div class="edge-collapsed"'),
        ('placeholder_tag = "aside"', b'<aside class="col-md-4 d-none d-lg-block edge-collapsed"'),
    ],
)
def test_the_placeholder_tag_and_classes_are_configurable_per_widget(extra, placeholder):
    out = HtmlRewriter(_collapse_policy(extra)).rewrite(GRID, "lite", b"")
    assert placeholder + b' data-edge-collapsed="recs">' in out
    assert out.endswith(b"</div></div></body>")


def test_placeholder_classes_follow_the_page_charset():
    policy = _collapse_policy()
    utf8 = HtmlRewriter(policy).rewrite('<body><div class="café col-4" data-edge-widget="recs">x</div></body>'.encode(), "lite", b"", charset="utf-8")
    assert '<div class="café col-4 edge-collapsed"'.encode() in utf8
    # A Latin-1 page: lol_html reads UTF-8, so a non-ASCII class name cannot be copied faithfully; the rest are.
    latin1 = HtmlRewriter(policy).rewrite(b'<body><div class="caf\xe9 col-4" data-edge-widget="recs">x</div></body>', "lite", b"", charset="iso-8859-1")
    assert b'<div class="col-4 edge-collapsed"' in latin1
