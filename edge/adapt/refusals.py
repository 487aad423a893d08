"""The opt-out as feedback: switch-link clicks counted against the tier they refused.

Every page edge decides on carries a switch link: **Full page** on lite and minimal pages,
**Light page** on full ones (:func:`~edge.pipeline.rewrite.switch_link`). A click says the tier
was unwanted. It sets the preference cookie (the shopper's choice beats every prediction for
the cookie's 30 days, :meth:`~edge.pipeline.policy.Policy.decide`), and is counted here by
policy, route and the tier refused: in ``edge_tier_refusals_total`` for Prometheus, and in
:class:`TierRefusals` beside the pages served on the same route and tier, for ``/admin/model``,
so whoever tunes a policy sees which route's light pages shoppers refuse, and how often.

The route is the policy's name for the page the shopper came from (``next``), the tier refused
is implied by the link (``full`` → lite was refused, ``lite`` → full) or named by it
(``from=minimal``): every label comes from the policy or :data:`~edge.core.tiers.TIERS`, never
from the request, and the in-process table holds at most :data:`MAX_KEYS` entries.

    >>> refusals = TierRefusals()
    >>> for _ in range(40):
    ...     refusals.served("shop", "product", "lite")
    >>> refusals.refused("shop", "product", "lite")
    >>> refusals.snapshot()["shop"]["product"]["lite"]
    {'served': 40, 'refused': 1, 'share': 0.025}
    >>> refused_tier("full", None), refused_tier("full", "minimal"), refused_tier("lite", "junk")
    ('lite', 'minimal', 'full')
"""

from __future__ import annotations

from edge.core import metrics
from edge.core.tiers import Tier

__all__ = ["TierRefusals", "refused_tier", "MAX_KEYS"]

#: Distinct (policy, route, tier) entries kept in process (routes are a policy's; reloads may add names).
MAX_KEYS = 4096


def refused_tier(to_tier: str, from_tier: str | None) -> Tier:
    """The tier a click on the link to ``to_tier`` refused (``from_tier``: the link's ``from``, if any)."""
    if to_tier == "lite":
        return "full"
    return "minimal" if from_tier == "minimal" else "lite"


class TierRefusals:
    """Pages served and refused per policy, route and tier, in this process (bounded)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], list[int]] = {}

    def _entry(self, policy: str, route: str, tier: str) -> list[int] | None:
        key = (policy, route, tier)
        entry = self._counts.get(key)
        if entry is None and len(self._counts) < MAX_KEYS:
            entry = self._counts[key] = [0, 0]
        return entry

    def served(self, policy: str, route: str, tier: str) -> None:
        """One page of ``tier`` served on ``route``."""
        entry = self._counts.get((policy, route, tier)) or self._entry(policy, route, tier)  # (a known key: no call)
        if entry is not None:
            entry[0] += 1

    def refused(self, policy: str, route: str, tier: Tier) -> None:
        """A shopper refused ``tier`` on ``route`` (also counted in ``edge_tier_refusals_total``)."""
        metrics.TIER_REFUSALS.labels(policy, route, tier).inc()
        entry = self._entry(policy, route, tier)
        if entry is not None:
            entry[1] += 1

    def snapshot(self) -> dict[str, dict[str, dict[str, dict[str, float | int | None]]]]:
        """``{policy: {route: {tier: {served, refused, share}}}}``; share = refused / served (None before any page)."""
        out: dict[str, dict[str, dict[str, dict[str, float | int | None]]]] = {}
        for (policy, route, tier), (served, refused) in sorted(self._counts.items()):
            share = round(refused / served, 4) if served else None
            out.setdefault(policy, {}).setdefault(route, {})[tier] = {"served": served, "refused": refused, "share": share}
        return out
