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

import html
from collections import Counter

import orjson

from edge.demo import catalog, images
from edge.demo.catalog import Product, Review, format_price
from edge.demo.layout import (
    AD_BANNERS,
    GRID_IDS,
    HERO_BANNERS,
    HOME_REVIEW_COUNT,
    RECOMMENDED_IDS,
    VIDEO_POSTER,
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

SHOP_NAME = "Maison Demo"
esc = html.escape

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


def script_json(value: object) -> str:
    """JSON for inside a ``<script>``: ``</`` and ``<!--`` cannot end or confuse it.

    >>> script_json({"a": "</script>"})
    '{"a":"<\\\\/script>"}'
    """
    return orjson.dumps(value).decode().replace("</", "<\\/").replace("<!--", "<\\u0021--")


def img(name: str, alt: str, *, css_class: str = "", lazy: bool = False, srcset: bool = False) -> str:
    """An ``<img>`` for image ``name`` with its true size and declared byte count."""
    spec = images.IMAGES[name]
    extra = f' class="{css_class}"' if css_class else ""
    if lazy:
        extra += ' loading="lazy" decoding="async"'
    if srcset:
        half = spec.width // 2
        extra += (
            f' srcset="{images.url(name, half)} {half}w, {images.url(name)} {spec.width}w"'
            f' sizes="(max-width: 600px) 50vw, {spec.width}px"'
        )
    return (
        f'<img src="{images.url(name)}" width="{spec.width}" height="{spec.height}" '
        f'alt="{esc(alt)}"{extra} data-edge-bytes="{spec.bytes}">'
    )


def _stars(rating: float) -> str:
    full = round(rating)
    return "★" * full + "☆" * (5 - full)


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


def header() -> str:
    """Logo, main navigation (with an unclosed ``<li>`` and an ``&amp;`` in a URL) and cart link."""
    return f"""<header class="site-header" data-edge-widget="header">
<a class="logo" href="/" title="{SHOP_NAME} home">{img("logo.png", SHOP_NAME)}</a>
<nav class="main-nav" aria-label="Main">
<ul>
<li><a href="/search?q=kitchen">Kitchen</a>
<li><a href="/search?q=home">Home</a>
<li><a href="/search?q=bags">Bags</a>
<li><a href="/search?q=textiles">Textiles</a>
<li><a href="/search?q=outdoor">Outdoor</a>
<li><a href="/search?q=&amp;sort=price">Sale&nbsp;%</a>
</ul>
</nav>
<a class="cart-link" href="/cart">Cart</a>
</header>"""


def search_form(query: str = "") -> str:
    """The search box: ``<form action="/search" method="get">`` with ``<input name="q">``."""
    return f"""<div class="search-bar" data-edge-widget="search">
<form action="/search" method="get" role="search">
<label for="q" class="visually-hidden">Search the shop</label>
<input id="q" name="q" type="search" value="{esc(query)}" placeholder="Search {len(catalog.PRODUCTS)} products&hellip;" autocomplete=off>
<button type="submit">Search</button>
</form>
</div>"""


def product_card(p: Product, *, image: str = "thumb", lazy: bool = False, srcset: bool = False) -> str:
    """One product card: image, name, price, rating and an "Add to cart" form."""
    picture = img(f"product-{p.id:02d}-{image}.png", p.name, lazy=lazy, srcset=srcset)
    return f"""<article class="card" data-product-id={p.id}>
<a href="/product/{p.id}">{picture}</a>
<h3><a href="/product/{p.id}">{esc(p.name)}</a></h3>
<p class="price">{format_price(p.price_cents)}</p>
<p class="rating" aria-label="Rated {p.rating} out of 5">{_stars(p.rating)} <span>({p.rating})</span></p>
<form class="add-to-cart" action="/cart" method="post"><input type="hidden" name="product_id" value="{p.id}"><button type="submit">Add to cart</button></form>
</article>"""


def product_grid(products: list[Product], heading: str) -> str:
    """The main product grid (thumbnails of 12-20 KB)."""
    cards = "\n".join(product_card(p) for p in products)
    if not products:
        cards = "<p class='empty'>No products match. Try &#8216;mug&#8217; or &#8216;bag&#8217;.</p>"
    return f"""<section class="product-grid" data-edge-widget="product-grid">
<h2>{heading}</h2>
<div class="grid">
{cards}
</div>
</section>"""


def mini_cart() -> str:
    """Mini cart summary. Static (no per-shopper data) so the home page stays cacheable.

    Its script builds a toast with a ``"<\\/p>"`` inside a JS string.
    """
    return """<aside class="mini-cart" data-edge-widget="cart">
<h2>Your cart</h2>
<p>Items you add appear in your cart. <a href="/cart">View cart &amp; checkout</a></p>
<p class="shipping">Free shipping over 50&nbsp;&euro; &middot; Returns within 30&nbsp;days</p>
<script>
document.addEventListener("submit", function (event) {
  if (!event.target.matches(".add-to-cart")) return;
  var toast = "<p class=\\"toast\\" role=\\"status\\">Added to cart &#8212; thank you!<\\/p>";
  document.querySelector(".mini-cart").insertAdjacentHTML("beforeend", toast);
});
</script>
</aside>"""


def footer() -> str:
    """Site footer: links (unclosed ``<li>``), entities, legal text."""
    return f"""<footer class="site-footer" data-edge-widget="footer">
<div class="cols">
<div><h3>Help</h3><ul><li><a href="/cart">Your cart</a><li><a href="/search?q=">All products</a><li><a href='/search?q=gift'>Gift cards</a></ul></div>
<div><h3>About</h3><ul><li>Small workshops, fair prices<li>Plastic-free packaging<li>Terms &amp; conditions</ul></div>
<div><h3>Contact</h3><p>Mon&ndash;Fri 9:00&ndash;18:00<BR>hello@example.com</p></div>
</div>
<p>&copy; 2024 {SHOP_NAME} &middot; Prices include VAT &middot; Shipping from 4,90&nbsp;&euro;</p>
</footer>"""


# ---------------------------------------------------------------- widgets (low priority)


def carousel() -> str:
    """Hero banners (120-200 KB each) with ``srcset`` variants."""
    slides = "\n".join(
        f'<figure class="slide"><a href="/search?q=">{img(name, title, srcset=True)}</a>'
        f"<figcaption>{esc(title)}</figcaption></figure>"
        for name, title in HERO_BANNERS
    )
    return f"""<section class="carousel" data-edge-widget="carousel" data-autoplay=5000 aria-roledescription="carousel">
<div class="slides">
{slides}
</div>
</section>"""


def recommendations(products: list[Product], heading: str = "Recommended for you") -> str:
    """Recommendation cards with larger images (20-40 KB)."""
    cards = "\n".join(product_card(p, image="card", lazy=True, srcset=True) for p in products)
    return f"""<section class="recommendations" data-edge-widget="recommendations">
<h2>{heading}</h2>
<div class="grid">
{cards}
</div>
</section>"""


def _review(r: Review, *, with_product: bool) -> str:
    about = ""
    if with_product:
        p = catalog.product(r.product_id)
        about = f'<p class="about">About <a href="/product/{p.id}">{esc(p.name)}</a></p>\n'
    return f"""<article class="review" id="review-{r.id}" itemscope itemtype="https://schema.org/Review">
<header><strong class="author" itemprop="author">{esc(r.author)}</strong> <span class="stars" aria-label="{r.rating} out of 5">{_stars(r.rating)}</span> <time datetime="{r.date.isoformat()}">{r.date.day}&nbsp;{r.date:%B %Y}</time></header>
<h4 itemprop="name">{esc(r.title)}</h4>
{about}<p itemprop="reviewBody">{esc(r.body)}</p>
<footer><button type="button" class="helpful" data-review="{r.id}">Helpful ({r.helpful})</button> <a href="#report-{r.id}" rel="nofollow">Report</a></footer>
</article>"""


def reviews(items: list[Review], heading: str, *, with_product: bool = True) -> str:
    """A list of customer reviews: the text-heavy widget holding most HTML bytes."""
    if items:
        average = sum(r.rating for r in items) / len(items)
        summary = f"{average:.1f} out of 5 from {len(items)} reviews. Shoppers&#8217; words, unedited."
    else:
        summary = "No reviews yet."
    body = "\n".join(_review(r, with_product=with_product) for r in items)
    return f"""<section class="reviews" data-edge-widget="reviews" id="reviews">
<h2>{heading}</h2>
<p class="summary">{summary}</p>
<!-- reviews are moderated; see /help/reviews -->
{body}
</section>"""


def video() -> str:
    """A ``<video>`` with a ``poster`` attribute, and the same poster as a fallback ``<img>``."""
    name, title = VIDEO_POSTER
    spec = images.IMAGES[name]
    return f"""<section class="video" data-edge-widget="video">
<h2>{esc(title)}</h2>
<video controls preload="none" width="{spec.width}" height="{spec.height}" poster="{images.url(name)}" data-src="/static/video/lookbook.mp4">
Your browser cannot play this video. {img(name, title, css_class="poster", srcset=True)}
</video>
</section>"""


def ads() -> str:
    """Sponsored banners (40-80 KB each)."""
    banners = "\n".join(
        f'<a class="ad" href="/search?q=" rel="sponsored nofollow">{img(name, title, lazy=True)}</a>'
        for name, title in AD_BANNERS
    )
    return f"""<aside class="ads" data-edge-widget="ads">
<p class="ad-label">Advertisement</p>
{banners}
</aside>"""


def chat() -> str:
    """A chat bubble: ``<template>`` plus an inline script with ``"<\\/div>"`` in its strings."""
    return """<div class="chat" data-edge-widget="chat">
<button type="button" class="chat-open" aria-expanded="false">Chat with us</button>
<div class="chat-panel" hidden><div class="chat-log"></div>
<form class="chat-form"><input name="message" aria-label="Message"><button type="submit">Send</button></form></div>
<template id="chat-bubble"><div class="chat-bubble"><span class="who"></span> <span class="text"></span></div></template>
<script>
(function () {
  var greeting = "<div class=\\"chat-bubble bot\\">Hi! Questions about sizes or delivery?<\\/div>";
  var offline = '<div class="chat-bubble bot">We\\'re offline until 9:00 &#8212; leave a message.<\\/div>';
  var open = document.querySelector(".chat-open"), panel = document.querySelector(".chat-panel");
  open.addEventListener("click", function () {
    panel.hidden = !panel.hidden;
    open.setAttribute("aria-expanded", String(!panel.hidden));
    var hour = new Date().getHours();
    panel.querySelector(".chat-log").innerHTML = hour >= 9 && hour < 18 ? greeting : offline;
  });
})();
</script>
</div>"""


# ---------------------------------------------------------------- shop widgets used on one page


def product_detail(p: Product) -> str:
    """The ``product`` widget: big image (~60 KB), price, description, add-to-cart form."""
    return f"""<section class="product-detail" data-edge-widget="product" itemscope itemtype="https://schema.org/Product">
{img(f"product-{p.id:02d}-large.png", p.name)}
<div class="buy-box">
<h1 itemprop="name">{esc(p.name)}</h1>
<p class="price" itemprop="offers" itemscope itemtype="https://schema.org/Offer"><meta itemprop="priceCurrency" content="EUR"><span itemprop="price" content="{p.price}">{format_price(p.price_cents)}</span></p>
<p class="rating">{_stars(p.rating)} <a href="#reviews">{p.rating} ({len(p.reviews)} reviews)</a></p>
<p itemprop="description">{esc(p.description)}</p>
<form class="add-to-cart" action="/cart" method="post">
<input type="hidden" name="product_id" value="{p.id}">
<button type="submit">Add to cart &ndash; {format_price(p.price_cents)}</button>
</form>
<p class="delivery">In stock. Delivery in 2&ndash;4 working days.</p>
</div>
</section>"""


def parse_cart(cookie: str | None) -> Counter[int]:
    """Product id -> quantity from the ``cart`` cookie (``"3.3.7"`` is two of #3, one of #7).

    Unknown ids and junk are ignored.

    >>> parse_cart("3.3.7.x.999")
    Counter({3: 2, 7: 1})
    """
    ids = (int(t) for t in (cookie or "").split(".") if t.isdigit())
    return Counter(i for i in ids if catalog.product_by_id(i) is not None)


def cart_widget(cart: Counter[int]) -> str:
    """The full cart: one table row per product, total and checkout link."""
    if not cart:
        content = '<p>Your cart is empty. <a href="/">Continue shopping</a>.</p>'
    else:
        rows = []
        total = 0
        for pid, qty in sorted(cart.items()):
            p = catalog.product(pid)
            total += qty * p.price_cents
            rows.append(
                f'<tr><td><a href="/product/{p.id}">{img(f"product-{p.id:02d}-thumb.png", p.name)}</a></td>'
                f'<td><a href="/product/{p.id}">{esc(p.name)}</a></td><td>{qty}</td>'
                f"<td>{format_price(qty * p.price_cents)}</td></tr>"
            )
        content = f"""<table class="cart-table">
<thead><tr><th></th><th>Product</th><th>Qty</th><th>Subtotal</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
<tfoot><tr><th colspan="3">Total</th><th>{format_price(total)}</th></tr></tfoot>
</table>
<p><a class="checkout" href="/checkout">Proceed to checkout &rarr;</a></p>"""
    count = sum(cart.values())
    return f"""<section class="mini-cart" data-edge-widget="cart">
<h1>Your cart ({count} item{"" if count == 1 else "s"})</h1>
{content}
</section>"""


# ---------------------------------------------------------------- pages


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
