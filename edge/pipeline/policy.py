"""Stage 4: policy files — what storefront engineers write — and the tier decision.

A policy is a TOML file, validated and compiled once at load; per request edge
only looks things up (:meth:`Policy.for_path` is a loop over precompiled
patterns, :meth:`Policy.decide` a few comparisons). The language is documented
in ``docs/policies.md``; ``policies/demo.toml`` uses every part of it. In short::

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

A malformed file raises :class:`~edge.core.errors.PolicyError` naming the file, the
key path and the problem, e.g.
``policies/shop.toml: widgets[3].lite: 'hide' is not one of keep, drop, collapse, trim``.

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
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lolhtml import HTMLRewriter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.core.errors import PolicyError
from edge.pipeline.labels import DEFAULT_RTT_MS, DEFAULT_THRESHOLD_KBPS, LabelRule

__all__ = [
    "Policy",
    "Decision",
    "Tier",
    "TIERS",
    "RoutePlan",
    "WidgetPlan",
    "PLACEHOLDER_TAGS",
    "ImagePlan",
    "ScriptPlan",
    "JsonPlan",
    "JsonPath",
    "load_policy",
    "holdback_draw",
    "declared_image_bytes",
]

Tier = Literal["full", "lite", "minimal"]
TIERS: tuple[Tier, ...] = ("full", "lite", "minimal")
Action = Literal["keep", "drop", "collapse", "trim"]
ScriptAction = Literal["keep", "defer", "drop"]
JsonAction = Literal["keep", "drop", "trim"]
DEFAULT_BYTES_PER_PIXEL = 0.5

_NAME = r"^[A-Za-z0-9_\-]{1,64}$"


# ---------------------------------------------------------------- schema (what the TOML may say)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


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
    holdback: float = Field(0.05, ge=0.0, le=0.5)


class Sizes(_Strict):
    bytes_per_pixel: float = Field(DEFAULT_BYTES_PER_PIXEL, gt=0.0, le=16.0)


class Budget(_Strict):
    lite: int | None = Field(None, gt=0)
    minimal: int | None = Field(None, gt=0)
    protect: int = Field(90, ge=0, le=101)


class WidgetRule(_Strict):
    widget: str | None = Field(None, pattern=_NAME)
    selector: str | None = Field(None, min_length=1, max_length=512)
    priority: int = Field(ge=0, le=100)
    lite: Action = "keep"
    minimal: Action | None = None
    url: str | None = Field(None, min_length=1, max_length=1024)
    label: str | None = Field(None, min_length=1, max_length=200)
    keep: int | None = Field(None, ge=0, le=100_000)
    item: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9\-]{0,31}$")
    placeholder_tag: str | None = Field(None, min_length=1, max_length=32)
    placeholder_class: str | None = Field(None, max_length=512)

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
        return self.widget if self.widget is not None else self.selector  # type: ignore[return-value]

    def action(self, tier: str) -> Action:
        if tier == "full":
            return "keep"
        if tier == "minimal":
            return self.minimal or self.lite
        return self.lite


class ImageRule(_Strict):
    selector: str = Field("img", min_length=1, max_length=512)
    src: str | None = Field(None, min_length=1, max_length=1024)
    variant: str | None = Field(None, max_length=1024)
    variant_bytes: float = Field(1.0, gt=0.0, le=1.0)
    lazy: bool = False
    drop_srcset: bool = False
    max_bytes: int | None = Field(None, ge=0)
    tiers: list[Literal["lite", "minimal"]] = Field(default_factory=lambda: ["lite", "minimal"], min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ImageRule:
        if self.variant is not None and self.src is None:
            raise ValueError("'variant' needs a 'src' pattern to rewrite")
        return self


class ScriptRule(_Strict):
    selector: str | None = Field(None, min_length=1, max_length=512)
    src: str | None = Field(None, min_length=1, max_length=1024)
    lite: ScriptAction = "keep"
    minimal: ScriptAction | None = None
    all_types: bool = False

    @model_validator(mode="after")
    def _target(self) -> ScriptRule:
        if self.selector is None and self.src is None:
            raise ValueError("give 'selector', 'src' or both")
        return self

    def action(self, tier: str) -> ScriptAction:
        if tier == "full":
            return "keep"
        return (self.minimal or self.lite) if tier == "minimal" else self.lite


class JsonRule(_Strict):
    path: str = Field(min_length=1, max_length=512)
    lite: JsonAction = "keep"
    minimal: JsonAction | None = None
    keep: int | None = Field(None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> JsonRule:
        actions = {self.lite, self.minimal or self.lite}
        if "trim" in actions and self.keep is None:
            raise ValueError("a 'trim' action needs 'keep = N' (how many items stay)")
        if self.keep is not None and "trim" not in actions:
            raise ValueError("'keep' only applies with a 'trim' action")
        return self

    def action(self, tier: str) -> JsonAction:
        if tier == "full":
            return "keep"
        return (self.minimal or self.lite) if tier == "minimal" else self.lite


class RouteRule(_Strict):
    name: str = Field(pattern=_NAME)
    path: str | None = Field(None, min_length=1, max_length=512)
    regex: str | None = Field(None, min_length=1, max_length=1024)
    tiers: TierThresholds | None = None
    budget: Budget | None = None
    widgets: list[WidgetRule] = []
    images: list[ImageRule] | None = None
    scripts: list[ScriptRule] | None = None
    json_rules: list[JsonRule] | None = Field(None, alias="json")

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
    json_rules: list[JsonRule] = Field([], alias="json")
    routes: list[RouteRule] = []


# ---------------------------------------------------------------- compiled plans (what the request path reads)


@dataclass(frozen=True, slots=True)
class Decision:
    """The tier a request gets and why.

    ``reason``: predicted | unknown | save-data | preference | holdback.
    ``source`` is who decided: rules, model, override or none. ``route`` names the route plan.
    """

    tier: Tier
    reason: str
    source: str
    p: float | None = None
    route: str = "default"


@dataclass(frozen=True, slots=True)
class WidgetPlan:
    """One widget rule, compiled: its selector, actions per tier and collapse/trim details."""

    name: str
    css: str
    priority: int
    actions: dict[str, Action]
    label: str
    url: tuple[tuple[str, str | None], ...] | None  # (literal, placeholder) pairs
    keep: int | None
    trim_css: str | None
    #: The collapse placeholder's tag (None: the element's own when it can hold the link, else div).
    placeholder_tag: str | None = None
    #: Its classes before ``edge-collapsed``; ``{class}`` is the element's own.
    placeholder_class: str = "{class}"


#: Tags a collapse placeholder may be (it holds a link): anything else becomes a <div>.
PLACEHOLDER_TAGS = frozenset(
    ("div", "section", "aside", "article", "nav", "header", "footer", "main", "li", "p", "figure", "span", "td", "th", "dd", "dt")
)


@dataclass(frozen=True, slots=True)
class ImagePlan:
    css: str
    src: re.Pattern[str] | None
    variant: str | None
    variant_bytes: float
    lazy: bool
    drop_srcset: bool
    max_bytes: int | None
    tiers: frozenset[str]


@dataclass(frozen=True, slots=True)
class ScriptPlan:
    css: str
    src: re.Pattern[str] | None
    actions: dict[str, ScriptAction]
    all_types: bool


@dataclass(frozen=True, slots=True)
class JsonPlan:
    path: JsonPath
    actions: dict[str, JsonAction]
    keep: int | None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Everything edge needs for requests on one route, compiled at load."""

    index: int
    name: str
    pattern: str
    lite_threshold: float
    minimal_threshold: float
    widgets: tuple[WidgetPlan, ...]
    images: tuple[ImagePlan, ...]
    scripts: tuple[ScriptPlan, ...]
    json: tuple[JsonPlan, ...]
    budget: dict[str, int | None]
    protect: int
    bytes_per_pixel: float
    _drops: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def drop_selectors(self, tier: str) -> tuple[str, ...]:
        """CSS selectors of the widgets ``tier`` drops on this route."""
        return self._drops.get(tier, ())

    def tier_for(self, p: float) -> Tier:
        if p >= self.minimal_threshold:
            return "minimal"
        if p >= self.lite_threshold:
            return "lite"
        return "full"


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
        defaults = [(f"widgets[{i}]", w) for i, w in enumerate(spec.widgets)]
        _no_duplicates(path, defaults)
        self.default = _compile_route(
            self, 0, "default", "**", spec.tiers, spec.budget, defaults, spec.images, spec.scripts, spec.json_rules, ""
        )
        routes: list[tuple[re.Pattern[str], RoutePlan]] = []
        seen: dict[str, int] = {}
        for i, route in enumerate(spec.routes):
            key = f"routes[{i}]"
            if route.name in seen or route.name == "default":
                raise PolicyError(path, f"{key}.name", f"route name {route.name!r} is already used" + (f" by routes[{seen[route.name]}]" if route.name in seen else ""))
            seen[route.name] = i
            if route.path is not None:
                pattern, text = re.compile(_glob_to_regex(route.path), re.DOTALL), route.path
            else:
                pattern, text = _regex(path, f"{key}.regex", route.regex), route.regex  # type: ignore[arg-type]
            merged = _merge_widgets(path, key, spec.widgets, route.widgets)
            plan = _compile_route(
                self,
                i + 1,
                route.name,
                text,  # type: ignore[arg-type]
                route.tiers or spec.tiers,
                route.budget or spec.budget,
                merged,
                spec.images if route.images is None else route.images,
                spec.scripts if route.scripts is None else route.scripts,
                spec.json_rules if route.json_rules is None else route.json_rules,
                key,
                own_images=route.images is not None,
                own_scripts=route.scripts is not None,
                own_json=route.json_rules is not None,
            )
            routes.append((pattern, plan))
        self._routes = tuple(routes)
        self.routes: tuple[RoutePlan, ...] = (self.default, *(plan for _, plan in routes))

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
            errors = exc.errors()
            first = errors[0]
            more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
            raise PolicyError(path, _key_path(first["loc"]), _problem(first) + more) from None
        return cls(spec, path)

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
    ) -> Decision:
        """Pick a tier from p(degraded) and the overrides, most explicit first.

        1. the shopper's own choice (the preference cookie);
        2. ``Save-Data: on`` (the browser's explicit choice);
        3. the holdback: a client whose ``holdback_draw`` (a stable number in [0, 1)
           derived from its id, see :func:`holdback_draw`) falls below the share
           gets the full page: the control group for the prediction;
        4. the prediction against the route's thresholds; no prediction → full; ``ceiling="lite"``
           (the model's safety envelope) turns a predicted minimal into lite.

        >>> policy = Policy.from_toml("[overrides]\\nholdback = 0.1")
        >>> policy.decide(0.99, holdback_draw=0.05).reason, policy.decide(0.99, holdback_draw=0.5).tier
        ('holdback', 'minimal')
        """
        route = self.default if path is None else self.for_path(path)
        if preference in TIERS:
            return Decision(preference, "preference", "override", p, route.name)  # type: ignore[arg-type]
        if save_data and self.save_data_tier != "full":
            return Decision(self.save_data_tier, "save-data", "override", p, route.name)
        if holdback_draw is not None and holdback_draw < self.holdback:
            return Decision("full", "holdback", "holdback", p, route.name)
        if p is None:
            return Decision("full", "unknown", "none", None, route.name)
        tier = route.tier_for(p)
        if ceiling == "lite" and tier == "minimal":
            tier = "lite"
        return Decision(tier, "predicted", source, p, route.name)


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


