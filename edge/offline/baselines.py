"""The simple predictors ``edge replay`` scores the River model and the deployed decision against.

:data:`BASELINES` names the rows: the rule model (:class:`edge.learning.model.RuleModel`), Facebook's
network-connection-class (:class:`ConnectionClass`), the last request's throughput alone
(:func:`last_request_p`), the client's smoothed throughput (:func:`edge.learning.model.client_average_p`)
and the cell's recent degraded share (:func:`cell_share_p`).
"""

from __future__ import annotations

import math

from edge.pipeline.features import Features

__all__ = ["BASELINES", "ConnectionClass", "last_request_p", "cell_share_p"]


class ConnectionClass:
    """Facebook's network-connection-class: an exponential geometric moving average of throughput.

    Decay 0.05, with the library's cut-over (a plain running geometric mean for the first
    ``ceil(1/decay)`` samples). Classes POOR < 150, MODERATE < 550, GOOD < 2000 kbit/s, else
    EXCELLENT, mapped to a p(degraded) score (:data:`SCORES`); unknown before any sample.

        >>> cc = ConnectionClass()
        >>> cc.predict() is None
        True
        >>> cc.add(100.0); cc.add(400.0); cc.klass(), round(cc.value)
        ('MODERATE', 207)
    """

    #: Class → p(degraded). Monotone in the class (what AUC sees); POOR and MODERATE lie below
    #: the 700 kbit/s label threshold, GOOD straddles it.
    SCORES = {"POOR": 0.9, "MODERATE": 0.75, "GOOD": 0.4, "EXCELLENT": 0.1}

    def __init__(self, decay: float = 0.05) -> None:
        self.decay = decay
        self.cutover = math.ceil(1.0 / decay)
        self.value: float | None = None
        self.count = 0

    def add(self, kbps: float) -> None:
        kbps = max(kbps, 1.0)
        keep = 1.0 - self.decay
        if self.value is None:
            self.value = kbps
        elif self.count > self.cutover:
            self.value = math.exp(keep * math.log(self.value) + self.decay * math.log(kbps))
        else:
            retained = keep * self.count / (self.count + 1.0)
            self.value = math.exp(retained * math.log(self.value) + (1.0 - retained) * math.log(kbps))
        self.count += 1

    def klass(self) -> str | None:
        if self.value is None:
            return None
        if self.value < 150:
            return "POOR"
        if self.value < 550:
            return "MODERATE"
        if self.value < 2000:
            return "GOOD"
        return "EXCELLENT"

    def predict(self) -> float | None:
        k = self.klass()
        return None if k is None else self.SCORES[k]


def last_request_p(x: Features, threshold_kbps: float) -> float | None:
    """Last-request throughput alone: p = T / (T + kbps), 0.5 at the label threshold T."""
    kbps = x.get("last_kbps")
    if not isinstance(kbps, float):
        return None
    return threshold_kbps / (threshold_kbps + max(kbps, 0.0))


def cell_share_p(x: Features) -> float | None:
    """The cell's recent degraded share as it stands (unclipped, unlike the champion/challenger's candidate)."""
    share = x.get("cell_degraded_share")
    return share if isinstance(share, float) else None


#: The baseline rows of a replay report, in order.
BASELINES = ("rules", "connection_class", "last_request", "client_average", "cell_share")
