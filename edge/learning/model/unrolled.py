"""Straight-line code for :class:`~edge.learning.model.linear.ScaledLogReg`'s pass, one function per feature layout.

A layout is the tuple of a feature dict's names in order (``tuple(z)``); the features
:class:`~edge.learning.model.river.EdgeFeatures` gives a client have the same layout label after label.
For a layout whose names all have slots, :func:`compile_pass` writes the flat learner's first pass
(:meth:`ScaledLogReg.first_pass`) once with every slot index a constant and every feature a local —
no loop, no name lookup, no ``try`` — and ``exec`` s it, as ``dataclasses`` writes ``__init__``.
The body of each feature's block is the loop's body, operation for operation, so the numbers are the
loop's to the bit (``tests/learning/test_linear.py`` runs both side by side). Why: the loop's own
bookkeeping (iterating the dict, the slot lookup, the index loads) was about half of the pass.

    >>> fn = compile_pass((0, 1))
    >>> count, mean, var, std, w, constant = [0, 0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]
    >>> fn((1.0, 5.0), count, mean, var, std, w, constant)   # slot 0 at its constant: its count only
    (0.0, 0.0, [1], [0.0])
    >>> count, mean
    ([1, 1], [0.0, 5.0])
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["compile_pass", "compile_inputs", "FirstPass", "Layouts"]

#: ``(values, count, mean, var, std, w, constant) -> (before, after, slots, scaled)``: the features'
#: values in the layout's order and the learner's per-slot lists (see ScaledLogReg.first_pass).
FirstPass = Callable[..., tuple[float, float, list[int], list[float]]]

# One feature's block: ScaledLogReg.first_pass's loop body with the slot I and the value X fixed (its
# variance is ``vr``: the features pass keeps an input's value in ``v``). _WELFORD is its else branch.
_WELFORD = """\
        m, vr, wi = mean[{i}], var[{i}], w[{i}]
        if vr:
            before += wi * (({x} - m) / std[{i}])
        n = count[{i}] + 1
        d = {x} - m
        m += d / n
        vr += (d * ({x} - m) - vr) / n
        s = vr**0.5
        count[{i}], mean[{i}], var[{i}], std[{i}] = n, m, vr, s
        xa = ({x} - m) / s if vr else 0.0
        after += wi * xa
        slots.append({i})
        scaled.append(xa)
"""
_BLOCK = """\
    if {x} == constant[{i}]:
        count[{i}] = count[{i}] + 1
    else:
""" + _WELFORD  # (``c[i] = c[i] + 1`` is the loop's ``c[i] += 1`` on an int, a few ns cheaper)


def compile_pass(slots: Sequence[int]) -> FirstPass:
    """The first pass over features whose slots are ``slots``, in that order, as straight-line code."""
    names = [f"x{k}" for k in range(len(slots))]
    lines = [
        "def first_pass(values, count, mean, var, std, w, constant):",
        f"    {', '.join(names)}{',' if len(names) == 1 else ''} = values" if names else "    pass",
        "    before = after = 0.0",
        "    slots = []",
        "    scaled = []",
    ]
    lines += [_BLOCK.format(x=x, i=int(i)) for x, i in zip(names, slots)]
    lines.append("    return before, after, slots, scaled")
    namespace: dict[str, object] = {}
    exec(compile("\n".join(lines), f"<ScaledLogReg pass over {len(slots)} slots>", "exec"), namespace)  # noqa: S102
    return namespace["first_pass"]  # type: ignore[return-value]


class Layouts:
    """Compiled functions by layout: ``get(layout)`` is the function, or None until :meth:`seen` has compiled
    it (the ``after``-th sighting; at most ``limit`` layouts are compiled, a rare one keeps the loop).

    >>> layouts = Layouts(lambda layout: len(layout), after=2, limit=1)
    >>> layouts.seen(("a",)), layouts.seen(("a",)), layouts.get(("a",)), layouts.seen(("b", "c")), layouts.seen(("b", "c"))
    (None, 1, 1, None, None)
    """

    __slots__ = ("_make", "_after", "_limit", "_compiled", "_seen", "get")

    def __init__(self, make: Callable[..., Callable[..., Any]], *, after: int, limit: int) -> None:
        self._make, self._after, self._limit = make, after, limit
        self._compiled: dict[tuple, Callable[..., Any]] = {}
        self._seen: dict[tuple, int] = {}
        self.get = self._compiled.get

    def seen(self, layout: tuple, *args: Any) -> Callable[..., Any] | None:
        """Count a sighting of ``layout`` (which the loop just ran); its compiled function (``make(layout, *args)``)
        once it has one."""
        seen = self._seen
        n = seen[layout] = seen.get(layout, 0) + 1
        if n < self._after or len(self._compiled) >= self._limit:
            if len(seen) > 16 * self._limit:  # many rare layouts: count afresh
                seen.clear()
            return None
        fn = self._compiled[layout] = self._make(layout, *args)
        return fn

    def __len__(self) -> int:
        return len(self._compiled)


#: The rest of an input's coercion, after its ``str`` branch (both passes below write it): a number becomes a
#: float, anything else None, and only a finite value goes on (``river._input_pass``'s rule).
_NOT_A_STRING = [
    "            v = None",
    "        elif isinstance(v, (int, float)):",
    "            v = float(v)",
    "        else:",
    "            v = None",
    "    if v is not None and v - v == 0.0:  # not inf nor nan",
]


def compile_inputs(layout: tuple, plan: dict, one_hot: dict, codes: dict[str, str]) -> Callable[..., tuple[dict, bool]]:
    """:class:`~edge.learning.model.river.EdgeFeatures`' loop over the inputs (``river._input_pass``) for inputs
    named ``layout``, in that order, as straight-line code: ``fn(x.values()) -> (out, has_tcp_rtt)``.

    ``plan`` and ``one_hot`` are ``river._PLAN`` and ``river._ONE_HOT_KEYS``; ``codes`` names the plan's steps
    (``{"log10": …, "log1p": …, "banded": …, "tcp band": …, "unused": …}``). Each input's block is the loop's
    body for that name's step; a ``str`` name is written as a literal, any other is a global of the code.
    """
    env: dict[str, object] = {"log10": math.log10, "log1p": math.log1p, "bisect_right": bisect_right}
    names = [f"x{k}" for k in range(len(layout))]
    lines = ["def input_pass(values):"]
    if names:
        lines.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = values")
    lines += ["    out = {}", "    has_tcp_rtt = False"]
    for k, (x, name) in enumerate(zip(names, layout)):
        env[f"N{k}"] = name
        key_of = repr(name) if type(name) is str else f"N{k}"
        keys = one_hot.get(name)
        if keys is not None:
            env[f"K{k}"] = keys
            on_str = [f"        key = K{k}.get(v)", "        if key is not None:", "            out[key] = 1.0"]
        else:
            on_str = []
        lines += [f"    v = {x}", "    if type(v) is not float:", "        if isinstance(v, str):"]
        lines += ["    " + line for line in on_str]
        lines += _NOT_A_STRING
        step = plan.get(name)
        code = None if step is None else step[0]
        if step is not None and code in (codes["banded"], codes["tcp band"]):
            env[f"E{k}"], env[f"B{k}"] = step[1], step[2]
        if step is None:
            lines.append(f"        out[{key_of}] = v")
        elif code is codes["log10"]:
            lines.append(f"        out[{key_of}] = log10(v if v >= 1.0 else 1.0)")
        elif code is codes["log1p"]:
            lines.append(f"        out[{key_of}] = log1p(v if v >= 0.0 else 0.0)")
        elif code is codes["banded"]:
            lines += [f"        out[{key_of}] = v", f"        out[B{k}[bisect_right(E{k}, v)]] = 1.0"]
        elif code is codes["tcp band"]:
            lines.append(f"        out[B{k}[bisect_right(E{k}, v)]] = 1.0")
            if name == "tcp_rtt_ms":
                lines.append("        has_tcp_rtt = True")
        else:  # unused
            lines.append("        pass")
    lines.append("    return out, has_tcp_rtt")
    exec(compile("\n".join(lines), f"<EdgeFeatures inputs, {len(layout)} names>", "exec"), env)  # noqa: S102
    return env["input_pass"]  # type: ignore[return-value]


def _slot_for(key: Any, index: dict, new_slot: Callable[[Any], int]) -> int:
    """``key``'s slot, a new one if it has none (the generated code's ``index.get`` then ``new_slot``)."""
    i = index.get(key)
    return new_slot(key) if i is None else i


def _one_hot_slot(value: str, keys: dict[str, str], cache: dict[str, int], index: dict, new_slot: Callable[[Any], int]) -> int | None:
    """The slot of the one-hot feature ``keys[value]`` (a new one if it has none), remembered in ``cache``; None for a
    value outside the vocabulary (not remembered: ``cache`` stays as small as the vocabulary)."""
    key = keys.get(value)
    if key is None:
        return None
    i = cache[value] = _slot_for(key, index, new_slot)
    return i


def _indent(block: list[str], by: str = "    ") -> list[str]:
    return [by + line for line in block]


def _input_lines(
    k: int, x: str, name: str, tables: dict[str, Any], env: dict[str, Any], slot_of: Callable[[Any], int | None],
    feature: Callable[..., list[str]], band: Callable[[int], list[str]],
) -> list[str]:
    """compile_features_pass's code for input ``k`` (named ``name``, its value the local ``x``), at indent 4: the short
    path for its common case, then the general code under its else; what it needs goes into ``env``."""
    plan, one_hot, codes = tables["plan"], tables["one_hot"], tables["codes"]
    lines: list[str] = []
    keys = one_hot.get(name)
    step = plan.get(name)
    code = None if step is None else step[0]
    keep = {"last_kbps": "lk", "cell_degraded_share": "cs"}.get(name)
    if step is not None and code in (codes["banded"], codes["tcp band"]):
        env[f"E{k}"], env[f"B{k}"], env[f"BS{k}"] = step[1], step[2], [None] * len(step[2])
    # The input as a finite float v: its features (the loop's order), at indent 8.
    numeric: list[str] = []
    if step is None or code is codes["banded"]:
        numeric += feature(name, "v")
    elif code is codes["log10"]:
        numeric += feature(name, "log10(v if v >= 1.0 else 1.0)")
    elif code is codes["log1p"]:
        numeric += feature(name, "log1p(v if v >= 0.0 else 0.0)")
    if keep and (step is None or code in (codes["banded"], codes["log10"], codes["log1p"])):
        numeric.append(f"        {keep} = xi")
    if code is codes["banded"] or code is codes["tcp band"]:
        numeric += band(k)
        if code is codes["tcp band"] and name == "tcp_rtt_ms":
            numeric.append("        has_tcp_rtt = True")
    if step is not None and code is codes["unused"]:
        numeric.append("        pass")
    # The general code: any value (the loop's coercion), at indent 4.
    general = [f"    v = {x}", "    if type(v) is not float:", "        if isinstance(v, str):"]
    if keys is not None:
        env[f"K{k}"], env[f"S{k}"] = keys, {}
        general += [f"            key = K{k}.get(v)", "            if key is not None:"]
        general += _indent(feature(None, "1.0", runtime_key="key"), "        ")
    general += _NOT_A_STRING + numeric
    # The short path first (docstring), then the general code under its else.
    slot = slot_of(name)
    if keys is not None:
        lines += [f"    if type({x}) is str:", f"        i = S{k}.get({x})", "        if i is None:"]
        lines += [f"            i = one_hot_slot({x}, K{k}, S{k}, index, new_slot)", "        if i is not None:"]
        lines += _indent(_BLOCK.format(x="1.0", i="i").splitlines(), "        ")
    elif slot is not None and (step is None or code is codes["banded"]):  # the value is the feature: its constant first
        i = int(slot)
        tail = ([f"        {keep} = v"] if keep else []) + (band(k) if code is codes["banded"] else [])
        tail = [f"        v = {x}", *tail] if tail else []
        lines += [f"    if type({x}) is float:", f"        if {x} == constant[{i}]:", f"            count[{i}] = count[{i}] + 1", *_indent(tail)]
        lines += [f"        elif {x} - {x} == 0.0:", *_indent(_WELFORD.format(x=x, i=i).splitlines()), *_indent(tail)]
    else:
        lines += [f"    if type({x}) is float and {x} - {x} == 0.0:", f"        v = {x}", *numeric]
    lines += ["    else:", *_indent(general)]
    return lines


def compile_features_pass(layout: tuple, slot_of: Callable[[Any], int | None], tables: dict[str, Any]) -> FirstPass:
    """:class:`~edge.learning.model.river.EdgeFeatures`' transform and the flat learner's first pass in one piece of
    straight-line code for inputs named ``layout``: each feature goes to the learner as it is made, in the order
    the transform would have put it in its dict, and no dict is built. ``fn(x, values, p, half_life, rules, count,
    mean, var, std, w, constant, index, new_slot) -> (before, after, slots, scaled)`` is what
    ``learner.first_pass(features.transform_with_rules(x, p))`` gives (tests/learning/test_linear.py).

    A feature whose slot ``slot_of(name)`` knows is written with its slot as a constant; the others (and the
    one-hot and band features, named by their values) look theirs up, and the function remembers those it found
    (value → slot, band → slot: a learner's slots never move; one compiled function serves one learner). ``tables``:
    river's ``plan``, ``one_hot``, ``codes`` (as :func:`compile_inputs`), ``tail_keys`` (the names the transform adds
    after the inputs), ``last_bands``, ``last_band_keys`` and ``centre``. A layout with a name holding ``=`` or one
    of ``tail_keys`` could put a feature twice in the transform's dict: ValueError, the caller keeps the two steps.

    Each input's code starts with a short path for its common case — an exact ``str`` for a one-hot name, a finite
    ``float`` otherwise, and first of all a ``float`` equal to its feature's constant (an indicator-like feature:
    only its count moves) — that does what the general code after it would do in that case, fewer steps: the
    type checks once, no ``None`` check, the constant compared before the finiteness (equal to a finite constant
    is finite: the learner never holds an infinite one, :meth:`~edge.learning.model.linear.ScaledLogReg.from_river`).
    """
    if any(type(name) is not str or "=" in name or name in tables["tail_keys"] for name in layout):
        raise ValueError("this layout's features could collide: the transform's dict decides their order")
    env: dict[str, Any] = {
        "log": math.log, "log10": math.log10, "log1p": math.log1p, "bisect_right": bisect_right, "slot_for": _slot_for,
        "one_hot_slot": _one_hot_slot, "LAST_BANDS": tables["last_bands"], "LAST_BAND_KEYS": tables["last_band_keys"],
        "LAST_SLOTS": [None] * len(tables["last_band_keys"]), "CENTRE": tables["centre"],
    }
    lines = ["def features_pass(x, values, p, half_life, rules, count, mean, var, std, w, constant, index, new_slot):"]
    names = [f"x{k}" for k in range(len(layout))]
    if names:
        lines.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = values")
    lines += ["    before = after = 0.0", "    slots = []", "    scaled = []", "    has_tcp_rtt = False", "    lk = cs = None"]

    def feature(key: str | None, value: str, runtime_key: str = "") -> list[str]:
        """The learner's block for one feature (``key`` a literal name, or ``runtime_key`` an expression), at indent 8."""
        out = [f"xi = {value}"]
        slot = None if key is None else slot_of(key)
        if slot is None:
            out += [f"i = index.get({runtime_key or repr(key)})", "if i is None:", f"    i = new_slot({runtime_key or repr(key)})"]
            i = "i"
        else:
            i = str(int(slot))
        return _indent(out, "        ") + [line[4:] for line in _indent(_BLOCK.format(x="xi", i=i).splitlines(), "        ")]

    def band(k: int) -> list[str]:
        """The band feature of input ``k`` (finite ``v``), its slot remembered per band (``BS{k}``), at indent 8."""
        head = [f"b = bisect_right(E{k}, v)", f"i = BS{k}[b]", "if i is None:", f"    i = BS{k}[b] = slot_for(B{k}[b], index, new_slot)"]
        return _indent(head, "        ") + _indent(_BLOCK.format(x="1.0", i="i").splitlines())

    for k, (x, name) in enumerate(zip(names, layout)):
        lines += _input_lines(k, x, name, tables, env, slot_of, feature, band)
    lines += [
        "    if lk is not None:",
        "        age = x.get('last_age_s')",
        "        fresh = 0.5 ** (float(age) / half_life) if isinstance(age, (int, float)) else 0.5",
        *feature("last_fresh", "fresh"),
        *feature("last_kbps_fresh", "(lk - CENTRE) * fresh"),
        "        b = bisect_right(LAST_BANDS, float(x['last_kbps']))",
        "        i = LAST_SLOTS[b]",
        "        if i is None:",
        "            i = LAST_SLOTS[b] = slot_for(LAST_BAND_KEYS[b], index, new_slot)",
        *_indent(_BLOCK.format(x="fresh", i="i").splitlines()),
        "    else:",
        *feature("no_last", "1.0"),
        "    if cs is not None:",
        "        samples = x.get('cell_samples')",
        "        n = float(samples) if isinstance(samples, (int, float)) else 0.0",
        "        confidence = n / (n + 3.0)",
        *feature("cell_share_conf", "(cs - 0.5) * confidence"),
        "    else:",
        *feature("no_cell", "1.0"),
        "    if not has_tcp_rtt:",
        *feature("no_tcp", "1.0"),
        "    if p is not None and rules:",
        "        p = 0.01 if p < 0.01 else 0.99 if p > 0.99 else p",
        *feature("rules", "log(p / (1.0 - p))"),
        "    return before, after, slots, scaled",
    ]
    exec(compile("\n".join(lines), f"<EdgeFeatures and ScaledLogReg, {len(layout)} inputs>", "exec"), env)  # noqa: S102
    return env["features_pass"]