def declared_image_bytes(attributes: Any, bytes_per_pixel: float = DEFAULT_BYTES_PER_PIXEL) -> int | None:
    """An image's size as the page declares it: ``data-edge-bytes``, else width × height × bytes per pixel.

    ``attributes`` is anything with ``get(name)`` (or a lol_html element). None when neither is given.

    >>> declared_image_bytes({"data-edge-bytes": "1200", "width": "10", "height": "10"})
    1200
    >>> declared_image_bytes({"width": "400px", "height": "300"}, 0.5)
    60000
    >>> declared_image_bytes({"width": "400"}) is None
    True
    """
    get = attributes.get_attribute if hasattr(attributes, "get_attribute") else attributes.get
    declared = _int(get("data-edge-bytes"))
    if declared is not None:
        return declared
    width, height = _int(get("width")), _int(get("height"))
    if width is None or height is None:
        return None
    return int(width * height * bytes_per_pixel)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip().removesuffix("px").strip()
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


# ---------------------------------------------------------------- compiling


def _compile_route(
    policy: Policy,
    index: int,
    name: str,
    pattern: str,
    tiers: TierThresholds,
    budget: Budget,
    widgets: list[tuple[str, WidgetRule]],
    images: list[ImageRule],
    scripts: list[ScriptRule],
    json_rules: list[JsonRule],
    key: str,
    *,
    own_images: bool = True,
    own_scripts: bool = True,
    own_json: bool = True,
) -> RoutePlan:
    path = policy.path
    prefix = f"{key}." if key else ""
    compiled_widgets = tuple(_compile_widget(path, k, w) for k, w in widgets)
    img_prefix = prefix if own_images else ""
    compiled_images = tuple(_compile_image(path, f"{img_prefix}images[{i}]", r) for i, r in enumerate(images))
    script_prefix = prefix if own_scripts else ""
    compiled_scripts = tuple(_compile_script(path, f"{script_prefix}scripts[{i}]", r) for i, r in enumerate(scripts))
    json_prefix = prefix if own_json else ""
    compiled_json = tuple(
        JsonPlan(_json_path(path, f"{json_prefix}json[{i}].path", r.path), {t: r.action(t) for t in TIERS}, r.keep)
        for i, r in enumerate(json_rules)
    )
    drops = {tier: tuple(w.css for w in compiled_widgets if w.actions[tier] == "drop") for tier in TIERS}
    return RoutePlan(
        index=index,
        name=name,
        pattern=pattern,
        lite_threshold=tiers.lite,
        minimal_threshold=tiers.minimal,
        widgets=compiled_widgets,
        images=compiled_images,
        scripts=compiled_scripts,
        json=compiled_json,
        budget={"full": None, "lite": budget.lite, "minimal": budget.minimal},
        protect=budget.protect,
        bytes_per_pixel=policy.spec.sizes.bytes_per_pixel,
        _drops=drops,
    )


