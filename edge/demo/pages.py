"""HTML rendering for the demo storefront: plain f-strings and ``html.escape``.

Each widget function returns the markup of one widget, its outermost element
marked ``data-edge-widget="NAME"``; page functions assemble widgets into full
HTML5 documents. Every ``<img>`` gets ``width``, ``height``, ``alt`` and
``data-edge-bytes`` (the exact image size, see :mod:`edge.demo.images`).

The markup is deliberately a bit messy, like real shops, because the proxy's
rewriter must copy it through untouched: entities (``&amp;``, ``&nbsp;``,
``&euro;``, ``&#8217;``), comments and an IE conditional comment, JSON-LD,
a ``window.__STATE__`` blob, scripts whose strings hold ``<\\/div>`` and
``<\\/p>``, ``<template>``, ``<noscript>``, unclosed ``<li>``, unquoted and
single-quoted attributes, and non-ASCII text.

    >>> page = home_page()
    >>> page.startswith("<!DOCTYPE html>"), 'data-edge-widget="carousel"' in page
    (True, True)
    >>> "&lt;b&gt;" in search_page("<b>")
    True
"""

from __future__ import annotations

from collections import Counter

from edge.demo import catalog, images
from edge.demo.catalog import Product
from edge.demo.layout import GRID_IDS, HOME_REVIEW_COUNT, RECOMMENDED_IDS
from edge.demo.widgets import (
    SHOP_NAME,
    ads,
    carousel,
    cart_widget,
    chat,
    esc,
    footer,
    header,
    mini_cart,
    product_detail,
    product_grid,
    recommendations,
    reviews,
    script_json,
    search_form,
    video,
)

