"""Stage 5: rewrite a response body into the tier's layout.

- :class:`HtmlRewriter` drops the widgets a tier does not keep (streaming,
  byte-preserving: everything it does not touch comes out byte for byte) and
  injects the small "Full page" / "Light page" switch link.
- :func:`switch_link` renders that link.

The full tier is the hot path for most shoppers: it is a byte splice, never a parse.
"""

from edge.rewrite.html import HtmlRewriter, beacon_script, splice_before_body_end, switch_link

__all__ = ["HtmlRewriter", "beacon_script", "splice_before_body_end", "switch_link"]