def _no_duplicates(path: str, widgets: list[tuple[str, WidgetRule]]) -> None:
    seen: dict[str, str] = {}
    for key, rule in widgets:
        if rule.ident in seen:
            raise PolicyError(path, key, f"duplicate of {seen[rule.ident]} ({rule.ident!r}); merge the two rules")
        seen[rule.ident] = key


def _merge_widgets(path: str, route_key: str, defaults: list[WidgetRule], own: list[WidgetRule]) -> list[tuple[str, WidgetRule]]:
    """The route's widget rules replace the defaults with the same widget name or selector; new ones are added."""
    own_keys = [(f"{route_key}.widgets[{i}]", w) for i, w in enumerate(own)]
    _no_duplicates(path, own_keys)
    replaced = {w.ident: (k, w) for k, w in own_keys}
    merged = [replaced.pop(w.ident, (f"widgets[{i}]", w)) for i, w in enumerate(defaults)]
    return merged + [kw for kw in own_keys if kw[1].ident in replaced]


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:.\-]*$")


def _compile_widget(path: str, key: str, rule: WidgetRule) -> WidgetPlan:
    css = rule.css
    _check_selector(path, f"{key}.{'selector' if rule.selector else 'widget'}", css)
    actions = {t: rule.action(t) for t in TIERS}
    url = None
    if rule.url is not None:
        url = _url_template(path, f"{key}.url", rule.url)
    trim_css = None
    if rule.keep is not None:
        child = f"{rule.item}:nth-of-type(n+{rule.keep + 1})" if rule.item else f":nth-child(n+{rule.keep + 1})"
        trim_css = ", ".join(f"{part} > {child}" for part in _split_selector_list(css))
        _check_selector(path, f"{key}.item" if rule.item else f"{key}.keep", trim_css)
    label = rule.label or f"Show {rule.widget or 'more'}"
    tag = rule.placeholder_tag
    if tag is not None and tag.lower() not in PLACEHOLDER_TAGS:
        raise PolicyError(
            path, f"{key}.placeholder_tag", f"{tag!r} cannot hold the placeholder's link; use one of {', '.join(sorted(PLACEHOLDER_TAGS))}"
        )
    classes = "{class}" if rule.placeholder_class is None else _class_template(path, f"{key}.placeholder_class", rule.placeholder_class)
    return WidgetPlan(
        rule.ident, css, rule.priority, actions, label, url, rule.keep, trim_css, tag.lower() if tag else None, classes
    )


