"""A small real Django shop for tests/storefronts: products, a session basket, a login, static CSS.

Configured entirely by environment variables (set by ``tests/storefronts/conftest.py``):

- ``SHOP_DB``: the sqlite file (in the test session's temp dir);
- ``SHOP_USE_X_FORWARDED_HOST``: ``1`` sets ``USE_X_FORWARDED_HOST`` (for edge ``--no-preserve-host``).

``python -m djangoshop.bootstrap`` creates the tables and the shopper ``alice``;
``uvicorn djangoshop.asgi:application`` serves it; ``uvicorn djangoshop.edge_asgi:application``
serves it wrapped in edge's in-process ``AdaptiveMiddleware``.
"""
