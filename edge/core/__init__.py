"""The vocabulary every other package shares: errors, settings, metrics.

- ``errors``: every deliberate exception, under :class:`~edge.core.errors.EdgeError`;
- ``settings``: one frozen :class:`~edge.core.settings.Settings` (defaults, ``EDGE_*``, flags);
- ``metrics``: every Prometheus metric edge exports, declared once.

The bottom layer: it imports nothing else of edge.
"""
