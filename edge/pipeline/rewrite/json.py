"""JSON layout rewriting for app APIs (orjson).

The route's ``[[json]]`` rules (see ``docs/policies.md``) name values by a
small compiled JSON path (:class:`edge.pipeline.rewrite.jsonpath.JsonPath`) and say per tier what
happens to them: ``keep``, ``drop`` (delete the member or array element) or
``trim`` (keep the first ``keep`` elements of an array). Rules apply in file
order. The full tier, and any tier with no rule for the route, returns the body
untouched without parsing it; otherwise the result is compact JSON (orjson),
members in their original order. A body holding a run of 20+ digits (an integer
beyond 64 bits, a long decimal) is refused with :class:`RewriteError`: orjson
would read it as a float and the rewrite would change the number.

    >>> from edge.pipeline.policy import Policy
    >>> policy = Policy.from_toml('''
    ... [[routes]]
    ... name = "api"
    ... path = "/api/**"
    ... [[routes.json]]
    ... path = "$.sections[?(@.priority < 50)]"
    ... lite = "drop"
    ... [[routes.json]]
    ... path = "$.sections[*].items"
    ... lite = "trim"
    ... keep = 1
    ... ''')
    >>> body = b'{"sections": [{"w": "ads", "priority": 1}, {"w": "grid", "priority": 90, "items": [1, 2, 3]}]}'
    >>> JsonRewriter(policy).rewrite(body, "lite", "/api/layout/home")
    b'{"sections":[{"w":"grid","priority":90,"items":[1]}]}'
    >>> JsonRewriter(policy).rewrite(body, "full", "/api/layout/home") is body
    True
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from edge.pipeline.policy import JsonPlan, Policy
from edge.pipeline.rewrite.errors import RewriteError

__all__ = ["JsonRewriter"]

# Numbers long enough that orjson might not give them back as written (also matched inside strings:
# refusing those is merely conservative). Checked one by one in _lossy_number.
_LONG_NUMBER = re.compile(rb"-?\d[\d.]{15,}(?:[eE][+-]?\d+)?")


def _lossy_number(body: bytes) -> bool:
    """True if re-serialising through orjson could change a number in ``body``.

    orjson keeps integers within 64 bits exactly and writes floats in their shortest
    round-trip form; a decimal that is not already in that form would change.

    >>> _lossy_number(b'[0.00012058008974054774, 12345678901234567890]')
    False
    >>> _lossy_number(b'[123456789012345678901234]'), _lossy_number(b'[0.10000000000000000001]')
    (True, True)
    >>> _lossy_number(b'["version 1.2.3.4.5.6.7.8.9"]')
    True
    """
    for match in _LONG_NUMBER.finditer(body):
        token = match.group()
        try:
            if b"." not in token and b"e" not in token.lower():
                if not -(2**63) <= int(token) < 2**64:
                    return True
            elif orjson.dumps(float(token)) != token:
                return True
        except ValueError:  # "1.2.3.4…" inside a string: not a number, but refuse rather than guess
            return True
    return False


class JsonRewriter:
    """Apply a policy's JSON layout rules. :meth:`rewrite` raises only :class:`RewriteError`."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._plans: dict[tuple[int, str], tuple[tuple[JsonPlan, str], ...]] = {
            (route.index, tier): tuple((rule, rule.actions[tier]) for rule in route.json if rule.actions[tier] != "keep")
            for route in policy.routes
            for tier in ("lite", "minimal")
        }

    def applies(self, tier: str, path: str) -> bool:
        """Whether :meth:`rewrite` would change anything for this tier and path (a lookup, no parse)."""
        return bool(self._plans.get((self.policy.for_path(path).index, tier)))

    def rewrite(self, body: bytes, tier: str, path: str) -> bytes:
        """``body`` laid out for ``tier`` on the route of ``path`` (the same object back when nothing applies)."""
        rules = self._plans.get((self.policy.for_path(path).index, tier))
        if not rules:
            return body
        if _lossy_number(body):
            # orjson reads integers beyond 64 bits and long decimals as floats: re-serialising would change them.
            raise RewriteError("a number would lose precision through orjson; pass the body through")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RewriteError(f"not JSON orjson can read: {exc}") from exc
        for rule, action in rules:
            _apply(doc, rule, action)
        try:
            return orjson.dumps(doc)
        except (TypeError, orjson.JSONEncodeError) as exc:  # pragma: no cover - loads() output always dumps
            raise RewriteError(f"could not serialise the rewritten JSON: {exc}") from exc


def _apply(doc: Any, rule: JsonPlan, action: str) -> None:
    targets = rule.path.select(doc)
    if action == "trim":
        keep = rule.keep or 0
        for container, key in targets:
            value = container[key]
            if isinstance(value, list) and len(value) > keep:
                del value[keep:]
        return
    # drop: members by key; array elements by index, highest first so the others stay put.
    by_list: dict[int, tuple[list, set[int]]] = {}
    for container, key in targets:
        if isinstance(container, dict):
            container.pop(key, None)
        else:
            by_list.setdefault(id(container), (container, set()))[1].add(key)
    for container, indexes in by_list.values():
        for index in sorted(indexes, reverse=True):
            del container[index]
