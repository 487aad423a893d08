"""Deterministic product data for the demo storefront.

Everything is generated once at import from ``random.Random(42)``, in a fixed
order, so every process sees the same 60 products, prices, ratings and
reviews (and therefore serves byte-identical pages).

    >>> len(PRODUCTS)
    60
    >>> product_by_id(2).name
    'Café crème espresso cups'
    >>> product_by_id(999) is None
    True
    >>> [p.id for p in search("ōsaka")]
    [5]
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass

__all__ = ["PRODUCTS", "REVIEWS", "Product", "Review", "format_price", "product", "product_by_id", "search"]


@dataclass(frozen=True, slots=True)
class Review:
    """One customer review of a product."""

    id: int
    product_id: int
    author: str
    rating: int  # 1..5 stars
    title: str
    body: str
    date: datetime.date
    helpful: int


@dataclass(frozen=True, slots=True)
class Product:
    """A catalog entry. The ``*_bytes`` fields are the exact sizes of its three PNG images."""

    id: int
    name: str
    category: str
    price_cents: int
    rating: float  # 1.0 .. 5.0, one decimal
    description: str
    thumb_bytes: int  # grid thumbnail, 12-20 KB
    card_bytes: int  # recommendation card image, 20-40 KB
    large_bytes: int  # product page hero image, ~60 KB
    reviews: tuple[Review, ...]

    @property
    def price(self) -> str:
        """Price in euros as plain text, e.g. ``'12.99'`` (for JSON and JSON-LD)."""
        return f"{self.price_cents // 100}.{self.price_cents % 100:02d}"


def format_price(cents: int) -> str:
    """Price as HTML, European style, with entities a rewriter must keep intact.

    >>> format_price(123456)
    '1&nbsp;234,56&nbsp;&euro;'
    """
    euros = f"{cents // 100:,}".replace(",", "&nbsp;")
    return f"{euros},{cents % 100:02d}&nbsp;&euro;"


# Fixed names put non-ASCII text where it is most visible (grid positions 2, 5, 9...).
_FIXED_NAMES = {
    2: ("Café crème espresso cups", "Kitchen"),
    5: ("Ōsaka tea set", "Kitchen"),
    9: ("Zürich city backpack", "Bags"),
    14: ("Crème brûlée torch", "Kitchen"),
    21: ("Smørrebrød serving board", "Kitchen"),
    33: ("Señora piñata lamp", "Home"),
    47: ("Kraków linen apron", "Textiles"),
}
_CATEGORIES = {
    "Kitchen": ["mug", "kettle", "teapot", "chef's knife", "cutting board", "pepper mill", "salad bowl"],
    "Home": ["table lamp", "throw blanket", "scented candle", "wall clock", "vase", "doormat", "planter"],
    "Bags": ["tote bag", "weekender", "laptop sleeve", "crossbody bag", "wallet", "duffel"],
    "Textiles": ["bath towel", "linen napkins", "cushion cover", "tea towel", "bed sheet set"],
    "Outdoor": ["camping stool", "picnic blanket", "water bottle", "trail lantern", "hammock"],
}
_ADJECTIVES = [
    "Nordic", "Classic", "Handmade", "Organic", "Vintage", "Minimal", "Rustic", "Coastal",
    "Alpine", "Urban", "Harbour", "Meadow", "Granite", "Copper", "Walnut", "Indigo",
]
_MATERIALS = ["stoneware", "oak", "recycled cotton", "brushed steel", "linen", "cork", "glass", "bamboo"]
_AUTHORS = [
    "Anaïs D.", "José M.", "Søren K.", "Zoë P.", "Łukasz W.", "Grace H.", "Tom B.", "Priya S.",
    "Müller F.", "Aoife N.", "Chen L.", "Olu A.", "Maria G.", "Björn E.", "Sam R.", "Fatima Z.",
]
_TITLES = [
    "Exactly as described", "Lovely quality", "Good value for money", "Would buy again",
    "Not quite what I expected", "A thoughtful gift", "Fast delivery & great packaging",
    "Solid, but pricey", "My new favourite", "Does the job", "Better than the photos",
]
_OPENERS = [
    "I bought this after reading a lot of reviews and I am glad I did.",
    "Arrived two days earlier than promised, well packed in recycled cardboard.",
    "We have been using it every day for about three months now.",
    "This was a present for my sister, who is very hard to please.",
    "The colour is slightly warmer than on my screen, which I actually prefer.",
    "I was hesitant because of the price, but the quality shows.",
    "Ordered two so that we would have a spare, no regrets.",
]
_MIDDLES = [
    "The {material} feels sturdy and the finish is even, with no rough edges anywhere.",
    "It is a little heavier than I thought, which makes it feel well made rather than flimsy.",
    "Cleaning is easy: a quick rinse and it looks new again, even after the dishwasher.",
    "The size is just right for a small flat, and it does not take up much room on the shelf.",
    "Customer service answered my question about the {material} within an hour, in plain language.",
    "Compared with the cheaper one I had before, the difference in {material} quality is obvious.",
    "The instructions were short and clear, and assembly took less than ten minutes.",
    "My only complaint is that the box was far bigger than needed, but that is a minor point.",
    "It matches the rest of our {material} pieces nicely and gets compliments from guests.",
]
_CLOSERS = [
    "Four stars only because delivery tracking was vague.",
    "Highly recommended if you care about things that last.",
    "I would buy it again without thinking twice.",
    "Overall a solid purchase, though not life-changing.",
    "Keep an eye out for the seasonal sale, it is even better value then.",
    "Five stars from our whole household.",
]


def _build() -> tuple[tuple[Product, ...], tuple[Review, ...]]:
    rng = random.Random(42)
    products: list[Product] = []
    all_reviews: list[Review] = []
    review_id = 1
    used = {name for name, _ in _FIXED_NAMES.values()}
    categories = list(_CATEGORIES)
    for pid in range(1, 61):
        if pid in _FIXED_NAMES:
            name, category = _FIXED_NAMES[pid]
        else:
            name = ""
            while not name or name in used:  # unique names make search results unambiguous
                category = rng.choice(categories)
                noun = rng.choice(_CATEGORIES[category])
                name = f"{rng.choice(_ADJECTIVES)} {noun}"
        used.add(name)
        material = rng.choice(_MATERIALS)
        price_cents = rng.randrange(5, 250) * 100 - (1 if pid % 3 else 5)  # 12.99, 39.95...
        rating = round(rng.uniform(3.0, 5.0), 1)
        description = (
            f"Our {name.lower()} is made from {material} by a small workshop we have worked with "
            f"for years. Designed for everyday use, it is built to last and easy to care for. "
            f"Ships in plastic-free packaging; free returns within 30 days."
        )
        reviews: list[Review] = []
        for _ in range(rng.randint(3, 8)):
            body = " ".join(
                [rng.choice(_OPENERS)]
                + [m.format(material=material) for m in rng.sample(_MIDDLES, rng.randint(2, 4))]
                + [rng.choice(_CLOSERS)]
            )
            reviews.append(
                Review(
                    id=review_id,
                    product_id=pid,
                    author=rng.choice(_AUTHORS),
                    rating=max(1, min(5, round(rating + rng.uniform(-1.5, 1.0)))),
                    title=rng.choice(_TITLES),
                    body=body,
                    date=datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(600)),
                    helpful=rng.randrange(0, 120),
                )
            )
            review_id += 1
        all_reviews.extend(reviews)
        products.append(
            Product(
                id=pid,
                name=name,
                category=category,
                price_cents=price_cents,
                rating=rating,
                description=description,
                thumb_bytes=rng.randrange(12_000, 20_000),
                card_bytes=rng.randrange(20_000, 36_000),
                large_bytes=rng.randrange(56_000, 64_000),
                reviews=tuple(reviews),
            )
        )
    return tuple(products), tuple(all_reviews)


#: All products, ids 1..60 in order.
PRODUCTS, REVIEWS = _build()
_BY_ID = {p.id: p for p in PRODUCTS}


def product_by_id(product_id: int) -> Product | None:
    """The product with this id, or ``None``."""
    return _BY_ID.get(product_id)


def product(product_id: int) -> Product:
    """The product with this id, which must exist (the catalogue's own ids; KeyError otherwise)."""
    return _BY_ID[product_id]


def search(query: str) -> list[Product]:
    """Products whose name, category or description contains every word of ``query``.

    Case-insensitive (``casefold``, so ``"zurich"`` does not match ``"Zürich"``
    but ``"ZÜRICH"`` does). An empty query matches everything.
    """
    words = query.casefold().split()
    return [
        p
        for p in PRODUCTS
        if all(w in f"{p.name} {p.category} {p.description}".casefold() for w in words)
    ]
