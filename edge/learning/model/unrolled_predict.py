"""The River model's prediction as straight-line code, one function per layout of inputs (no dict, no loop).

:meth:`RiverModel.predict <edge.learning.model.river.RiverModel.predict>` with the default pipeline is
``ScaledLogReg.predict(EdgeFeatures().transform_one(x))``: the transform builds a dict of ~35 features,
the learner walks it, looks each name up and sums ``w · (x − mean) / std`` over those with a spread. The
champion/challenger serves that when the River model is champion (on the video traces), per request.
:func:`compile_features_predict` writes the two for one layout of input names (``tuple(x)``) as one
function, as :func:`~edge.learning.model.unrolled.compile_features_pass` does for a label: each feature's
term is added as the transform makes it, in the order it would have put it in its dict, with its slot a
constant when the learner had one at compile time; what the layout decides is decided when compiling (the
transform's ``x.get(name)`` is that input's local or None, a band is a chain of comparisons with the edges
written in, not a ``bisect_right`` call). The sum is the loop's, term for term and in its order,
so the prediction is the loop's to the bit (``tests/learning/test_predict.py``). Why: the dict, the loop's
lookups and the calls were ~2/3 of the River model's predict (17–19 µs).

A prediction never changes the learner: a feature it has no slot for (never learned) adds nothing, as in
the loop, and none is made for it.

    >>> from edge.learning.model.river import RiverModel
    >>> model = RiverModel()
    >>> for k in range(40):
    ...     model.learn({"radio": "lte", "cqi": 3.0 + k % 2}, True)
    ...     model.learn({"radio": "nr", "cqi": 14.0 + k % 3}, False)
    >>> loop = model._fused.predict(model._features.transform_one({"radio": "lte", "cqi": 4.0}))
    >>> [model.predict({"radio": "lte", "cqi": 4.0}) == loop for _ in range(10)]   # compiled at the 8th
    [True, True, True, True, True, True, True, True, True, True]
    >>> len(model._fused._p_passes)
    1
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from edge.learning.model.unrolled import _NOT_A_STRING, _indent

__all__ = ["compile_features_predict", "PredictPass"]

#: ``(x, values, p, half_life, rules, mean, var, std, w, index) -> dot``: the dot product of the scaled
#: features with the weights (before the intercept), as ``ScaledLogReg.predict``'s loop sums it.
PredictPass = Callable[..., float]

# One feature's term at slot I of value X (a name or a literal): the loop's body (ScaledLogReg.predict).
_TERM = """\
if var[{i}]:
    dot += w[{i}] * (({x} - mean[{i}]) / std[{i}])"""
_SIMPLE = ("v", "1.0", "fresh")  # values the term reads as they are (a local or a literal): no xi


def _term(key: Any, value: str, slot_of: Callable[[Any], int | None], env: dict[str, Any]) -> list[str]:
    """One feature's term at indent 0: its slot a constant when ``slot_of(key)`` knows it; else looked up (a name with no
    slot adds nothing, as in the loop, and none is made: slots are the learner's, made as it learns)."""
    lines = [] if value in _SIMPLE else [f"xi = {value}"]
    x = value if value in _SIMPLE else "xi"
    slot = slot_of(key)
    if slot is not None:
        return lines + _TERM.format(i=int(slot), x=x).splitlines()
    env[name := f"KEY{len(env)}"] = key
    return lines + [f"i = index.get({name})", "if i is not None:", *_indent(_TERM.format(i="i", x=x).splitlines())]


def _bands(edges: tuple[float, ...], keys: tuple[str, ...], of: str, value: str, slot_of: Callable[[Any], int | None], env: dict[str, Any]) -> list[str]:
    """The term of ``keys[bisect_right(edges, of)]`` (a finite float ``of``; ascending ``edges``) at indent 0, as a chain
    of comparisons: band ``b`` is the first whose edge is above ``of`` (the edges at or below it, counted)."""
    lines: list[str] = []
    for b, key in enumerate(keys):
        if b < len(edges):
            e = edges[b]
            if type(e) is not float or e - e != 0.0:  # a literal only for a finite float (its repr is exact)
                env[edge := f"EDGE{len(env)}"] = e
            else:
                edge = repr(e)
            lines.append(f"{'if' if b == 0 else 'elif'} {of} < {edge}:")
        else:
            lines.append("else:" if b else "if True:")
        lines += _indent(_term(key, value, slot_of, env))
    return lines


