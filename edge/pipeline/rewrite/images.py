"""An image's size as the page declares it: what the byte budget and ``max_bytes`` image rules count.

Edge never fetches an image to weigh it; the HTML rewriter asks :func:`declared_image_bytes`
for each ``<img>`` it meets, with the route's ``[sizes] bytes_per_pixel``.
"""

from __future__ import annotations

from typing import Any

from edge.pipeline.policy.schema import DEFAULT_BYTES_PER_PIXEL

__all__ = ["declared_image_bytes"]


def declared_image_bytes(attributes: Any, bytes_per_pixel: float = DEFAULT_BYTES_PER_PIXEL) -> int | None:
    """An image's size as the page declares it: ``data-edge-bytes``, else width × height × bytes per pixel.

    ``attributes`` is anything with ``get(name)`` (or a lol_html element). None when neither is given.

    >>> declared_image_bytes({"data-edge-bytes": "1200", "width": "10", "height": "10"})
    1200
    >>> declared_image_bytes({"width": "400px", "height": "300"}, 0.5)
    60000
    >>> declared_image_bytes({"width": "400"}) is None
    True
    """
    get = attributes.get_attribute if hasattr(attributes, "get_attribute") else attributes.get
    declared = _int(get("data-edge-bytes"))
    if declared is not None:
        return declared
    width, height = _int(get("width")), _int(get("height"))
    if width is None or height is None:
        return None
    return int(width * height * bytes_per_pixel)


def _int(value: str | None) -> int | None:
    """A size attribute as a whole number (``"400px"`` → 400); None for anything else."""
    if value is None:
        return None
    value = value.strip().removesuffix("px").strip()
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return int(value)
