"""Compiled plans: what the request path reads, built once at load by :mod:`~edge.pipeline.policy.compiler`.

A :class:`RoutePlan` holds everything edge needs for requests on one route: its
thresholds (:meth:`RoutePlan.tier_for`), and its widget, image, script and JSON
rules with their patterns, selectors and templates already compiled and checked.
Nothing here parses or validates: per request edge only looks things up.

    >>> plan = RoutePlan(0, "default", "**", 0.5, 0.95, (), (), (), (), {"full": None, "lite": None, "minimal": None}, 90, 0.5)
    >>> plan.tier_for(0.5), plan.tier_for(0.49), plan.tier_for(0.95)
    ('lite', 'full', 'minimal')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge.core.tiers import Tier
from edge.pipeline.policy.schema import Action, JsonAction, ScriptAction

if TYPE_CHECKING:
    from edge.pipeline.rewrite.jsonpath import JsonPath

__all__ = ["WidgetPlan", "PLACEHOLDER_TAGS", "ImagePlan", "ScriptPlan", "JsonPlan", "RoutePlan"]


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
        """The tier for p(degraded) on this route: minimal from its minimal threshold, lite from its lite one (p ≥)."""
        if p >= self.minimal_threshold:
            return "minimal"
        if p >= self.lite_threshold:
            return "lite"
        return "full"
