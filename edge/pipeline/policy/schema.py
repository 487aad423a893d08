"""What a policy file may say: the TOML schema, and errors naming the file, the key and the problem.

The language is documented in ``docs/policies.md``; ``policies/demo.toml`` uses every part of it. In short::

    name = "shop"
    [tiers]                     # thresholds on p(degraded)
    lite = 0.5
    minimal = 0.95
    [overrides]
    save_data = "lite"          # tier for `Save-Data: on`
    preference_cookie = "edge_tier"
    holdback = 0.02             # share of clients (0–0.5) that always get the full page
    [budget]                    # optional bytes per tier: HTML + images by declared size
    lite = 400_000

    [[widgets]]                 # by data-edge-widget name or by CSS selector
    widget = "reviews"
    priority = 40               # 0 (first to go) .. 100 (essential)
    lite = "trim"               # keep | drop | collapse | trim
    keep = 3
    item = "article"
    minimal = "collapse"
    url = "/fragments/reviews?id={data-product-id}"

    [[images]]                  # src rewrite, lazy loading, srcset, size cap
    src = '^(/static/img/.+\\.png)$'
    variant = '\\1?w=160'
    lazy = true
    drop_srcset = true
    max_bytes = 60_000

    [[scripts]]                 # defer or drop
    src = 'analytics|tracking'
    lite = "defer"
    minimal = "drop"

    [[routes]]                  # per route pattern: thresholds and rules overriding the defaults
    name = "api"
    path = "/api/**"
    [[routes.json]]             # JSON layout rules (app APIs)
    path = "$.sections[?(@.priority < 50)]"
    lite = "drop"

:func:`parse_policy` reads the text into a :class:`PolicyFile`; anything the schema refuses
raises :class:`~edge.core.errors.PolicyError` naming the file, the key path and the problem:

    >>> parse_policy('[[widgets]]\\nwidget = "ads"\\npriority = 1\\nlite = "hide"', "policies/shop.toml")
    Traceback (most recent call last):
    ...
    edge.core.errors.PolicyError: policies/shop.toml: widgets[0].lite: 'hide' is not one of keep, drop, collapse, trim

What the schema cannot see (selectors, regular expressions, templates, JSON paths) the
compiler checks, with errors of the same shape (:mod:`edge.pipeline.policy.compiler`).
"""

from __future__ import annotations

import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from edge.core.errors import PolicyError
from edge.core.tiers import Tier
from edge.pipeline.labels import DEFAULT_RTT_MS, DEFAULT_THRESHOLD_KBPS

__all__ = [
    "Action",
    "ScriptAction",
    "JsonAction",
    "DEFAULT_BYTES_PER_PIXEL",
    "TierThresholds",
    "Labels",
    "Overrides",
    "Sizes",
    "Budget",
    "WidgetRule",
    "ImageRule",
    "ScriptRule",
    "JsonRule",
    "RouteRule",
    "PolicyFile",
    "parse_policy",
]

Action = Literal["keep", "drop", "collapse", "trim"]
ScriptAction = Literal["keep", "defer", "drop"]
JsonAction = Literal["keep", "drop", "trim"]
#: The tiers an image rule may apply to (the full tier is never rewritten).
ImageTier = Literal["lite", "minimal"]
#: An image's bytes per pixel when the page gives its width and height but not ``data-edge-bytes``.
DEFAULT_BYTES_PER_PIXEL = 0.5

