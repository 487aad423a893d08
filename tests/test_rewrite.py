"""The HTML rewriter: drops the tier's widgets, injects the switch link, and leaves everything else byte-exact."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.policy import Policy
from edge.rewrite import HtmlRewriter, splice_before_body_end, switch_link

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