def _input_lines(k: int, x: str, name: str, tables: dict[str, Any], env: dict[str, Any], slot_of: Callable[[Any], int | None]) -> list[str]:
    """Input ``k``'s code (named ``name``, its value the local ``x``) at indent 4: a short path for its common case (an
    exact ``str`` for a one-hot name, a finite ``float`` otherwise), then the transform's general coercion. It keeps
    ``lk``/``lv`` (the last throughput's feature and value) and ``cs`` (the cell's degraded share) for the tail."""
    plan, one_hot, codes = tables["plan"], tables["one_hot"], tables["codes"]
    keys, step = one_hot.get(name), plan.get(name)
    code = None if step is None else step[0]
    numeric: list[str] = []  # the input as a finite float v: its features in the transform's order, at indent 0
    if step is None or code is codes["banded"]:
        numeric += _term(name, "v", slot_of, env)
    elif code is codes["log10"]:
        numeric += _term(name, "log10(v if v >= 1.0 else 1.0)", slot_of, env)
    elif code is codes["log1p"]:
        numeric += _term(name, "log1p(v if v >= 0.0 else 0.0)", slot_of, env)
    if name == "last_kbps" and (step is None or code in (codes["banded"], codes["log10"], codes["log1p"])):
        numeric += [f"lk = {'v' if step is None or code is codes['banded'] else 'xi'}", "lv = v"]
    if name == "cell_degraded_share" and (step is None or code in (codes["banded"], codes["log10"], codes["log1p"])):
        numeric.append(f"cs = {'v' if step is None or code is codes['banded'] else 'xi'}")
    if code is codes["banded"] or code is codes["tcp band"]:
        numeric += _bands(step[1], step[2], "v", "1.0", slot_of, env)
        if code is codes["tcp band"] and name == "tcp_rtt_ms":
            numeric.append("has_tcp_rtt = True")
    if not numeric:  # an unused input
        numeric.append("pass")
    one = []  # a one-hot value v (a str): its indicator's term, the slot remembered per value once found (S{k})
    on_str = []  # the same for a str subclass: the transform's own lookups (its __eq__ and __hash__), nothing remembered
    if keys is not None:
        env[f"K{k}"], env[f"S{k}"] = keys, {}
        found = ["if i is not None:", *_indent(_TERM.format(i="i", x="1.0").splitlines())]
        one = [f"i = S{k}.get(v)", "if i is None:", f"    key = K{k}.get(v)", "    if key is not None:", "        i = index.get(key)",
               "        if i is not None:", f"            S{k}[v] = i", *found]  # fmt: skip
        on_str = [f"key = K{k}.get(v)", "if key is not None:", "    i = index.get(key)", *_indent(found)]
    general = [f"    v = {x}", "    if type(v) is not float:", "        if isinstance(v, str):", *_indent(on_str, "            ")]
    general += _NOT_A_STRING + _indent(numeric, "        ")
    if keys is not None:
        lines = [f"    if type({x}) is str:", f"        v = {x}", *_indent(one, "        ")]
    else:
        lines = [f"    if type({x}) is float and {x} - {x} == 0.0:", f"        v = {x}", *_indent(numeric, "        ")]
    return lines + ["    else:", *_indent(general)]


def compile_features_predict(layout: tuple, slot_of: Callable[[Any], int | None], tables: dict[str, Any]) -> PredictPass:
    """``ScaledLogReg.predict(EdgeFeatures.transform_with_rules(x, p))`` for inputs named ``layout`` as straight-line
    code, without the sigmoid: ``fn(x, x.values(), p, half_life, rules, mean, var, std, w, index)`` is the loop's
    ``dot`` (the caller adds the intercept). ``slot_of`` and ``tables`` as for
    :func:`~edge.learning.model.unrolled.compile_features_pass` (the same layouts are refused: ValueError).

    >>> from edge.learning.model import river
    >>> fn = compile_features_predict(("cqi",), {"cqi": 0, "rules": 1}.get, river._TABLES)
    >>> fn({"cqi": 4.0}, (4.0,), 0.5, 60.0, True, [2.0, 0.0], [4.0, 1.0], [2.0, 1.0], [0.5, 3.0], {"cqi": 0, "rules": 1})
    0.5
    """
    if any(type(name) is not str or "=" in name or name in tables["tail_keys"] for name in layout):
        raise ValueError("this layout's features could collide: the transform's dict decides their order")
    env: dict[str, Any] = {"log": math.log, "log10": math.log10, "log1p": math.log1p, "CENTRE": tables["centre"]}
    names = [f"x{k}" for k in range(len(layout))]
    local = dict(zip(layout, names))  # x.get(name) is the input's local, or None if the layout has no such name
    lines = ["def features_predict(x, values, p, half_life, rules, mean, var, std, w, index):"]
    if names:
        lines.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = values")
    lines += ["    dot = 0.0", "    has_tcp_rtt = False", "    lk = cs = None"]
    for k, (x, name) in enumerate(zip(names, layout)):
        lines += _input_lines(k, x, name, tables, env, slot_of)

    def term(key: str, value: str, at: int = 8) -> list[str]:
        return _indent(_term(key, value, slot_of, env), " " * at)

    # The transform's tail (EdgeFeatures.transform_with_rules after its inputs' pass); what the layout decides, decided here.
    if "last_kbps" in local:
        age = local.get("last_age_s")
        fresh = f"0.5 ** (float({age}) / half_life) if isinstance({age}, (int, float)) else 0.5" if age else "0.5"
        lines += ["    if lk is not None:", f"        fresh = {fresh}", *term("last_fresh", "fresh"), *term("last_kbps_fresh", "(lk - CENTRE) * fresh")]
        lines += _indent(_bands(tables["last_bands"], tables["last_band_keys"], "lv", "fresh", slot_of, env), "        ")
        lines += ["    else:", *term("no_last", "1.0")]
    else:
        lines += term("no_last", "1.0", 4)
    if "cell_degraded_share" in local:
        samples = local.get("cell_samples")
        n = f"float({samples}) if isinstance({samples}, (int, float)) else 0.0" if samples else "0.0"
        lines += ["    if cs is not None:", f"        n = {n}", "        confidence = n / (n + 3.0)"]
        lines += [*term("cell_share_conf", "(cs - 0.5) * confidence"), "    else:", *term("no_cell", "1.0")]
    else:
        lines += term("no_cell", "1.0", 4)
    lines += ["    if not has_tcp_rtt:", *term("no_tcp", "1.0")] if "tcp_rtt_ms" in local else term("no_tcp", "1.0", 4)
    lines += ["    if p is not None and rules:", "        p = 0.01 if p < 0.01 else 0.99 if p > 0.99 else p", *term("rules", "log(p / (1.0 - p))")]
    lines.append("    return dot")
    exec(compile("\n".join(lines), f"<EdgeFeatures and ScaledLogReg.predict, {len(layout)} inputs>", "exec"), env)  # noqa: S102
    return env["features_predict"]