_CLASS_TEMPLATE = re.compile(r"^[^\x00-\x1f\x7f\"'<>&`=]*$")


def _class_template(path: str, key: str, template: str) -> str:
    """Class names, space-separated, and ``{class}`` for the element's own; checked at load."""
    for m in _PLACEHOLDER.finditer(template):
        if m.group(1) != "class":
            raise PolicyError(path, key, f"{{{m.group(1)}}} is not a placeholder: use {{class}} (the element's own classes)")
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise PolicyError(path, key, f"unbalanced brace in {template!r}")
    if not _CLASS_TEMPLATE.match(rest):
        raise PolicyError(path, key, f"{template!r} is not a list of class names (no quotes, <, >, &, ` or =)")
    return " ".join(template.split())


def _url_template(path: str, key: str, template: str) -> tuple[tuple[str, str | None], ...]:
    """``/fragments/reviews?id={data-product-id}`` → literal and placeholder parts, checked at load."""
    if not (template.startswith("/") and not template.startswith("//")) and not template.startswith(("https://", "http://")):
        raise PolicyError(path, key, f"a widget URL starts with '/' or http(s):// (got {template!r})")
    parts: list[tuple[str, str | None]] = []
    last = 0
    for m in _PLACEHOLDER.finditer(template):
        name = m.group(1)
        if not _PLACEHOLDER_NAME.match(name):
            raise PolicyError(path, key, f"{{{name}}} is not a placeholder: use {{path}} or {{attribute-name}}")
        parts.append((template[last : m.start()], name))
        last = m.end()
    rest = template[last:]
    if "{" in rest or "}" in rest:
        raise PolicyError(path, key, f"unbalanced brace in {template!r}")
    parts.append((rest, None))
    return tuple(parts)