__all__ = [
    "cart_page",
    "home_page",
    "not_found_page",
    "parse_cart",
    "product_page",
    "search_page",
    "simple_page",
]


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#f6f5f2}
a{color:#0b5cad;text-decoration:none}a:hover{text-decoration:underline}
img{max-width:100%;height:auto;display:block;background:#ddd}
.site-header{display:flex;flex-wrap:wrap;align-items:center;gap:1rem;padding:.6rem 1rem;background:#fff;border-bottom:1px solid #e3e1dc}
.logo img{width:108px}
.main-nav ul{display:flex;flex-wrap:wrap;gap:.9rem;list-style:none;margin:0;padding:0}
.cart-link{margin-left:auto;font-weight:600}
.page{max-width:1180px;margin:0 auto;padding:0 1rem}
.search-bar form{display:flex;gap:.5rem;margin:1rem 0}
.search-bar input{flex:1;padding:.55rem .7rem;border:1px solid #bbb;border-radius:6px;font-size:1rem}
button{padding:.5rem .9rem;border:0;border-radius:6px;background:#1d1d1f;color:#fff;font-size:.95rem;cursor:pointer}
.carousel .slides{display:grid;grid-auto-flow:column;grid-auto-columns:100%;overflow-x:auto;scroll-snap-type:x mandatory;border-radius:10px}
.carousel figure{margin:0;position:relative;scroll-snap-align:start}
.carousel img{width:100%;aspect-ratio:420/117;object-fit:cover}
.carousel figcaption{position:absolute;left:1rem;bottom:1rem;background:rgba(0,0,0,.65);color:#fff;padding:.4rem .8rem;border-radius:6px;font-size:1.2rem}
.columns{display:grid;grid-template-columns:1fr 280px;gap:1.5rem;margin-top:1.5rem}
@media (max-width:800px){.columns{grid-template-columns:1fr}}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:1rem}
.card{background:#fff;border-radius:10px;padding:.7rem;box-shadow:0 1px 3px rgba(0,0,0,.08);display:flex;flex-direction:column}
.card img{width:100%;aspect-ratio:1;object-fit:cover;border-radius:6px}
.card h3{font-size:1rem;margin:.5rem 0 .2rem}
.price{font-weight:700;margin:.2rem 0}
.rating{color:#b7791f;margin:0 0 .5rem;font-size:.9rem}
.add-to-cart{margin-top:auto}
.reviews .review{background:#fff;border-radius:8px;padding:.8rem 1rem;margin:.7rem 0}
.review h4{margin:.3rem 0}.review time{color:#666;font-size:.85rem}
.video video,.video img{width:100%;border-radius:10px}
.mini-cart,.ads{background:#fff;border-radius:10px;padding:1rem;margin-bottom:1rem}
.ads img{margin:.5rem 0;border-radius:6px;width:100%}
.ad-label{font-size:.75rem;text-transform:uppercase;color:#888;margin:0}
.product-detail{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:2rem;margin:1.5rem 0}
.product-detail img{width:100%;border-radius:10px}
.cart-table{width:100%;border-collapse:collapse;background:#fff}
.cart-table td,.cart-table th{padding:.5rem;border-bottom:1px solid #eee;text-align:left}
.chat{position:fixed;right:1rem;bottom:1rem}
.site-footer{margin-top:2rem;padding:1.5rem 1rem;background:#1d1d1f;color:#ccc;font-size:.9rem}
.site-footer a{color:#fff}
.site-footer .cols{display:flex;flex-wrap:wrap;gap:3rem;max-width:1180px;margin:0 auto}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
""".strip()


# ---------------------------------------------------------------- helpers




def _document(title: str, body: str, *, body_class: str, head_extra: str = "", state: dict | None = None) -> str:
    state_script = (
        f"<script>window.__STATE__ = {script_json(state)};</script>\n" if state is not None else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} &ndash; {SHOP_NAME}</title>
<meta name="description" content="Home, kitchen &amp; travel goods from small workshops. Free returns.">
<link rel="icon" href="data:,">
<!-- storefront build 2024.11.3; rendered by edge.demo -->
<style>
{_CSS}
</style>
{head_extra}</head>
<body class="{body_class}">
<!--[if lt IE 9]><p class="browserupgrade">You are using an <strong>outdated</strong> browser. Please <a href="https://browsehappy.com/">upgrade</a>.</p><![endif]-->
<noscript><p class="notice">Chat and carousel autoplay need JavaScript; shopping works without it.</p></noscript>
{body}
{state_script}</body>
</html>
"""


# ---------------------------------------------------------------- widgets (high priority)


def parse_cart(cookie: str | None) -> Counter[int]:
    """Product id -> quantity from the ``cart`` cookie (``"3.3.7"`` is two of #3, one of #7).

    Unknown ids and junk are ignored.

    >>> parse_cart("3.3.7.x.999")
    Counter({3: 2, 7: 1})
    """
    ids = (int(t) for t in (cookie or "").split(".") if t.isdigit())
    return Counter(i for i in ids if catalog.product_by_id(i) is not None)


def _json_ld(products: list[Product]) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "ItemList",
        "itemListElement": [
            {
                "@type": "ListItem",
                "position": i,
                "item": {
                    "@type": "Product",
                    "name": p.name,
                    "url": f"/product/{p.id}",
                    "image": images.url(f"product-{p.id:02d}-thumb.png"),
                    "offers": {"@type": "Offer", "price": p.price, "priceCurrency": "EUR"},
                    "aggregateRating": {"@type": "AggregateRating", "ratingValue": p.rating, "reviewCount": len(p.reviews)},
                },
            }
            for i, p in enumerate(products, 1)
        ],
    }
    return f'<script type="application/ld+json">{script_json(data)}</script>\n'


def home_page() -> str:
    """The home page: every widget; ~130 KB of HTML referencing ~1.4 MB of images."""
    grid = [catalog.product(i) for i in GRID_IDS]
    recs = [catalog.product(i) for i in RECOMMENDED_IDS]
    body = f"""{header()}
<main class="page">
{search_form()}
{carousel()}
<div class="columns">
<div class="col-main">
{product_grid(grid, "Bestsellers this week")}
{recommendations(recs)}
{video()}
{reviews(list(catalog.REVIEWS[:HOME_REVIEW_COUNT]), "What shoppers say")}
</div>
<div class="col-side">
{mini_cart()}
{ads()}
</div>
</div>
</main>
{footer()}
{chat()}
<template id="cart-line"><tr><td class="name"></td><td class="qty"></td><td class="price"></td></tr></template>"""
    state = {
        "page": "home",
        "ab": "grid-v2",
        "currency": "EUR",
        "grid": list(GRID_IDS),
        "features": {"chat": True, "carouselAutoplay": 5000, "lazyImages": True},
        "i18n": {"added": "Added to cart — thanks!", "close": "Schließen", "tagline": "</div> is just text here"},
    }
    return _document("Home & kitchen goods", body, body_class="home", head_extra=_json_ld(grid), state=state)


def search_page(query: str) -> str:
    """Search results for ``query`` (all products, first 24, when empty)."""
    found = catalog.search(query)
    shown = found[:24]
    heading = f"{len(found)} results for &#8220;{esc(query)}&#8221;" if query.strip() else "All products"
    recs = [catalog.product(i) for i in RECOMMENDED_IDS[:6]]
    body = f"""{header()}
<main class="page">
{search_form(query)}
<div class="columns">
<div class="col-main">
{product_grid(shown, heading)}
{recommendations(recs, "You might also like")}
</div>
<div class="col-side">
{ads()}
</div>
</div>
</main>
{footer()}"""
    title = f"Search: {query}" if query.strip() else "All products"
    return _document(title, body, body_class="search", state={"page": "search", "q": query, "results": len(found)})


def product_page(p: Product) -> str:
    """Product detail page: product, its reviews, 8 related products and the video."""
    related = [catalog.PRODUCTS[(p.id + k) % len(catalog.PRODUCTS)] for k in range(8)]
    body = f"""{header()}
<main class="page">
{search_form()}
{product_detail(p)}
{reviews(list(p.reviews), f"Reviews of {esc(p.name)}", with_product=False)}
{recommendations(related, "Customers also bought")}
{video()}
</main>
{footer()}"""
    ld = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": p.name,
        "description": p.description,
        "image": images.url(f"product-{p.id:02d}-large.png"),
        "offers": {"@type": "Offer", "price": p.price, "priceCurrency": "EUR", "availability": "https://schema.org/InStock"},
    }
    head = f'<script type="application/ld+json">{script_json(ld)}</script>\n'
    return _document(p.name, body, body_class="product", head_extra=head, state={"page": "product", "id": p.id})


def cart_page(cart: Counter[int]) -> str:
    """The cart page."""
    body = f"""{header()}
<main class="page">
{cart_widget(cart)}
</main>
{footer()}"""
    return _document("Your cart", body, body_class="cart")


def not_found_page(path: str) -> str:
    """The 404 page (with search, so the shopper can carry on)."""
    body = f"""{header()}
<main class="page">
<h1>Page not found</h1>
<p>Sorry, we couldn&#8217;t find <code>{esc(path)}</code>. Try a search instead:</p>
{search_form()}
</main>
{footer()}"""
    return _document("Not found", body, body_class="not-found")


def simple_page(title: str, text: str) -> str:
    """A tiny standalone page for the test helper routes (no widgets, no images).

    >>> "<h1>Hi &amp; bye</h1>" in simple_page("Hi & bye", "x")
    True
    """
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{esc(title)}</title></head>
<body>
<h1>{esc(title)}</h1>
<p>{esc(text)}</p>
</body>
</html>
"""
