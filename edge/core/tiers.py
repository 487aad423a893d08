"""The tiers a page is served in, defined once.

``full`` is the page as the storefront wrote it; ``lite`` and ``minimal`` are the
layouts a policy makes of it (``docs/policies.md``). The policy decides one per
request, the rewriters take it, and the metrics are labelled by it.

    >>> TIERS
    ('full', 'lite', 'minimal')
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["Tier", "TIERS"]

Tier = Literal["full", "lite", "minimal"]
#: Every tier, lightest last (the order dashboards and reports list them in).
TIERS: tuple[Tier, ...] = get_args(Tier)
