"""The demo storefront's widgets: each function returns one widget's markup, its outermost element
marked ``data-edge-widget="NAME"`` (pages assemble them: :mod:`edge.demo.pages`).

Every ``<img>`` gets ``width``, ``height``, ``alt`` and ``data-edge-bytes`` (the exact image size,
see :mod:`edge.demo.images`). The markup is deliberately a bit messy, like real shops (entities,
comments, scripts whose strings hold end tags, unclosed ``<li>``): the rewriter must copy it through.

    >>> 'data-edge-widget="carousel"' in carousel()
    True
"""

from __future__ import annotations

import html
from collections import Counter

import orjson

from edge.demo import catalog, images
from edge.demo.catalog import Product, Review, format_price
from edge.demo.layout import AD_BANNERS, HERO_BANNERS, VIDEO_POSTER

SHOP_NAME = "Maison Demo"
esc = html.escape


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
