"""Carrying requests to the storefront and its answers back.

- ``proxy``: the reverse proxy (an ASGI app): hop-by-hop headers, forwarding headers, request
  buffering and upload bounds, 502/504/503 for a storefront that fails;
- ``upstream``: which transport carries httpx's requests (``http1``, ``aiohttp``, ``httpx``);
- ``http1``: edge's own HTTP/1.1 keep-alive pool parsed by httptools (the default);
- ``encoding``: content codings (gzip, br, zstd) decoded and re-encoded around a rewrite, bounded.

Imports only :mod:`edge.core`.
"""
