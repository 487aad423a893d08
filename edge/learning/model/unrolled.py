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

from collections.abc import Callable, Sequence

__all__ = ["compile_pass", "FirstPass"]

#: ``(values, count, mean, var, std, w, constant) -> (before, after, slots, scaled)``: the features'
#: values in the layout's order and the learner's per-slot lists (see ScaledLogReg.first_pass).
FirstPass = Callable[..., tuple[float, float, list[int], list[float]]]

# One feature's block: ScaledLogReg.first_pass's loop body with the slot I and the value X fixed.
_BLOCK = """\
    if {x} == constant[{i}]:
        count[{i}] += 1
    else:
        m, v, wi = mean[{i}], var[{i}], w[{i}]
        if v:
            before += wi * (({x} - m) / std[{i}])
        n = count[{i}] + 1
        d = {x} - m
        m += d / n
        v += (d * ({x} - m) - v) / n
        s = v**0.5
        count[{i}], mean[{i}], var[{i}], std[{i}] = n, m, v, s
        xa = ({x} - m) / s if v else 0.0
        after += wi * xa
        slots.append({i})
        scaled.append(xa)
"""


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
