"""``edge preview``: look before you ship. Each tier of a page, in headless Chromium, on 2G, 3G and 4G.

- ``tiers``: fetch the page, lay it out at every tier with edge's own rewriter, serve each tier on loopback;
- ``browser``: Debian's Chromium over the DevTools protocol (also what the end-to-end tests drive);
- ``measure``: one load on an emulated network (bytes, requests, FCP, LCP, load) and the screenshots;
- ``report``: the terminal table, the side-by-side sheet and the HTML report;
- ``command``: the ``edge preview`` command that runs them.

Above ``adapt``'s layer (it uses the pipeline's rewriter and the transport's encoders), beside
``offline`` and ``demo``; only ``runtime`` (the CLI) imports it.
"""
