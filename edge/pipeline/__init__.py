"""The per-request stages, in the order data flows through them.

1. ``signals``: a request's headers → :class:`~edge.pipeline.signals.Signals` (device, hints, cell, last request);
2. ``towers``: per-cell statistics learned from every client on a cell;
3. ``features``: signals (+ the cell's statistics) → the flat dict the models read;
4. (predict: :mod:`edge.learning`) → p(degraded);
5. ``policy`` (with ``labels``): p and the overrides → a tier; what each tier keeps, drops, collapses;
6. ``rewrite``: the page → its lite or minimal layout (HTML, JSON), the beacon and the switch link.

Imports only :mod:`edge.core`; the learning, transport and ASGI layers sit above it.
"""
