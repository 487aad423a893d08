"""Compiling: a validated :class:`~edge.pipeline.policy.schema.PolicyFile` → the :class:`~edge.pipeline.policy.plan.RoutePlan` s.

Everything the schema cannot check is checked here, once, at load: CSS selectors
(against the rewriter's own parser), regular expressions and their group
references, URL and class templates, JSON paths, widget names used twice. A
problem raises :class:`~edge.core.errors.PolicyError` naming the file, the key
path and the problem, as the schema's errors do. Route globs become regular
expressions: ``*`` is any run of characters but ``/``, ``**`` any run, ``?`` one
character but ``/``.
"""

from __future__ import annotations

import re

from lolhtml import HTMLRewriter

from edge.core.errors import PolicyError
from edge.core.tiers import TIERS
from edge.pipeline.policy.plan import PLACEHOLDER_TAGS, ImagePlan, JsonPlan, RoutePlan, ScriptPlan, WidgetPlan
from edge.pipeline.policy.schema import (
    Action,
    Budget,
    ImageRule,
    JsonAction,
    JsonRule,
    PolicyFile,
    RouteRule,
    ScriptAction,
    ScriptRule,
    TierThresholds,
    WidgetRule,
)

__all__ = ["CompiledRoutes", "compile_routes"]

#: The default route's plan, then each ``[[routes]]`` entry's pattern and plan, in file order.
CompiledRoutes = tuple[RoutePlan, tuple[tuple[re.Pattern[str], RoutePlan], ...]]


def compile_routes(spec: PolicyFile, path: str) -> CompiledRoutes:
    """Compile the default route and every ``[[routes]]`` entry; ``path`` names the file in errors."""
    bytes_per_pixel = spec.sizes.bytes_per_pixel
    defaults = [(f"widgets[{i}]", w) for i, w in enumerate(spec.widgets)]
    _no_duplicates(path, defaults)
    default = _compile_route(
        path, 0, "default", "**", spec.tiers, spec.budget, defaults, spec.images, spec.scripts, spec.json_rules, "", bytes_per_pixel
    )
    routes: list[tuple[re.Pattern[str], RoutePlan]] = []
    seen: dict[str, int] = {}
    for i, route in enumerate(spec.routes):
        key = f"routes[{i}]"
        if route.name in seen or route.name == "default":
            raise PolicyError(
                path,
                f"{key}.name",
                f"route name {route.name!r} is already used" + (f" by routes[{seen[route.name]}]" if route.name in seen else ""),
            )
        seen[route.name] = i
        pattern, text = _route_pattern(path, key, route)
        merged = _merge_widgets(path, key, spec.widgets, route.widgets)
        plan = _compile_route(
            path,
            i + 1,
            route.name,
            text,
            route.tiers or spec.tiers,
            route.budget or spec.budget,
            merged,
            spec.images if route.images is None else route.images,
            spec.scripts if route.scripts is None else route.scripts,
            spec.json_rules if route.json_rules is None else route.json_rules,
            key,
            bytes_per_pixel,
            own_images=route.images is not None,
            own_scripts=route.scripts is not None,
            own_json=route.json_rules is not None,
        )
        routes.append((pattern, plan))
    return default, tuple(routes)


def _route_pattern(path: str, key: str, route: RouteRule) -> tuple[re.Pattern[str], str]:
    """The route's compiled pattern and its text as written (a glob or a regular expression)."""
    if route.path is not None:
        return re.compile(_glob_to_regex(route.path), re.DOTALL), route.path
    assert route.regex is not None  # the schema requires exactly one of the two
    return _regex(path, f"{key}.regex", route.regex), route.regex


def _compile_route(
    path: str,
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
    bytes_per_pixel: float,
    *,
    own_images: bool = True,
    own_scripts: bool = True,
    own_json: bool = True,
) -> RoutePlan:
    prefix = f"{key}." if key else ""
    compiled_widgets = tuple(_compile_widget(path, k, w) for k, w in widgets)
    img_prefix = prefix if own_images else ""
    compiled_images = tuple(_compile_image(path, f"{img_prefix}images[{i}]", r) for i, r in enumerate(images))
    script_prefix = prefix if own_scripts else ""
    compiled_scripts = tuple(_compile_script(path, f"{script_prefix}scripts[{i}]", r) for i, r in enumerate(scripts))
    json_prefix = prefix if own_json else ""
    compiled_json = tuple(_compile_json(path, f"{json_prefix}json[{i}]", r) for i, r in enumerate(json_rules))
    drops: dict[str, tuple[str, ...]] = {tier: tuple(w.css for w in compiled_widgets if w.actions[tier] == "drop") for tier in TIERS}
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
        bytes_per_pixel=bytes_per_pixel,
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
    actions: dict[str, Action] = {t: rule.action(t) for t in TIERS}
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
    return WidgetPlan(rule.ident, css, rule.priority, actions, label, url, rule.keep, trim_css, tag.lower() if tag else None, classes)


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
    return ImagePlan(
        rule.selector, src, rule.variant, rule.variant_bytes, rule.lazy, rule.drop_srcset, rule.max_bytes, frozenset(rule.tiers)
    )


def _compile_script(path: str, key: str, rule: ScriptRule) -> ScriptPlan:
    if rule.selector is not None:
        _check_selector(path, f"{key}.selector", rule.selector)
    src = _regex(path, f"{key}.src", rule.src) if rule.src is not None else None
    css = rule.selector if rule.selector is not None else "script[src]"
    actions: dict[str, ScriptAction] = {t: rule.action(t) for t in TIERS}
    return ScriptPlan(css, src, actions, rule.all_types)


def _compile_json(path: str, key: str, rule: JsonRule) -> JsonPlan:
    # Imported here, not at the top: edge.pipeline.rewrite's package imports the rewriters, which import this
    # package; by the time a policy is compiled both are loaded. (jsonpath itself imports nothing of edge.)
    from edge.pipeline.rewrite.jsonpath import JsonPath

    try:
        json_path = JsonPath.parse(rule.path)
    except ValueError as exc:
        raise PolicyError(path, f"{key}.path", f"invalid JSON path: {exc}") from None
    actions: dict[str, JsonAction] = {t: rule.action(t) for t in TIERS}
    return JsonPlan(json_path, actions, rule.keep)


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