_GROUP_REF = re.compile(r"\\(\d+)|\\g<([^>]*)>")


def _compile_image(path: str, key: str, rule: ImageRule) -> ImagePlan:
    _check_selector(path, f"{key}.selector", rule.selector)
    src = _regex(path, f"{key}.src", rule.src) if rule.src is not None else None
    if rule.variant is not None and src is not None:
        for m in _GROUP_REF.finditer(rule.variant):
            ref = m.group(1) or m.group(2)
            ok = int(ref) <= src.groups if ref.isdigit() else ref in src.groupindex
            if not ok:
                raise PolicyError(path, f"{key}.variant", f"refers to group {ref!r}, but 'src' has {src.groups} group(s)")
        try:
            src.sub(rule.variant, "")
        except re.error as exc:
            raise PolicyError(path, f"{key}.variant", f"invalid replacement {rule.variant!r}: {exc}") from None
    return ImagePlan(rule.selector, src, rule.variant, rule.variant_bytes, rule.lazy, rule.drop_srcset, rule.max_bytes, frozenset(rule.tiers))


def _compile_script(path: str, key: str, rule: ScriptRule) -> ScriptPlan:
    if rule.selector is not None:
        _check_selector(path, f"{key}.selector", rule.selector)
    src = _regex(path, f"{key}.src", rule.src) if rule.src is not None else None
    css = rule.selector if rule.selector is not None else "script[src]"
    return ScriptPlan(css, src, {t: rule.action(t) for t in TIERS}, rule.all_types)


