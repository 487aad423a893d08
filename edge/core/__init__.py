"""The vocabulary every other package shares: errors, settings, metrics, tiers.

- ``errors``: every deliberate exception, under :class:`~edge.core.errors.EdgeError`;
- ``settings``: one frozen :class:`~edge.core.settings.Settings` (defaults, ``EDGE_*``, flags);
- ``metrics``: every Prometheus metric edge exports, declared once.
- ``tiers``: ``Tier`` (full, lite, minimal) and ``TIERS``, the tiers a page is served in.

The bottom layer: it imports nothing else of edge.
"""
