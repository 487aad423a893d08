"""Rewrite quality on real-world-shaped pages (tests/corpus/, written for edge; see tests/corpus/README.md).

For every page:

- full tier: byte-identical to the input apart from the injected link;
- lite with widget drops only: the input with the dropped widgets' byte spans cut
  out and nothing else changed (so doctype, scripts, inline JSON, entities,
  comments and conditional comments outside dropped widgets are untouched);
- lite and minimal with the whole corpus policy (collapse, trim, images, scripts):
  still parses, keeps every high-priority widget, drops the low-priority ones,
  and keeps every JSON-LD / inline JSON script and every comment the drop-only
  rewrite kept, byte for byte;
- legacy charsets: no UTF-8 bytes appear in Latin-1 or Shift_JIS pages.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from edge.pipeline.policy import Policy
from edge.pipeline.rewrite import HtmlRewriter

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PAGES = sorted(CORPUS.glob("*.html"))
LINK = b'<p class="edge-switch"><a href="/__edge/tier/full?next=/">Full page</a></p>'
CHARSETS = {"01-latin1-meta-charset.html": "iso-8859-1", "02-shift-jis-http-equiv.html": "shift_jis"}
HIGH = ("header", "product-grid", "product", "cart")
LOW = ("recommendations", "ads", "video", "chat")

WIDGETS = """
[[widgets]]
widget = "header"
priority = 100
[[widgets]]
widget = "product-grid"
priority = 90
[[widgets]]
widget = "product"
priority = 90
[[widgets]]
widget = "cart"
priority = 90
[[widgets]]
widget = "footer"
priority = 60
minimal = "drop"
[[widgets]]
widget = "recommendations"
priority = 30
lite = "drop"
[[widgets]]
widget = "video"
priority = 10
lite = "drop"
[[widgets]]
widget = "chat"
priority = 5
lite = "drop"
[[widgets]]
widget = "ads"
priority = 1
lite = "drop"
"""
DROP_ONLY = Policy.from_toml(WIDGETS + '[[widgets]]\nwidget = "reviews"\npriority = 40\nlite = "drop"\n', "drop-only.toml")
FULL_POLICY = Policy.from_toml(
    WIDGETS
    + """
[[widgets]]
widget = "reviews"
priority = 40
lite = "collapse"
minimal = "collapse"
url = "/fragments/reviews?id={data-product-id}"
label = "Avis clients – afficher (Zoë’s picks)"

[[images]]
src = '^(/img/.+\\.jpg)$'
variant = '\\1?w=160'
variant_bytes = 0.3
[[images]]
lazy = true
drop_srcset = true
max_bytes = 80000

[[scripts]]
src = 'analytics|googletagmanager|fbevents|ads\\.example|stats'
lite = "defer"
minimal = "drop"
""",
    "corpus.toml",
)


def page_id(path: Path) -> str:
    return path.stem


def charset_of(path: Path) -> str:
    return CHARSETS.get(path.name, "utf-8")


VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"})


class _WidgetSpans(HTMLParser):
    """Finds the widgets' byte spans with the standard library's tokenizer, not lol_html (the engine under test)."""

    def __init__(self, text: str, names: set[str]) -> None:
        super().__init__(convert_charrefs=False)
        self.text, self.names = text, names
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.outer: list[str] = []  # elements open outside any widget being cut
        self.cut: tuple[int, list[str]] | None = None  # (start offset, elements open inside the widget)
        self.spans: list[tuple[int, int]] = []

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list) -> None:
        void = tag in VOID or self.get_starttag_text().endswith("/>")
        if self.cut is not None:
            if not void:
                self.cut[1].append(tag)
        elif dict(attrs).get("data-edge-widget") in self.names:
            start = self._offset()
            if void:
                self.spans.append((start, start + len(self.get_starttag_text())))
            else:
                self.cut = (start, [tag])
        elif not void:
            self.outer.append(tag)

    def handle_endtag(self, tag: str) -> None:
        at = self._offset()
        if self.cut is not None:
            start, inner = self.cut
            if tag in inner:
                del inner[len(inner) - 1 - inner[::-1].index(tag) :]
                if not inner:  # the widget's own end tag
                    self.spans.append((start, self.text.index(">", at) + 1))
                    self.cut = None
                return
            if tag not in self.outer:
                return  # a stray end tag inside the widget
            self.spans.append((start, at))  # no end tag: the widget ends where its parent does
            self.cut = None
        if tag in self.outer:
            del self.outer[len(self.outer) - 1 - self.outer[::-1].index(tag) :]


def widget_spans(page: bytes, names: set[str]) -> list[tuple[int, int]]:
    """Byte spans of ``page`` that the widgets named ``names`` occupy (outermost only; to the end if unclosed).

    Latin-1 maps bytes to characters one to one, so character offsets are byte offsets; the
    markup's ASCII delimiters never occur as Shift_JIS trail bytes.
    """
    text = page.decode("latin-1")
    finder = _WidgetSpans(text, names)
    finder.feed(text)
    finder.close()
    if finder.cut is not None:
        finder.spans.append((finder.cut[0], len(page)))
    return sorted(finder.spans)


def widget_paths(body: bytes, names: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """Each widget named ``names`` with the tags of its ancestors, as a browser's parser builds the tree."""
    out = []
    for node in LexborHTMLParser(body).css("[data-edge-widget]"):
        name = node.attributes.get("data-edge-widget")
        if name in names:
            ancestors, parent = [], node.parent
            while parent is not None:
                ancestors.append(parent.tag)
                parent = parent.parent
            out.append((name, tuple(reversed(ancestors))))
    return out


