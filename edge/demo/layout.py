"""Widget names and priorities of the demo storefront, and the app's home-screen layout.

Pages mark each widget's outermost element with ``data-edge-widget="NAME"``.
Priorities mirror ``policies/demo.toml`` (0 = first to go .. 100 = essential):
the light page keeps :data:`HIGH_PRIORITY` and drops :data:`LOW_PRIORITY`.

    >>> sorted(HIGH_PRIORITY)
    ['cart', 'footer', 'header', 'product', 'product-grid', 'search']
    >>> [s["widget"] for s in home_layout()["sections"]][:3]
    ['header', 'search', 'carousel']
"""

from __future__ import annotations

from edge.demo import catalog, images

__all__ = ["HIGH_PRIORITY", "HOME_WIDGETS", "LOW_PRIORITY", "WIDGET_PRIORITY", "home_layout"]

#: Every widget name used by the storefront, with its priority.
WIDGET_PRIORITY: dict[str, int] = {
    "header": 100,
    "search": 95,
    "product-grid": 90,
    "product": 90,
    "cart": 90,
    "footer": 60,
    "reviews": 40,
    "recommendations": 30,
    "carousel": 20,
    "video": 10,
    "chat": 5,
    "ads": 1,
}
#: Kept on the light page.
HIGH_PRIORITY = frozenset(w for w, p in WIDGET_PRIORITY.items() if p >= 50)
#: Dropped on the light page.
LOW_PRIORITY = frozenset(WIDGET_PRIORITY) - HIGH_PRIORITY

#: Widgets of the home page, in page order.
HOME_WIDGETS = (
    "header", "search", "carousel", "product-grid", "recommendations", "video",
    "reviews", "cart", "ads", "footer", "chat",
)  # fmt: skip

#: Which products and images each home widget shows (shared by the HTML page and the JSON API).
GRID_IDS = tuple(range(1, 13))
RECOMMENDED_IDS = tuple(range(13, 25))
HERO_BANNERS = (
    ("hero-1.png", "Summer kitchen sale: up to 40% off"),
    ("hero-2.png", "New in: Ōsaka tea collection"),
    ("hero-3.png", "Free delivery over 50 €"),
    ("hero-4.png", "Bags for every commute"),
)
AD_BANNERS = (
    ("ad-1.png", "Café & Co. coffee subscription"),
    ("ad-2.png", "Zürich Outdoor Week"),
    ("ad-3.png", "Gift cards from 10 €"),
)
VIDEO_POSTER = ("video-poster.png", "Autumn lookbook")
HOME_REVIEW_COUNT = 110


def _item(item_id: str | int, title: str, image: str | None) -> dict:
    return {
        "id": item_id,
        "title": title,
        "image": images.url(image) if image else None,
        "image_bytes": images.IMAGES[image].bytes if image else 0,
    }


def home_layout() -> dict:
    """The native app's home screen: ``{"sections": [{"widget", "priority", "items"}]}``.

    Same widgets and images as the HTML home page. Items without an image
    (search, cart...) have ``"image": None`` and ``"image_bytes": 0``.
    """
    products = {p.id: p for p in catalog.PRODUCTS}
    items: dict[str, list[dict]] = {
        "header": [_item("logo", "Maison Demo", "logo.png")],
        "carousel": [_item(n.removesuffix(".png"), t, n) for n, t in HERO_BANNERS],
        "product-grid": [
            _item(i, products[i].name, f"product-{i:02d}-thumb.png") for i in GRID_IDS
        ],
        "recommendations": [
            _item(i, products[i].name, f"product-{i:02d}-card.png") for i in RECOMMENDED_IDS
        ],
        "video": [_item("lookbook", VIDEO_POSTER[1], VIDEO_POSTER[0])],
        "reviews": [
            _item(r.id, r.title, f"product-{r.product_id:02d}-thumb.png")
            for r in catalog.REVIEWS[:HOME_REVIEW_COUNT]
        ],
        "ads": [_item(n.removesuffix(".png"), t, n) for n, t in AD_BANNERS],
    }
    return {
        "sections": [
            {"widget": w, "priority": WIDGET_PRIORITY[w], "items": items.get(w, [])}
            for w in HOME_WIDGETS
        ]
    }
