"""The JSON path language of the ``[[json]]`` layout rules: a small, eval-free subset of JSONPath.

The policy compiles each rule's path once at load (:mod:`edge.pipeline.policy.compiler`);
:class:`~edge.pipeline.rewrite.json.JsonRewriter` selects with it per response.
Imports nothing of edge: the policy and the rewriters both stand on it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["JsonPath"]


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

    def __init__(self, text: str, steps: tuple[tuple[Any, ...], ...]) -> None:
        self.text = text
        #: ``("key", name)``, ``("index", n)``, ``("all",)`` or ``("filter", keys, op | None, literal)``.
        self.steps = steps

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Compile ``text``; raises ``ValueError`` saying where and what is wrong."""
        if not text.startswith("$"):
            raise ValueError(f"at character 1 of {text!r}: a path starts with '$'")
        i = 1
        steps: list[tuple[Any, ...]] = []
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
                step, i = cls._bracket(text, i + 1)
                steps.append(step)
            else:
                raise ValueError(f"at character {i + 1} of {text!r}: expected '.' or '['")
        if not steps:
            raise ValueError(f"{text!r} selects the whole document; name something inside it")
        return cls(text, tuple(steps))

    @classmethod
    def _bracket(cls, text: str, j: int) -> tuple[tuple[Any, ...], int]:
        """The step in ``[...]`` opening just before ``j``, and where the text goes on after its ``]``."""
        if text.startswith("*]", j):
            return ("all",), j + 2
        m = cls._INDEX.match(text, j)
        if m and text.startswith("]", m.end()):
            return ("index", int(m.group())), m.end() + 1
        m = cls._QUOTED.match(text, j)
        if m and text.startswith("]", m.end()):
            return ("key", _unquote(m.group())), m.end() + 1
        m = cls._FILTER.match(text, j)
        if m and text.startswith("]", m.end()):
            keys = tuple(m.group(1)[1:].split("."))
            literal = _literal(m.group(3)) if m.group(3) is not None else None
            return ("filter", keys, m.group(2), literal), m.end() + 1
        raise ValueError(f"at character {j + 1} of {text!r}: expected an index, *, a quoted key or ?(...)")

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
                    children: Iterable[tuple[Any, Any]]
                    if isinstance(value, list):
                        children = enumerate(value)
                    elif isinstance(value, dict):
                        children = value.items()
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


_ORDER: dict[str, Callable[[Any, Any], Any]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


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
    if isinstance(value, bool) or isinstance(literal, bool):
        return False
    numbers = isinstance(value, int | float) and isinstance(literal, int | float)
    strings = isinstance(value, str) and isinstance(literal, str)
    return (numbers or strings) and bool(_ORDER[op](value, literal))
