"""The one exception the rewriters raise on purpose.

:class:`RewriteError` means "this body cannot be adapted: serve the original".
It is the only exception :class:`~edge.pipeline.rewrite.HtmlRewriter` and
:class:`~edge.pipeline.rewrite.JsonRewriter` let out (the property tests in
``tests/pipeline/test_rewrite.py`` and ``tests/pipeline/test_rewrite_json.py`` check it), so the
middleware can catch it alone and count it, and treat anything else as a bug.
"""

from __future__ import annotations

from edge.core.errors import EdgeError

__all__ = ["RewriteError"]


class RewriteError(EdgeError):
    """A body could not be rewritten: unsupported charset, markup lol_html refuses, JSON that does not parse."""
