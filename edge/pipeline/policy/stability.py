"""A stable tier per client: hysteresis around the thresholds, a confirmation, and a dwell time.

A shopper whose p(degraded) hovers around a threshold would otherwise get full, lite, full
on three clicks: the page changes under them. So the tier a client was last served, and
when it was chosen, travel with the client (a signed cookie, :mod:`edge.adapt.tier_cookie`),
and the next prediction is read against them.

**The rule.** Let ``L`` be the client's last tier, chosen at ``t``, ``raw`` the tier the route's
thresholds give ``p`` (:meth:`~edge.pipeline.policy.plan.RoutePlan.tier_for`), and ``d`` how far
``p`` lies beyond ``L``'s band, in log-odds: ``logit(p) − logit(θ)`` past the band's upper
threshold ``θ``, ``logit(θ) − logit(p)`` below its lower one (0 inside the band).

1. no last tier, or it was chosen ``dwell_s`` or more ago (``now − t ≥ dwell_s``): serve ``raw``;
2. ``d ≥ 2·margin`` — a clear change of network (the rules' 2G p 0.88 against a 0.5
   threshold is ``d`` 2.0): serve ``raw`` at once;
3. ``d ≥ margin`` on this request and on the client's previous one (towards the same tier):
   serve ``raw`` (a change, confirmed);
4. otherwise keep ``L``; a request with ``d ≥ margin`` is remembered as unconfirmed, and the next
   request that does not confirm it forgets it.

The margin is in log-odds, so it means the same evidence at every threshold and never asks
for a p beyond 1: the default 0.5 keeps a tier between p 0.38 and 0.62 around a 0.5 threshold
(for the rules' measured-throughput evidence, ``T/(T+kbps)``, that is a throughput within a
factor e^0.5 ≈ 1.65 of the threshold's) and between 0.92 and 0.97 around a 0.95 one.
``margin = 0`` or ``dwell_s = 0`` turns the rule off: every request gets ``raw``. A client's clock
restarts only when its tier is chosen anew (rules 1–3, or its first page), not when a prediction
confirms the tier it has, so noise can cost at most one switch per dwell time besides confirmed
crossings. A client with no last tier whose page is full with p twice the margin below the lite
threshold (p < 0.27 at 0.5) gets no cookie (:meth:`TierStability.worth_a_cookie`): that fast shopper's pages stay cacheable
as the storefront said.

    >>> rule = TierStability(margin=0.5, dwell_s=600.0)
    >>> lite = LastTier("lite", chosen_at=1000.0)
    >>> rule.tier(0.45, 0.5, 0.95, lite, now=1060.0)      # just under the threshold: stays lite
    'lite'
    >>> rule.tier(0.10, 0.5, 0.95, lite, now=1060.0)      # a 4G page: far below, switches at once
    'full'
    >>> rule.step(0.30, 0.5, 0.95, lite, now=1060.0)      # below by the margin: held, remembered
    ('lite', LastTier(tier='lite', chosen_at=1000.0, pending='full'))
    >>> rule.step(0.30, 0.5, 0.95, LastTier("lite", 1000.0, "full"), now=1070.0)  # ...and confirmed
    ('full', LastTier(tier='full', chosen_at=1070.0, pending=None))
    >>> rule.tier(0.45, 0.5, 0.95, lite, now=1600.0)      # the choice is 600 s old: free to switch
    'full'
    >>> rule.tier(0.45, 0.5, 0.95, None, now=1060.0)      # a first page: the thresholds alone
    'full'
    >>> rule.band(0.5)                                    # where a tier is held around a 0.5 threshold
    (0.3775, 0.6225)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.core.tiers import Tier

__all__ = ["LastTier", "TierStability", "DEFAULT_MARGIN", "DEFAULT_DWELL_S"]

#: Log-odds a prediction must clear a threshold by to switch a client's tier (see the module docstring).
DEFAULT_MARGIN = 0.5
#: Seconds after which a client's tier is chosen afresh from the thresholds alone.
DEFAULT_DWELL_S = 600.0

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class LastTier:
    """The tier a client was last served by prediction, when it was chosen (Unix seconds), and the
    tier an unconfirmed crossing on its previous request pointed to (rule 4), if any."""

    tier: Tier
    chosen_at: float
    pending: Tier | None = None


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True, slots=True)
class TierStability:
    """The hysteresis-and-dwell rule of the module docstring; ``margin`` in log-odds, ``dwell_s`` in seconds."""

    margin: float = DEFAULT_MARGIN
    dwell_s: float = DEFAULT_DWELL_S

    @property
    def enabled(self) -> bool:
        return self.margin > 0 and self.dwell_s > 0

    def current(self, last: LastTier | None, now: float) -> LastTier | None:
        """``last`` while it still binds (chosen less than ``dwell_s`` ago), else None."""
        if last is None or not self.enabled or now - last.chosen_at >= self.dwell_s:
            return None
        return last

    def tier(self, p: float, lite: float, minimal: float, last: LastTier | None, now: float) -> Tier:
        """The tier for ``p`` on a route with thresholds ``lite`` ≤ ``minimal``, given the client's last tier."""
        return self.step(p, lite, minimal, last, now)[0]

    def step(self, p: float, lite: float, minimal: float, last: LastTier | None, now: float) -> tuple[Tier, LastTier | None]:
        """The tier to serve, and the client's new state when it changes (None: keep what it carries).

        The new state is the tier with ``now`` when it is chosen anew (unless
        :meth:`worth_a_cookie` says the client needs none), or ``last`` with its unconfirmed
        crossing set or cleared.
        """
        raw: Tier = "minimal" if p >= minimal else "lite" if p >= lite else "full"
        if last is not None:
            last = self.current(last, now)
        if last is None:  # (enabled and worth_a_cookie(raw, p, lite, None), inline: once per page)
            if self.margin > 0 and self.dwell_s > 0 and (raw != "full" or _logit(p) > _logit(lite) - 2 * self.margin):
                return raw, LastTier(raw, now)
            return raw, None
        d = 0.0
        if raw != last.tier:
            lower, upper = {"full": (None, lite), "lite": (lite, minimal), "minimal": (minimal, None)}[last.tier]
            z = _logit(p)
            if upper is not None and p >= upper:
                d = z - _logit(upper)
            elif lower is not None:
                d = _logit(lower) - z
        if d >= 2 * self.margin or (d >= self.margin and last.pending == raw):
            return raw, LastTier(raw, now)
        if d >= self.margin:
            return last.tier, LastTier(last.tier, last.chosen_at, raw)
        return last.tier, (LastTier(last.tier, last.chosen_at) if last.pending is not None else None)

    def worth_a_cookie(self, tier: Tier, p: float, lite: float, last: LastTier | None) -> bool:
        """Whether a client newly served ``tier`` should carry it: not when it has no last tier and
        gets the full page with ``p`` twice the margin below the lite threshold (clearly full, as
        in rule 2: the common fast shopper, whose pages then stay cacheable as the storefront said).

        >>> rule = TierStability()
        >>> rule.worth_a_cookie("full", 0.1, 0.5, None), rule.worth_a_cookie("full", 0.3, 0.5, None)
        (False, True)
        >>> rule.worth_a_cookie("full", 0.1, 0.5, LastTier("lite", 0.0)), rule.worth_a_cookie("lite", 0.9, 0.5, None)
        (True, True)
        """
        if last is not None or tier != "full":
            return True
        return _logit(p) > _logit(lite) - 2 * self.margin

    def band(self, threshold: float) -> tuple[float, float]:
        """The p range around ``threshold`` inside which a client keeps the tier it has (rounded to 4 places)."""
        z = _logit(threshold)
        return round(_expit(z - self.margin), 4), round(_expit(z + self.margin), 4)
