"""Stage 4: policy files — what storefront engineers write — and the tier decision.

- ``schema``: what the TOML may say (pydantic models) and errors naming the file, key and problem;
- ``plan``: the compiled plans the request path reads (:class:`RoutePlan` and its widget, image,
  script and JSON plans; :meth:`RoutePlan.tier_for`);
- ``compiler``: schema → plans, checking selectors, patterns, templates and JSON paths at load;
- ``decide``: :class:`Policy` (route lookup, :meth:`Policy.decide`), :class:`Decision`,
  :func:`load_policy` and :func:`holdback_draw`.

The language is documented in ``docs/policies.md`` (summary in ``schema``). The JSON path
language and the declared image size serve the rewriters and live with them:
:mod:`edge.pipeline.rewrite.jsonpath`, :mod:`edge.pipeline.rewrite.images` (still importable
from here). ``Tier`` and ``TIERS`` are :mod:`edge.core.tiers`'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.tiers import TIERS, Tier
from edge.pipeline.policy.decide import Decision, Policy, holdback_draw, load_policy
from edge.pipeline.policy.plan import PLACEHOLDER_TAGS, ImagePlan, JsonPlan, RoutePlan, ScriptPlan, WidgetPlan
from edge.pipeline.policy.schema import PolicyFile

__all__ = [
    "Policy",
    "PolicyFile",
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

if TYPE_CHECKING:
    from edge.pipeline.rewrite.images import declared_image_bytes
    from edge.pipeline.rewrite.jsonpath import JsonPath
else:

    def __getattr__(name: str) -> object:
        # The two names that moved to edge.pipeline.rewrite, imported on first use: a module-level
        # import would run edge.pipeline.rewrite's __init__, whose rewriters import this package.
        if name == "JsonPath":
            from edge.pipeline.rewrite.jsonpath import JsonPath

            return JsonPath
        if name == "declared_image_bytes":
            from edge.pipeline.rewrite.images import declared_image_bytes

            return declared_image_bytes
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