def widgets(body: bytes) -> list[str]:
    tree = LexborHTMLParser(body)
    return [node.attributes.get("data-edge-widget") for node in tree.css("[data-edge-widget]")]


def test_corpus_has_at_least_ten_pages_with_legacy_charsets():
    assert len(PAGES) >= 10
    latin1 = (CORPUS / "01-latin1-meta-charset.html").read_bytes()
    sjis = (CORPUS / "02-shift-jis-http-equiv.html").read_bytes()
    assert b'<meta charset="iso-8859-1">' in latin1 and b"\xe9" in latin1
    assert b"charset=Shift_JIS" in sjis and "表".encode("shift_jis") in sjis and "表".encode("shift_jis")[1:] == b"\\"


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_full_tier_is_byte_identical_apart_from_the_link(path):
    page = path.read_bytes()
    for policy in (DROP_ONLY, FULL_POLICY):
        out = HtmlRewriter(policy).rewrite(page, "full", LINK, path="/", charset=charset_of(path))
        assert out.replace(LINK, b"", 1) == page
    end = re.search(rb"</body\s*>", page, re.I)
    if end is not None:
        assert out.index(LINK) == page.rindex(end.group())


@pytest.mark.parametrize("path", PAGES, ids=page_id)
@pytest.mark.parametrize("tier", ["lite", "minimal"])
def test_drops_cut_exactly_the_dropped_widgets_and_nothing_else(path, tier):
    page = path.read_bytes()
    out = HtmlRewriter(DROP_ONLY).rewrite(page, tier, LINK, charset=charset_of(path))
    assert out.count(LINK) == 1
    dropped = {w for w in ("recommendations", "ads", "video", "chat", "reviews") + (("footer",) if tier == "minimal" else ())}
    spans = widget_spans(page, dropped)
    expected, last = b"", 0
    for start, end in spans:
        expected += page[last:start]
        last = end
    expected += page[last:]
    assert out.replace(LINK, b"", 1) == expected
    for start, end in spans:
        span = page[start:end]
        tag = re.match(rb"<([A-Za-z][A-Za-z0-9]*)[^>]*data-edge-widget=[\"']?([\w-]+)", span)
        assert tag is not None, f"cut something that is not a widget: {span[:80]!r}"
        assert tag.group(2).decode() in dropped, span[:80]
        closed = re.search(rb"</" + tag.group(1) + rb"\s*>\Z", span, re.I)
        assert closed or end == len(page) or re.search(rb"</\w+\s*>\Z", span), f"cut ends inside the widget: {span[-60:]!r}"


@pytest.mark.parametrize("path", PAGES, ids=page_id)
@pytest.mark.parametrize("tier", ["lite", "minimal"])
def test_full_policy_output_parses_keeps_high_priority_widgets_and_data(path, tier):
    page = path.read_bytes()
    charset = charset_of(path)
    out = HtmlRewriter(FULL_POLICY).rewrite(page, tier, LINK, path="/p/1", charset=charset)
    # Parses as the page did: every high-priority widget sits under the same ancestors (an end tag lost or
    # left over by a cut would nest what follows elsewhere).
    assert widget_paths(out, HIGH) == widget_paths(page, HIGH)
    before, after = widgets(page), widgets(out)
    for name in HIGH:
        assert after.count(name) == before.count(name), (name, before, after)
    for name in LOW:
        assert name not in after, (name, after)
    assert "reviews" not in after
    # Everything data-like the drop-only rewrite kept is still there byte for byte.
    reference = HtmlRewriter(DROP_ONLY).rewrite(page, tier, LINK, charset=charset)
    for pattern in (
        rb"<script[^>]*application/(?:ld\+)?json[^>]*>.*?</script>",
        rb"<!--.*?-->",
        rb"<!DOCTYPE[^>]*>",
        rb"<\?xml[^>]*>",
        rb"<template.*?</template>",
        rb"<svg.*?</svg>",
        rb"<math.*?</math>",
    ):
        for block in re.findall(pattern, reference, re.S | re.I):
            assert block in out, block[:100]
    # Inline scripts that no rule targets are untouched too.
    for block in re.findall(rb"<script>.*?</script>", reference, re.S):
        assert block in out, block[:100]


