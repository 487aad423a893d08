"""Stage 4: policy files — what storefront engineers write — and the tier decision.

A policy is a TOML file, validated and compiled once at load; per request edge
only looks things up. Format (see ``policies/demo.toml`` and the README)::

    name = "demo"

    [tiers]                 # thresholds on p(degraded)
    lite = 0.5              # p ≥ 0.5  → lite
    minimal = 0.95          # p ≥ 0.95 → minimal

    [labels]                # when is a measured network "degraded"? (edge.labels)
    threshold_kbps = 700    # effective throughput below this
    rtt_ms = 1000           # or round-trip time above this

    [overrides]
    save_data = "lite"              # tier for requests with `Save-Data: on` ("full" to ignore it)
    preference_cookie = "edge_tier" # cookie set by the injected "Full page" / "Light page" links

    [[widgets]]
    widget = "carousel"     # matches data-edge-widget="carousel"; or: selector = "div.promo"
    priority = 1            # 0 (first to go) .. 100 (essential)
    lite = "drop"           # keep | drop
    minimal = "drop"        # defaults to the lite action

A malformed file raises :class:`~edge.errors.PolicyError` naming the file, the
key path and the problem, e.g.
``policies/shop.toml: widgets[3].lite: 'hide' is not one of keep, drop``.

    >>> policy = Policy.from_toml('''
    ... [tiers]
    ... lite = 0.5
    ... minimal = 0.95
    ... [[widgets]]
    ... widget = "ads"
    ... priority = 1
    ... lite = "drop"
    ... ''', path="inline.toml")
    >>> policy.decide(0.7).tier, policy.decide(0.99).tier, policy.decide(None).tier
    ('lite', 'minimal', 'full')
    >>> policy.drop_selectors("minimal")
    ('[data-edge-widget="ads"]',)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lolhtml import HTMLRewriter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import PolicyError
from edge.labels import DEFAULT_RTT_MS, DEFAULT_THRESHOLD_KBPS, LabelRule

__all__ = ["Policy", "Decision", "Tier", "TIERS", "load_policy"]

Tier = Literal["full", "lite", "minimal"]
TIERS: tuple[Tier, ...] = ("full", "lite", "minimal")
Action = Literal["keep", "drop"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierThresholds(_Strict):
    lite: float = Field(0.5, ge=0.0, le=1.0)
    minimal: float = Field(0.95, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> TierThresholds:
        if self.minimal < self.lite:
            raise ValueError(f"minimal ({self.minimal}) must be ≥ lite ({self.lite})")
        return self


class Labels(_Strict):
    threshold_kbps: float = Field(DEFAULT_THRESHOLD_KBPS, gt=0.0, le=1_000_000.0)
    rtt_ms: float = Field(DEFAULT_RTT_MS, gt=0.0, le=600_000.0)


class Overrides(_Strict):
    save_data: Tier = "lite"
    preference_cookie: str = Field("edge_tier", pattern=r"^[A-Za-z0-9_\-]{1,64}$")


class WidgetRule(_Strict):
    widget: str | None = Field(None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    selector: str | None = Field(None, min_length=1, max_length=512)
    priority: int = Field(ge=0, le=100)
    lite: Action = "keep"
    minimal: Action | None = None

    @model_validator(mode="after")
    def _one_target(self) -> WidgetRule:
        if (self.widget is None) == (self.selector is None):
            raise ValueError("give exactly one of 'widget' or 'selector'")
        return self

    @property
    def css(self) -> str:
        return self.selector if self.selector is not None else f'[data-edge-widget="{self.widget}"]'

    def action(self, tier: Tier) -> Action:
        if tier == "full":
            return "keep"
        if tier == "minimal":
            return self.minimal or self.lite
        return self.lite


class PolicyFile(_Strict):
    name: str = "default"
    tiers: TierThresholds = TierThresholds()
    labels: Labels = Labels()
    overrides: Overrides = Overrides()
    widgets: list[WidgetRule] = []


@dataclass(frozen=True, slots=True)
class Decision:
    """The tier a request gets and why. ``source`` is who decided: rules, model, override or none."""

    tier: Tier
    reason: str  # predicted | unknown | save-data | preference
    source: str
    p: float | None = None


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
        self.labels = LabelRule(spec.labels.threshold_kbps, spec.labels.rtt_ms)
        for i, rule in enumerate(spec.widgets):
            _check_selector(path, f"widgets[{i}].{'selector' if rule.selector else 'widget'}", rule.css)
        self._drops: dict[str, tuple[str, ...]] = {
            tier: tuple(r.css for r in spec.widgets if r.action(tier) == "drop") for tier in TIERS
        }

    @classmethod
    def from_toml(cls, text: str, path: str = "<policy>") -> Policy:
        """Parse, validate and compile policy text; errors name ``path``."""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(path, "", f"not valid TOML: {exc}") from None
        try:
            spec = PolicyFile.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PolicyError(path, _key_path(first["loc"]), _problem(first)) from None
        return cls(spec, path)

    @property
    def widgets(self) -> list[WidgetRule]:
        return list(self.spec.widgets)

    def drop_selectors(self, tier: str) -> tuple[str, ...]:
        """CSS selectors of the widgets ``tier`` drops (compiled at load)."""
        return self._drops.get(tier, ())

    def decide(
        self, p: float | None, *, source: str = "rules", save_data: bool = False, preference: str | None = None
    ) -> Decision:
        """Pick a tier from p(degraded) and the overrides, most explicit first.

        The shopper's own choice (the preference cookie) beats everything; then
        ``Save-Data: on``; then the prediction; no prediction serves the full page.
        """
        if preference in TIERS:
            return Decision(preference, "preference", "override", p)  # type: ignore[arg-type]
        if save_data and self.save_data_tier != "full":
            return Decision(self.save_data_tier, "save-data", "override", p)
        if p is None:
            return Decision("full", "unknown", "none", None)
        if p >= self.minimal_threshold:
            return Decision("minimal", "predicted", source, p)
        if p >= self.lite_threshold:
            return Decision("lite", "predicted", source, p)
        return Decision("full", "predicted", source, p)


def load_policy(path: str | Path) -> Policy:
    """Read and compile a policy file. Raises :class:`PolicyError` naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), "", f"cannot read: {exc}") from None
    return Policy.from_toml(text, str(path))


def _check_selector(path: str, key: str, css: str) -> None:
    """Reject a CSS selector the rewriter cannot use now, at load, not at request time."""
    try:
        HTMLRewriter(lambda chunk: None).on(css, _NoHandler())
    except Exception as exc:  # the binding raises RuntimeError with lol_html's message
        raise PolicyError(path, key, f"invalid CSS selector {css!r}: {exc}") from None


class _NoHandler:
    pass


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _problem(error: dict) -> str:
    kind, given = error["type"], error.get("input")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        choices = ", ".join(part.strip(" '") for part in expected.replace(" or ", ", ").split(","))
        return f"{given!r} is not one of {choices}"
    if kind == "extra_forbidden":
        return "unknown key (check its spelling)"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{message} (got {given!r})" if not isinstance(given, dict | list) else message
