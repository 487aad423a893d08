"""Stage 5: rewrite a response body into the tier's layout.

- :class:`HtmlRewriter` applies the route's widget, image and script rules and
  the byte budget to HTML pages (streaming, byte-preserving: everything it does
  not touch comes out byte for byte) and injects the small "Full page" /
  "Light page" switch link; :meth:`HtmlRewriter.rewrite_with_report` also says
  what it kept, dropped and how many bytes are left (:class:`RewriteReport`).
- :class:`JsonRewriter` applies the route's JSON layout rules to app API bodies.
- :func:`switch_link` and :func:`beacon_script` render the injected snippet.
- :class:`RewriteError` is the only exception the rewriters raise on purpose:
  serve the original body.

The full tier is the hot path for most shoppers: it is a byte splice, never a parse.

Modules: ``splice`` (the snippet and where it goes), ``html`` (the rewriter: a tier's plan as
lol_html handlers), ``handlers`` (those handlers and the report), ``budget`` (markers read back,
the byte-budget cut), ``json``, ``cache`` (layouts of pages served again: byte for byte, or
through a ``template`` when only per-request values such as tokens and counts changed), ``errors``.
"""

from edge.pipeline.rewrite.cache import RewriteCache
from edge.pipeline.rewrite.errors import RewriteError
from edge.pipeline.rewrite.handlers import COLLAPSE_SCRIPT, RewriteReport
from edge.pipeline.rewrite.html import HtmlRewriter
from edge.pipeline.rewrite.json import JsonRewriter
from edge.pipeline.rewrite.splice import SPLICE_WINDOW, StreamSplicer, beacon_script, splice_before_body_end, switch_link

__all__ = [
    "COLLAPSE_SCRIPT",
    "HtmlRewriter",
    "SPLICE_WINDOW",
    "StreamSplicer",
    "JsonRewriter",
    "RewriteCache",
    "RewriteError",
    "RewriteReport",
    "beacon_script",
    "splice_before_body_end",
    "switch_link",
]