_NAME = r"^[A-Za-z0-9_\-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class TierThresholds(_Strict):
    lite: float = Field(default=0.5, ge=0.0, le=1.0)
    minimal: float = Field(default=0.95, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> TierThresholds:
        if self.minimal < self.lite:
            raise ValueError(f"minimal ({self.minimal}) must be ≥ lite ({self.lite})")
        return self


class Labels(_Strict):
    threshold_kbps: float = Field(default=DEFAULT_THRESHOLD_KBPS, gt=0.0, le=1_000_000.0)
    rtt_ms: float = Field(default=DEFAULT_RTT_MS, gt=0.0, le=600_000.0)


class Overrides(_Strict):
    save_data: Tier = "lite"
    preference_cookie: str = Field(default="edge_tier", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    holdback: float = Field(default=0.05, ge=0.0, le=0.5)


class Sizes(_Strict):
    bytes_per_pixel: float = Field(default=DEFAULT_BYTES_PER_PIXEL, gt=0.0, le=16.0)


class Budget(_Strict):
    lite: int | None = Field(default=None, gt=0)
    minimal: int | None = Field(default=None, gt=0)
    protect: int = Field(default=90, ge=0, le=101)


class WidgetRule(_Strict):
    widget: str | None = Field(default=None, pattern=_NAME)
    selector: str | None = Field(default=None, min_length=1, max_length=512)
    priority: int = Field(ge=0, le=100)
    lite: Action = "keep"
    minimal: Action | None = None
    url: str | None = Field(default=None, min_length=1, max_length=1024)
    label: str | None = Field(default=None, min_length=1, max_length=200)
    keep: int | None = Field(default=None, ge=0, le=100_000)
    item: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9\-]{0,31}$")
    placeholder_tag: str | None = Field(default=None, min_length=1, max_length=32)
    placeholder_class: str | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def _consistent(self) -> WidgetRule:
        if (self.widget is None) == (self.selector is None):
            raise ValueError("give exactly one of 'widget' or 'selector'")
        actions = {self.lite, self.minimal or self.lite}
        if "trim" in actions and self.keep is None:
            raise ValueError("a 'trim' action needs 'keep = N' (how many items stay)")
        if self.keep is not None and "trim" not in actions:
            raise ValueError("'keep' only applies with a 'trim' action")
        if self.item is not None and "trim" not in actions:
            raise ValueError("'item' only applies with a 'trim' action")
        for key in ("url", "placeholder_tag", "placeholder_class"):
            if getattr(self, key) is not None and "collapse" not in actions:
                raise ValueError(f"'{key}' only applies with a 'collapse' action")
        return self

    @property
    def css(self) -> str:
        return self.selector if self.selector is not None else f'[data-edge-widget="{self.widget}"]'

    @property
    def ident(self) -> str:
        """The widget name, else the selector (the validator guarantees one of them)."""
        ident = self.widget if self.widget is not None else self.selector
        assert ident is not None
        return ident

    def action(self, tier: Tier) -> Action:
        if tier == "full":
            return "keep"
        if tier == "minimal":
            return self.minimal or self.lite
        return self.lite


def _both_image_tiers() -> list[ImageTier]:
    return ["lite", "minimal"]


class ImageRule(_Strict):
    selector: str = Field(default="img", min_length=1, max_length=512)
    src: str | None = Field(default=None, min_length=1, max_length=1024)
    variant: str | None = Field(default=None, max_length=1024)
    variant_bytes: float = Field(default=1.0, gt=0.0, le=1.0)
    lazy: bool = False
    drop_srcset: bool = False
    max_bytes: int | None = Field(default=None, ge=0)
    tiers: list[ImageTier] = Field(default_factory=_both_image_tiers, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ImageRule:
        if self.variant is not None and self.src is None:
            raise ValueError("'variant' needs a 'src' pattern to rewrite")
        return self


class ScriptRule(_Strict):
    selector: str | None = Field(default=None, min_length=1, max_length=512)
    src: str | None = Field(default=None, min_length=1, max_length=1024)
    lite: ScriptAction = "keep"
    minimal: ScriptAction | None = None
    all_types: bool = False

    @model_validator(mode="after")
    def _target(self) -> ScriptRule:
        if self.selector is None and self.src is None:
            raise ValueError("give 'selector', 'src' or both")
        return self

    def action(self, tier: Tier) -> ScriptAction:
        if tier == "full":
            return "keep"
        return (self.minimal or self.lite) if tier == "minimal" else self.lite


class JsonRule(_Strict):
    path: str = Field(min_length=1, max_length=512)
    lite: JsonAction = "keep"
    minimal: JsonAction | None = None
    keep: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> JsonRule:
        actions = {self.lite, self.minimal or self.lite}
        if "trim" in actions and self.keep is None:
            raise ValueError("a 'trim' action needs 'keep = N' (how many items stay)")
        if self.keep is not None and "trim" not in actions:
            raise ValueError("'keep' only applies with a 'trim' action")
        return self

    def action(self, tier: Tier) -> JsonAction:
        if tier == "full":
            return "keep"
        return (self.minimal or self.lite) if tier == "minimal" else self.lite


class RouteRule(_Strict):
    name: str = Field(pattern=_NAME)
    path: str | None = Field(default=None, min_length=1, max_length=512)
    regex: str | None = Field(default=None, min_length=1, max_length=1024)
    tiers: TierThresholds | None = None
    budget: Budget | None = None
    widgets: list[WidgetRule] = []
    images: list[ImageRule] | None = None
    scripts: list[ScriptRule] | None = None
    json_rules: list[JsonRule] | None = Field(default=None, alias="json")

    @model_validator(mode="after")
    def _one_pattern(self) -> RouteRule:
        if (self.path is None) == (self.regex is None):
            raise ValueError("give exactly one of 'path' (a glob) or 'regex'")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"a path glob starts with '/' (got {self.path!r})")
        return self


class PolicyFile(_Strict):
    name: str = "default"
    tiers: TierThresholds = TierThresholds()
    labels: Labels = Labels()
    overrides: Overrides = Overrides()
    sizes: Sizes = Sizes()
    budget: Budget = Budget()
    widgets: list[WidgetRule] = []
    images: list[ImageRule] = []
    scripts: list[ScriptRule] = []
    json_rules: list[JsonRule] = Field(default=[], alias="json")
    routes: list[RouteRule] = []


def parse_policy(text: str, path: str = "<policy>") -> PolicyFile:
    """Parse and validate policy text; the first problem raises :class:`PolicyError` naming ``path``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path, "", f"not valid TOML: {exc}") from None
    try:
        return PolicyFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise PolicyError(path, _key_path(first["loc"]), _problem(first) + more) from None


# ---------------------------------------------------------------- error messages


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``("widgets", 3, "lite")`` → ``widgets[3].lite``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _problem(error: ErrorDetails) -> str:
    """One pydantic error in the words of a policy author."""
    kind, given = error["type"], error.get("input")
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        choices = ", ".join(part.strip(" '") for part in expected.replace(" or ", ", ").split(","))
        return f"{given!r} is not one of {choices}"
    if kind == "extra_forbidden":
        return "unknown key (check its spelling)"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{message} (got {given!r})" if not isinstance(given, dict | list) else message