def _regex(path: str, key: str, text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise PolicyError(path, key, f"invalid regular expression {text!r}: {exc}") from None


def _glob_to_regex(glob: str) -> str:
    """``*`` is any run of characters but ``/``, ``**`` any run including ``/``, ``?`` one character but ``/``.

    >>> bool(re.match(_glob_to_regex("/product/*"), "/product/7")), bool(re.match(_glob_to_regex("/product/*"), "/product/7/x"))
    (True, False)
    >>> bool(re.match(_glob_to_regex("/api/**"), "/api/layout/home"))
    True
    """
    out = ["^"]
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    out.append(r"\Z")
    return "".join(out)


def _split_selector_list(css: str) -> list[str]:
    """Split ``a, b[x=","]`` at its top-level commas."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(css):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(css[start:i].strip())
            start = i + 1
    parts.append(css[start:].strip())
    return [p for p in parts if p]


def _check_selector(path: str, key: str, css: str) -> None:
    """Reject a CSS selector the rewriter cannot use now, at load, not at request time."""
    try:
        HTMLRewriter(lambda chunk: None).on(css, _NoHandler())
    except Exception as exc:  # the binding raises RuntimeError with lol_html's message
        raise PolicyError(path, key, f"invalid CSS selector {css!r}: {exc}") from None


class _NoHandler:
    pass


# ---------------------------------------------------------------- JSON paths


_OPS = ("==", "!=", "<=", ">=", "<", ">")


class JsonPath:
    """A compiled JSON path: the small, eval-free subset edge's JSON layout rules use.

    Syntax: ``$`` then steps: ``.key`` or ``['key']`` (a member), ``[*]`` or ``.*``
    (every element or member value), ``[N]`` (an index, negative from the end),
    ``[?(@.key OP literal)]`` (array elements or member values whose ``key`` —
    dotted for nesting — compares to a number, quoted string, ``true``,
    ``false`` or ``null``; OP is ``== != < <= > >=``) and ``[?(@.key)]`` (those
    that have ``key``). :meth:`select` returns ``(container, key)`` pairs for
    the matched values, so a rule can delete or trim them in place.

    >>> doc = {"sections": [{"widget": "ads", "priority": 1, "items": [1, 2, 3]}, {"widget": "grid", "priority": 90}]}
    >>> [c[k] for c, k in JsonPath.parse("$.sections[?(@.priority < 50)]").select(doc)]
    [{'widget': 'ads', 'priority': 1, 'items': [1, 2, 3]}]
    >>> [c[k] for c, k in JsonPath.parse("$.sections[*].items").select(doc)]
    [[1, 2, 3]]
    >>> JsonPath.parse("$.a[")
    Traceback (most recent call last):
    ...
    ValueError: at character 5 of '$.a[': expected an index, *, a quoted key or ?(...)
    """

    __slots__ = ("text", "steps")

    _KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
    _INDEX = re.compile(r"-?\d+")
    _QUOTED = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)\"""")
    _FILTER = re.compile(
        r"\?\(\s*@((?:\.[A-Za-z_][A-Za-z0-9_\-]*)+)\s*(?:(==|!=|<=|>=|<|>)\s*"
        r"""(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|true|false|null)\s*)?\)"""
    )

    def __init__(self, text: str, steps: tuple[tuple, ...]) -> None:
        self.text = text
        self.steps = steps

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Compile ``text``; raises ``ValueError`` saying where and what is wrong."""
        if not text.startswith("$"):
            raise ValueError(f"at character 1 of {text!r}: a path starts with '$'")
        i, steps = 1, []
        while i < len(text):
            if text.startswith(".*", i):
                steps.append(("all",))
                i += 2
            elif text[i] == ".":
                m = cls._KEY.match(text, i + 1)
                if not m:
                    raise ValueError(f"at character {i + 2} of {text!r}: expected a key name after '.'")
                steps.append(("key", m.group()))
                i = m.end()
            elif text[i] == "[":
                j = i + 1
                if text.startswith("*]", j):
                    steps.append(("all",))
                    i = j + 2
                    continue
                m = cls._INDEX.match(text, j)
                if m and text.startswith("]", m.end()):
                    steps.append(("index", int(m.group())))
                    i = m.end() + 1
                    continue
                m = cls._QUOTED.match(text, j)
                if m and text.startswith("]", m.end()):
                    steps.append(("key", _unquote(m.group())))
                    i = m.end() + 1
                    continue
                m = cls._FILTER.match(text, j)
                if m and text.startswith("]", m.end()):
                    keys = tuple(m.group(1)[1:].split("."))
                    literal = _literal(m.group(3)) if m.group(3) is not None else None
                    steps.append(("filter", keys, m.group(2), literal))
                    i = m.end() + 1
                    continue
                raise ValueError(f"at character {j + 1} of {text!r}: expected an index, *, a quoted key or ?(...)")
            else:
                raise ValueError(f"at character {i + 1} of {text!r}: expected '.' or '['")
        if not steps:
            raise ValueError(f"{text!r} selects the whole document; name something inside it")
        return cls(text, tuple(steps))

    def select(self, root: Any) -> list[tuple[Any, Any]]:
        """``(container, key)`` for every value the path matches in ``root``, in document order."""
        current: list[tuple[Any, Any, Any]] = [(None, None, root)]
        for step in self.steps:
            nxt: list[tuple[Any, Any, Any]] = []
            kind = step[0]
            for _, _, value in current:
                if kind == "key":
                    if isinstance(value, dict) and step[1] in value:
                        nxt.append((value, step[1], value[step[1]]))
                elif kind == "index":
                    if isinstance(value, list) and -len(value) <= step[1] < len(value):
                        k = step[1] % len(value)
                        nxt.append((value, k, value[k]))
                else:
                    if isinstance(value, list):
                        children = enumerate(value)
                    elif isinstance(value, dict):
                        children = value.items()  # type: ignore[assignment]
                    else:
                        continue
                    for k, child in children:
                        if kind == "all" or _matches(child, step[1], step[2], step[3]):
                            nxt.append((value, k, child))
            current = nxt
        return [(container, k) for container, k, _ in current]


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


def _literal(text: str) -> Any:
    if text in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[text]
    if text[0] in "'\"":
        return _unquote(text)
    return float(text) if any(c in text for c in ".eE") else int(text)


def _matches(value: Any, keys: tuple[str, ...], op: str | None, literal: Any) -> bool:
    for k in keys:
        if not isinstance(value, dict) or k not in value:
            return False
        value = value[k]
    if op is None:
        return True
    if op in ("==", "!="):
        # true/false are not 1/0 here (Python's bool is an int; JSON's is not).
        equal = value is literal if isinstance(value, bool) or isinstance(literal, bool) else value == literal
        return equal if op == "==" else not equal
    numeric = (int, float)
    if isinstance(value, bool) or isinstance(literal, bool):
        return False
    if not (isinstance(value, numeric) and isinstance(literal, numeric)) and not (isinstance(value, str) and isinstance(literal, str)):
        return False
    if op == "<":
        return value < literal
    if op == "<=":
        return value <= literal
    if op == ">":
        return value > literal
    return value >= literal


def _json_path(path: str, key: str, text: str) -> JsonPath:
    try:
        return JsonPath.parse(text)
    except ValueError as exc:
        raise PolicyError(path, key, f"invalid JSON path: {exc}") from None


# ---------------------------------------------------------------- error messages


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
