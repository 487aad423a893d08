"""The one exception the rewriters raise on purpose.

:class:`RewriteError` means "this body cannot be adapted: serve the original".
It is the only exception :class:`~edge.rewrite.HtmlRewriter` and
:class:`~edge.rewrite.JsonRewriter` let out (the property tests in
``tests/test_rewrite.py`` and ``tests/test_rewrite_json.py`` check it), so the
middleware can catch it alone and count it, and treat anything else as a bug.
"""

from __future__ import annotations

from edge.errors import EdgeError

__all__ = ["RewriteError"]


class RewriteError(EdgeError):
    """A body could not be rewritten: unsupported charset, markup lol_html refuses, JSON that does not parse."""
