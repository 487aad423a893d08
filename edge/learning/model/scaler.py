"""The River model's scaler: River's ``StandardScaler`` arithmetic, its statistics kept for speed.

:class:`WelfordScaler` is ``river.preprocessing.StandardScaler()`` (``with_std=True``, no window):
per feature Welford's running count, mean and variance, and ``(x - mean) / var ** 0.5`` (0 while the
variance is 0). The arithmetic is River's, operation for operation and in River's order, so every
number it gives is River's to the bit (``tests/learning/test_scaler.py`` drives both side by side).
What differs is where the statistics live, which is what a label's cost was made of:

- River keeps them in a ``collections.Counter`` and two ``defaultdict`` (three lookups and three
  stores per feature, on dict subclasses that CPython's fast paths skip); here one plain dict maps a
  feature to a tuple ``(count, mean, var, std)``: one lookup and one store per feature;
- ``std`` is ``var ** 0.5`` as computed when ``var`` last changed, so a prediction does not take the
  root again (the same expression on the same ``var``: the same float);
- :meth:`WelfordScaler.learn_transform` is River's ``learn_one`` then ``transform_one`` in one pass
  over the features, and :meth:`WelfordScaler.predict_learn_transform` also gives ``transform_one``
  as it was *before* learning (the prequential step: predict, then learn), still one pass.

A River ``StandardScaler`` from an older checkpoint is converted by :meth:`WelfordScaler.from_river`
(:class:`~edge.learning.model.river.RiverModel` does it when it is unpickled); the numbers it then
gives are those River's would have given.

    >>> from river import preprocessing
    >>> ours, rivers = WelfordScaler(), preprocessing.StandardScaler()
    >>> for z in ({"u": 1.0, "v": 2.0}, {"u": 3.0}, {"u": 4.0, "v": -1.0}):
    ...     before = rivers.transform_one(z)
    ...     rivers.learn_one(z)
    ...     assert ours.predict_learn_transform(z) == (before, rivers.transform_one(z))
    >>> (ours.counts, ours.means, ours.vars) == (rivers.counts, rivers.means, rivers.vars)
    True
"""

from __future__ import annotations

from typing import Any

from river import base, preprocessing

__all__ = ["WelfordScaler"]


class WelfordScaler(base.Transformer):
    """River's ``StandardScaler()`` with its statistics in one plain dict (see the module docstring).

    ``stats`` maps a feature name to ``(count, mean, var, std)``, ``std`` being ``var ** 0.5``.
    ``counts``, ``means`` and ``vars`` are River's views of them (new dicts, read-only).
    """

    def __init__(self) -> None:
        self.stats: dict[Any, tuple[Any, Any, Any, Any]] = {}

    @classmethod
    def from_river(cls, scaler: preprocessing.StandardScaler) -> WelfordScaler:
        """The same statistics as River's ``scaler`` (``with_std``, no window), from here on in this form.

        A feature River holds a variance for but never counted (a ``transform_one`` of an unseen
        feature puts a 0 in its ``defaultdict``) is left out: River treats it as unseen too.
        """
        if not scaler.with_std or scaler.window_size is not None:
            raise ValueError("only a StandardScaler with_std and without a window converts")
        ours = cls()
        means, vars_ = scaler.means, scaler.vars
        for name, count in scaler.counts.items():
            var = vars_.get(name, 0.0)
            ours.stats[name] = (count, means.get(name, 0.0), var, var**0.5)
        return ours

    def set(self, name: Any, count: int, mean: float, var: float) -> None:
        """Set one feature's statistics (a prior's, :func:`edge.learning.prior.apply_prior`)."""
        self.stats[name] = (count, mean, var, var**0.5)

    @property
    def counts(self) -> dict[Any, Any]:
        return {name: s[0] for name, s in self.stats.items()}

    @property
    def means(self) -> dict[Any, Any]:
        return {name: s[1] for name, s in self.stats.items()}

    @property
    def vars(self) -> dict[Any, Any]:
        return {name: s[2] for name, s in self.stats.items()}

    def learn_one(self, x: dict) -> None:
        self.learn_transform(x)

    def transform_one(self, x: dict) -> dict:
        # River: v = vars[i]; (xi - means[i]) / v**0.5 if v else 0.0 (an unseen feature: 0.0).
        stats = self.stats
        out = {}
        for i, xi in x.items():
            try:
                _, mean, var, std = stats[i]
            except KeyError:
                out[i] = 0.0
                continue
            out[i] = (xi - mean) / std if var else 0.0
        return out

    def learn_transform(self, x: dict) -> dict:
        """``learn_one(x)`` then ``transform_one(x)``, in one pass (:meth:`predict_learn_transform`'s second half)."""
        stats = self.stats
        after = {}
        for i, xi in x.items():
            try:
                n, old_mean, old_var, _ = stats[i]
            except KeyError:
                n, old_mean, old_var = 0, 0.0, 0.0
            n += 1
            delta = xi - old_mean
            mean = old_mean + delta / n
            var = old_var + (delta * (xi - mean) - old_var) / n
            std = var**0.5
            stats[i] = (n, mean, var, std)
            after[i] = (xi - mean) / std if var else 0.0
        return after

    def predict_learn_transform(self, x: dict) -> tuple[dict, dict]:
        """``(transform_one(x), then learn_one(x), then transform_one(x))``, in one pass."""
        stats = self.stats
        before = {}
        after = {}
        for i, xi in x.items():
            try:
                n, old_mean, old_var, std = stats[i]
            except KeyError:
                n, old_mean, old_var = 0, 0.0, 0.0
                before[i] = 0.0
            else:
                before[i] = (xi - old_mean) / std if old_var else 0.0
            # River's learn_one: counts[i] += 1; old_mean = means[i]; means[i] += (xi - old_mean) / counts[i];
            # vars[i] += ((xi - old_mean) * (xi - means[i]) - vars[i]) / counts[i]  (xi - old_mean: once, the same float)
            n += 1
            delta = xi - old_mean
            mean = old_mean + delta / n
            var = old_var + (delta * (xi - mean) - old_var) / n
            std = var**0.5
            stats[i] = (n, mean, var, std)
            after[i] = (xi - mean) / std if var else 0.0
        return before, after
