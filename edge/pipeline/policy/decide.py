"""The compiled policy and the tier decision: :class:`Policy`, :class:`Decision`, :func:`load_policy`.

A policy is validated (:mod:`~edge.pipeline.policy.schema`) and compiled
(:mod:`~edge.pipeline.policy.compiler`) once at load; per request edge only looks
things up (:meth:`Policy.for_path` is a loop over precompiled patterns,
:meth:`Policy.decide` a few comparisons).

    >>> policy = Policy.from_toml('''
    ... [tiers]
    ... lite = 0.5
    ... minimal = 0.95
    ... [[widgets]]
    ... widget = "ads"
    ... priority = 1
    ... lite = "drop"
    ... [[routes]]
    ... name = "product"
    ... path = "/product/*"
    ... tiers = { lite = 0.3, minimal = 0.9 }
    ... ''', path="inline.toml")
    >>> policy.decide(0.7).tier, policy.decide(0.99).tier, policy.decide(None).tier
    ('lite', 'minimal', 'full')
    >>> policy.decide(0.4).tier, policy.decide(0.4, path="/product/7").tier
    ('full', 'lite')
    >>> policy.for_path("/product/7?ref=x").name, policy.for_path("/product/7/reviews").name
    ('product', 'default')
    >>> policy.drop_selectors("minimal")
    ('[data-edge-widget="ads"]',)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edge.core.errors import PolicyError
from edge.core.tiers import TIERS, Tier
from edge.pipeline.labels import LabelRule
from edge.pipeline.policy.compiler import compile_routes
from edge.pipeline.policy.plan import RoutePlan
from edge.pipeline.policy.schema import PolicyFile, WidgetRule, parse_policy
from edge.pipeline.policy.stability import LastTier, TierStability

__all__ = ["Decision", "Policy", "load_policy", "holdback_draw"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The tier a request gets and why.

    ``reason``: predicted | held (the client's last tier kept against the thresholds,
    :mod:`~edge.pipeline.policy.stability`) | unknown | save-data | preference | holdback.
    ``source`` is who decided: rules, model, override or none. ``route`` names the route plan.
    """

    tier: Tier
    reason: str
    source: str
    p: float | None = None
    route: str = "default"
    #: The client's new tier state when this decision changes it (the tier cookie; None: leave it as it is).
    remember: LastTier | None = None


class Policy:
    """A validated, compiled policy. Build with :func:`load_policy` or :meth:`from_toml`."""

    def __init__(self, spec: PolicyFile, path: str = "<policy>") -> None:
        self.spec = spec
        self.path = path
        self.name = spec.name
        self.lite_threshold = spec.tiers.lite
        self.minimal_threshold = spec.tiers.minimal
        self.save_data_tier: Tier = spec.overrides.save_data
        self.preference_cookie = spec.overrides.preference_cookie
        self.holdback = spec.overrides.holdback
        self.labels = LabelRule(spec.labels.threshold_kbps, spec.labels.rtt_ms)
        self.default, self._routes = compile_routes(spec, path)
        self.routes: tuple[RoutePlan, ...] = (self.default, *(plan for _, plan in self._routes))

    @classmethod
    def from_toml(cls, text: str, path: str = "<policy>") -> Policy:
        """Parse, validate and compile policy text; errors name ``path``."""
        return cls(parse_policy(text, path), path)

    @property
    def widgets(self) -> list[WidgetRule]:
        """The default widget rules as written (``edge policy check`` lists them)."""
        return list(self.spec.widgets)

    def for_path(self, path: str) -> RoutePlan:
        """The compiled plan of the first route whose pattern matches ``path`` (query ignored), else the default."""
        path = path.split("?", 1)[0]
        for pattern, plan in self._routes:
            if pattern.search(path):
                return plan
        return self.default

    def drop_selectors(self, tier: str, path: str | None = None) -> tuple[str, ...]:
        """CSS selectors of the widgets ``tier`` drops (on the route of ``path``; default route without)."""
        return (self.default if path is None else self.for_path(path)).drop_selectors(tier)

    def decide(
        self,
        p: float | None,
        *,
        source: str = "rules",
        save_data: bool = False,
        preference: str | None = None,
        holdback_draw: float | None = None,
        path: str | None = None,
        ceiling: str | None = None,
        last: LastTier | None = None,
        stability: TierStability | None = None,
        now: float = 0.0,
    ) -> Decision:
        """Pick a tier from p(degraded) and the overrides, most explicit first.

        1. the shopper's own choice (the preference cookie);
        2. ``Save-Data: on`` (the browser's explicit choice);
        3. the holdback: a client whose ``holdback_draw`` (a stable number in [0, 1)
           derived from its id, see :func:`holdback_draw`) falls below the share
           gets the full page: the control group for the prediction;
        4. the prediction against the route's thresholds; no prediction → full; with ``stability``
           and the client's ``last`` tier, the thresholds have hysteresis and a dwell time
           (:mod:`~edge.pipeline.policy.stability`; reason ``held`` when it kept ``last``;
           ``remember`` the client's new state when it changes);
           ``ceiling="lite"`` (the model's safety envelope) turns a predicted minimal into lite.

        >>> policy = Policy.from_toml("[overrides]\\nholdback = 0.1")
        >>> policy.decide(0.99, holdback_draw=0.05).reason, policy.decide(0.99, holdback_draw=0.5).tier
        ('holdback', 'minimal')
        >>> lite_at_60s = {"last": LastTier("lite", chosen_at=60.0), "stability": TierStability(), "now": 120.0}
        >>> policy.decide(0.45, **lite_at_60s).tier, policy.decide(0.45, **lite_at_60s).reason, policy.decide(0.1, **lite_at_60s).tier
        ('lite', 'held', 'full')
        """
        route = self.default if path is None else self.for_path(path)
        if preference in TIERS:
            return Decision(preference, "preference", "override", p, route.name)
        if save_data and self.save_data_tier != "full":
            return Decision(self.save_data_tier, "save-data", "override", p, route.name)
        if holdback_draw is not None and holdback_draw < self.holdback:
            return Decision("full", "holdback", "holdback", p, route.name)
        if p is None:
            return Decision("full", "unknown", "none", None, route.name)
        tier = route.tier_for(p)
        reason, remember = "predicted", None
        if stability is not None and stability.enabled:
            held, remember = stability.step(p, route.lite_threshold, route.minimal_threshold, last, now)
            if held != tier:
                tier, reason = held, "held"
        if ceiling == "lite" and tier == "minimal":
            tier = "lite"
            remember = LastTier("lite", now)
        return Decision(tier, reason, source, p, route.name, remember)


def load_policy(path: str | Path) -> Policy:
    """Read and compile a policy file. Raises :class:`PolicyError` naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), "", f"cannot read: {exc}") from None
    return Policy.from_toml(text, str(path))


def holdback_draw(client_id: str) -> float:
    """A stable number in [0, 1) for a client id: the same client always lands on the same side of the holdback.

    >>> holdback_draw("client-42") == holdback_draw("client-42"), 0 <= holdback_draw("x") < 1
    (True, True)
    """
    digest = hashlib.blake2b(client_id.encode("utf-8", "surrogatepass"), digest_size=8, person=b"edge-holdback").digest()
    return int.from_bytes(digest, "big") / 2**64
