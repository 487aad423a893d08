"""Browser hints for replayed clients: what Chromium would send, synthesised from the trace's own past.

Only Chromium sends the network client hints (``ECT``, ``RTT``, ``Downlink``); Safari and Firefox send
none. The replayed traces carry no hints, so by default every replayed client is such a hint-less
browser (or an app). ``edge replay --hints`` replays the traces a second time as Chromium clients, each
request carrying the hints Chromium's network quality estimator (NQE, ``net/nqe/``) would have computed
from the same phone's traffic, and scores the River model and the deployed decision both ways.

**What is synthesised** (:class:`ChromiumHints`):

- *Observations*: the trace's label seconds (:func:`edge.offline.simulation` rules: downloading, at
  least 10 kbit/s unless the trace is saturated, away from the tool's pings) strictly before the
  request's second: the phone's own recent throughput, as NQE observes its traffic. At most the
  last :data:`MAX_OBSERVATIONS` (NQE's observation buffer holds 300).
- *Estimate*: their weighted median, each weighted ``0.5 ** (age_s / 60)`` (NQE's default half-life,
  ``HalfLifeSeconds`` 60 in ``network_quality_estimator_params.cc``). No observation, no hints: a
  client's first page carries none, as a fresh Chromium profile has only its defaults.
- *Downlink*: the estimate rounded to the nearest 25 kbit/s, at least 25, capped at 10 Mbit/s,
  sent in Mbit/s (WICG Network Information's rounding, as ``loadtests/profiles.browser_hints`` does).
  Chromium's per-origin noise (a few per cent) is not added.
- *ECT*: the WICG table's downlink column read by edge's own :func:`edge.learning.model.ect_class`
  (slow-2g < 50, 2g < 70, 3g < 700 kbit/s, else 4g), from the unrounded estimate.
- *RTT* is **not** synthesised: no replayed trace measures a round trip (the G-NetTrack video
  files have no ``PINGAVG``; the Norway JSON's ``latency_ms`` is 100 in every record, a constant of
  the conversion, not a measurement), and inventing one from throughput would add nothing the
  Downlink hint does not say.

An upper bound of sorts: the phone's traffic here is a video player's, which a real browser's NQE
would not see (it observes the browser's own requests); a shopper's browser between two page views
may have seen far less.

    >>> h = ChromiumHints([0, 1, 2, 60], [400.0, 500.0, 30000.0, 620.0])
    >>> h.at(0) == {}, h.at(3), h.at(61)
    (True, {'ECT': '3g', 'Downlink': '0.5'}, {'ECT': '3g', 'Downlink': '0.625'})
    >>> ChromiumHints([0], [25000.0]).at(5)
    {'ECT': '4g', 'Downlink': '10'}
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edge.learning.evaluation import bootstrap_roc_aucs, roc_auc
from edge.learning.model import ect_class

if TYPE_CHECKING:
    from edge.offline.simulation import Pass

__all__ = ["ChromiumHints", "HALF_LIFE_S", "MAX_OBSERVATIONS", "hints_block", "format_hints"]

#: NQE's default half-life for its time-weighted percentiles (seconds).
HALF_LIFE_S = 60.0
#: NQE's observation buffer size.
MAX_OBSERVATIONS = 300
#: WICG Network Information: downlink rounded to 25 kbit/s, reported up to 10 Mbit/s.
_DOWNLINK_STEP_KBPS = 25.0
_DOWNLINK_MAX_KBPS = 10_000.0


class ChromiumHints:
    """The ``ECT`` and ``Downlink`` hints Chromium would send at a second of one trace (module docstring).

    ``times`` the trace seconds of the observations (ascending), ``kbps`` their throughput.
    """

    def __init__(self, times: Sequence[float], kbps: Sequence[float]) -> None:
        self.times = list(times)
        self.kbps = list(kbps)

    def estimate(self, t: float) -> float | None:
        """NQE's throughput estimate (kbit/s) at second ``t``: weighted median of the observations before it."""
        end = bisect.bisect_left(self.times, t)
        start = max(0, end - MAX_OBSERVATIONS)
        if end <= start:
            return None
        obs = sorted((self.kbps[i], 0.5 ** ((t - self.times[i]) / HALF_LIFE_S)) for i in range(start, end))
        half = sum(w for _, w in obs) / 2.0
        acc = 0.0
        for value, w in obs:
            acc += w
            if acc >= half:
                return value
        return obs[-1][0]

    def at(self, t: float) -> dict[str, str]:
        """The hint headers at second ``t`` (empty: no estimate yet)."""
        est = self.estimate(t)
        if est is None:
            return {}
        rounded = min(_DOWNLINK_MAX_KBPS, max(_DOWNLINK_STEP_KBPS, round(est / _DOWNLINK_STEP_KBPS) * _DOWNLINK_STEP_KBPS))
        return {"ECT": ect_class(downlink_kbps=est) or "4g", "Downlink": f"{rounded / 1000.0:g}"}


def _aucs(out: Pass, resamples: int, seed: int) -> dict[str, dict[str, Any]]:
    names = ("deployed", "model", "rules")
    ys = out.ys
    ci = bootstrap_roc_aucs(ys, {n: out.preds[n] for n in names}, resamples=resamples, seed=seed)
    cold_y = [y for y, c in zip(ys, out.cold) if c]
    rows: dict[str, dict[str, Any]] = {}
    for n in names:
        cold_p = [p for p, c in zip(out.preds[n], out.cold) if c]
        rows[n] = {
            "roc_auc": roc_auc(ys, out.preds[n]),
            "roc_auc_ci": ci.get(n),
            "cold_start_roc_auc": roc_auc(cold_y, cold_p) if cold_y else None,
        }
    return rows


def hints_block(without: Pass, hinted: Pass, resamples: int, seed: int) -> dict[str, Any]:
    """The River model's and the deployed decision's ROC-AUC on the same page views replayed without
    hints (the report's own pass) and with them (a second pass from fresh models, :attr:`Replayer.hints`)."""
    assert without.ys == hinted.ys, "both passes score the same page views"
    n = len(hinted.hinted)
    return {
        "synthesised": ["ECT", "Downlink"],
        "half_life_s": HALF_LIFE_S,
        "with_hints_share": sum(hinted.hinted) / n if n else 0.0,
        "without": _aucs(without, resamples, seed),
        "with": _aucs(hinted, resamples, seed),
    }


def format_hints(h: dict[str, Any]) -> list[str]:
    """The lines ``edge replay --hints`` prints for the report's ``hints`` block."""

    def cell(m: dict[str, Any]) -> str:
        ci = m.get("roc_auc_ci")
        auc = "—" if m.get("roc_auc") is None else f"{m['roc_auc']:.3f}"
        band = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        cold = "—" if m.get("cold_start_roc_auc") is None else f"{m['cold_start_roc_auc']:.3f}"
        return f"{auc}{band} (cold {cold})"

    lines = [f"browser hints (synthesised ECT/Downlink as Chromium's NQE would send them, {h['with_hints_share']:.0%} "
             "of scored requests carried them; RTT not synthesised):"]
    for row, name in (("deployed", "deployed"), ("model", "river model"), ("rules", "rules")):
        lines.append(f"  {name:14} without hints (Safari, Firefox) {cell(h['without'][row])};  with {cell(h['with'][row])}")
    return lines