@pytest.mark.parametrize("path", [CORPUS / n for n in CHARSETS], ids=page_id)
def test_legacy_charset_pages_get_no_utf8_bytes(path):
    page = path.read_bytes()
    out = HtmlRewriter(FULL_POLICY).rewrite(page, "lite", LINK, path="/", charset=charset_of(path))
    assert b'data-edge-collapsed="reviews"' in out
    # The placeholder label is ASCII with character references, valid in the page's own encoding.
    assert b"Avis clients &#8211; afficher (Zo&#235;&#8217;s picks)" in out
    assert b"\xe2\x80\x93" not in out and b"\xc3\xab" not in out
    text = out.decode(charset_of(path))  # still decodes in the declared charset
    assert "Avis clients – afficher" in LexborHTMLParser(text).css_first(".edge-collapsed").text()


def test_shift_jis_text_and_backslash_trail_bytes_survive_lite():
    path = CORPUS / "02-shift-jis-http-equiv.html"
    page = path.read_bytes()
    out = HtmlRewriter(FULL_POLICY).rewrite(page, "lite", LINK, charset="shift_jis")
    for text in ("大阪のお茶と器の店｜表参道", '"table": "表"', "煎茶 ¥1,200", "特定商取引法に基づく表記"):
        assert text.encode("shift_jis") in out, text
    assert "広告".encode("shift_jis") not in out  # the ads widget went


def test_collapse_uses_the_url_template_else_data_edge_src_else_the_full_page():
    shopify = (CORPUS / "09-shopify-like.html").read_bytes()
    out = HtmlRewriter(FULL_POLICY).rewrite(shopify, "lite", LINK, path="/products/sweater")
    assert b'<a href="/fragments/reviews?id=6621" data-edge-fragment="" rel="nofollow">' in out
    recs = Policy.from_toml('[[widgets]]\nwidget = "recommendations"\npriority = 3\nlite = "collapse"')
    out = HtmlRewriter(recs).rewrite((CORPUS / "07-template-svg-iframe.html").read_bytes(), "lite", LINK, path="/lamps")
    assert b'href="/fragments/recs?sku=L1" data-edge-fragment=""' in out
    out = HtmlRewriter(recs).rewrite((CORPUS / "12-woocommerce-like.html").read_bytes(), "lite", LINK, path="/p?x=1")
    # The placeholder keeps the section's own classes (WooCommerce's "related products" styling).
    assert b'<section class="related products edge-collapsed" data-edge-collapsed="recommendations"><a href="/__edge/tier/full?next=/p%3Fx%3D1" rel="nofollow">' in out


def test_scripts_deferred_or_dropped_but_json_ld_never_touched():
    page = (CORPUS / "09-shopify-like.html").read_bytes()
    lite = HtmlRewriter(FULL_POLICY).rewrite(page, "lite", LINK)
    assert b'<script src="https://connect.facebook.net/en_US/fbevents.js" defer=""></script>' in lite
    minimal = HtmlRewriter(FULL_POLICY).rewrite(page, "minimal", LINK)
    assert b"fbevents" not in minimal
    ld = re.search(rb'<script type="application/ld\+json">.*?</script>', page, re.S).group()
    assert ld in lite and ld in minimal
    # A module script with a matching src is deferred (harmless) and an async one is left alone.
    woo = (CORPUS / "12-woocommerce-like.html").read_bytes()
    out = HtmlRewriter(FULL_POLICY).rewrite(woo, "lite", LINK)
    assert b'<script src="https://www.google-analytics.com/analytics.js" async></script>' in out


def test_images_in_the_corpus_get_variants_lazy_loading_and_size_caps():
    page = (CORPUS / "02-shift-jis-http-equiv.html").read_bytes()
    out, report = HtmlRewriter(FULL_POLICY).rewrite_with_report(page, "lite", LINK, charset="shift_jis")
    assert b'src="/img/sencha.jpg?w=160"' in out and b'loading="lazy"' in out
    assert b"/ads/natsu.jpg" not in out  # inside the dropped ads widget
    assert report.images_rewritten == 3 and report.image_bytes == int(24000 * 0.3) + int(31000 * 0.3) + int(28000 * 0.3)
    magento = (CORPUS / "09-shopify-like.html").read_bytes()
    out, report = HtmlRewriter(FULL_POLICY).rewrite_with_report(magento, "lite", LINK)
    assert b"sweater_600x.jpg" not in out and report.images_dropped == ["//cdn.shopify.example/sweater_600x.jpg"]
