"""What the stable-tier rule does to the replayed tiers: switches per client, and the pages it serves wrongly.

The deployed decision's p for every scored page view goes through the policy's own
:meth:`~edge.pipeline.policy.Policy.decide` twice, per client in the replay's time order: once
with the thresholds alone (the ``tiers`` block of the report, unchanged), once with the stable-tier
rule (:class:`edge.pipeline.policy.stability.TierStability`, default margin and dwell time as
``edge serve`` runs it), the client's state carried from page to page as its ``edge_t`` cookie would
carry it, and the dwell time read on the replay's clock (the page views' real think times).

Only scored page views (those with a label) are predicted by the replay, so a client's tiers are
its labelled page views in order; a page view without a label second in its horizon is skipped,
as if that client had not asked for it. The rule acts on the tier, never on p: the ROC-AUC of the
deployed p is the same with and without it. What it can cost is pages served wrongly (lite or
minimal when the network was fine, full when it was degraded); :func:`stable_tiers` counts them
both ways, and the page views whose tier the rule changed (``held``), split by whether that made
the page right or wrong.

    >>> from edge.pipeline.policy import Policy
    >>> policy = Policy.from_toml("")
    >>> p = [0.45, 0.55, 0.45, 0.55, 0.45]           # one client hovering around the 0.5 threshold
    >>> s = stable_tiers(p, [None] * 5, [True] * 5, [0] * 5, [0.0, 30.0, 60.0, 90.0, 120.0], policy, TierStability())
    >>> s["without"]["switches"], s["with"]["switches"], s["with"]["served"]
    (4, 0, {'full': 5, 'lite': 0, 'minimal': 0})
    >>> s["without"]["full_when_degraded"], s["with"]["full_when_degraded"], s["held"]
    (0.6, 1.0, {'pages': 2, 'made_right': 0, 'made_wrong': 2})
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from edge.pipeline.policy import Policy
from edge.pipeline.policy.stability import LastTier, TierStability

__all__ = ["stable_tiers", "format_stable_tiers", "TierStability"]


def _wrong(y: bool, tier: str) -> bool:
    return tier == "full" if y else tier != "full"


def _summary(tiers: Sequence[str], ys: Sequence[bool], clients: Sequence[int], order: Sequence[int]) -> dict[str, Any]:
    per_client: dict[int, int] = defaultdict(int)
    last: dict[int, str] = {}
    for i in order:  # time order
        c = clients[i]
        if c in last and last[c] != tiers[i]:
            per_client[c] += 1
        last[c] = tiers[i]
    n_clients = len(last)
    switches = sum(per_client.values())
    fine = sum(1 for y in ys if not y)
    degraded = len(ys) - fine
    lite_when_fine = sum(1 for y, t in zip(ys, tiers) if not y and t != "full")
    full_when_degraded = sum(1 for y, t in zip(ys, tiers) if y and t == "full")
    served = Counter(tiers)
    return {
        "served": {t: served.get(t, 0) for t in ("full", "lite", "minimal")},
        "switches": switches,
        "switches_per_client": switches / n_clients if n_clients else None,
        "switches_per_100_pages": 100.0 * switches / len(tiers) if tiers else None,
        "max_switches_per_client": max(per_client.values(), default=0),
        "clients_switching": sum(1 for v in per_client.values() if v),
        "lite_when_fine": lite_when_fine / fine if fine else None,
        "full_when_degraded": full_when_degraded / degraded if degraded else None,
        "wrong": (lite_when_fine + full_when_degraded) / len(ys) if ys else None,
    }


def stable_tiers(
    ps: Sequence[float | None],
    ceilings: Sequence[str | None],
    ys: Sequence[bool],
    clients: Sequence[int],
    times: Sequence[float],
    policy: Policy,
    rule: TierStability,
) -> dict[str, Any]:
    """Tiers of the scored page views without and with ``rule``, per client in time order (see the module docstring).

    ``ps`` the deployed p (None: no prediction, full), ``ceilings`` its safety envelope, ``ys`` the
    labels, ``clients`` and ``times`` who asked and when (the replay's clock, seconds).
    """
    order = sorted(range(len(ps)), key=lambda i: (times[i], i))
    plain: list[str] = [""] * len(ps)
    stable: list[str] = [""] * len(ps)
    state: dict[int, LastTier | None] = {}
    for i in order:
        p, ceiling, now = ps[i], ceilings[i], times[i]
        plain[i] = policy.decide(p, ceiling=ceiling, now=now).tier
        decision = policy.decide(p, ceiling=ceiling, last=state.get(clients[i]), stability=rule, now=now)
        stable[i] = decision.tier
        if decision.remember is not None:  # the cookie edge would set; otherwise the client keeps what it carries
            state[clients[i]] = decision.remember
    changed = [i for i in range(len(ps)) if plain[i] != stable[i]]
    made_wrong = sum(1 for i in changed if _wrong(ys[i], stable[i]) and not _wrong(ys[i], plain[i]))
    made_right = sum(1 for i in changed if _wrong(ys[i], plain[i]) and not _wrong(ys[i], stable[i]))
    return {
        "margin": rule.margin,
        "dwell_s": rule.dwell_s,
        "clients": len(set(clients)),
        "pages": len(ps),
        "without": _summary(plain, ys, clients, order),
        "with": _summary(stable, ys, clients, order),
        "held": {"pages": len(changed), "made_right": made_right, "made_wrong": made_wrong},
    }


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def format_stable_tiers(s: dict[str, Any]) -> list[str]:
    """The lines ``edge replay`` prints for :func:`stable_tiers`' result."""
    lines = [
        f"stable tier (margin {s['margin']:g}, dwell {s['dwell_s']:g} s; {s['clients']} clients, {s['pages']} labelled page views):",
        f"  {'':18}{'switches':>9}{'/client':>8}{'max':>5}{'/100 pages':>11}{'lite when fine':>15}{'full when degr.':>16}{'wrong':>7}",
    ]
    for name, key in (("thresholds alone", "without"), ("with the rule", "with")):
        r = s[key]
        per = "—" if r["switches_per_client"] is None else f"{r['switches_per_client']:.2f}"
        per100 = "—" if r["switches_per_100_pages"] is None else f"{r['switches_per_100_pages']:.1f}"
        lines.append(
            f"  {name:18}{r['switches']:>9}{per:>8}{r['max_switches_per_client']:>5}{per100:>11}"
            f"{_pct(r['lite_when_fine']):>15}{_pct(r['full_when_degraded']):>16}{_pct(r['wrong']):>7}"
        )
    h = s["held"]
    lines.append(
        f"  the rule changed the tier of {h['pages']} page views: {h['made_right']} made right, {h['made_wrong']} made wrong "
        "(ROC-AUC unchanged: the rule acts on tiers, not on p)"
    )
    return lines
