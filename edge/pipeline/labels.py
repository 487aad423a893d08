"""The label rule: was the client's network degraded? A measurement of the network, never of the page.

A request is labelled *degraded* when the effective throughput measured for it
is below ``threshold_kbps`` (700 kbit/s by default: the upper edge of
Chromium's "3g" effective connection type) or its round-trip time is above
``rtt_ms`` (1000 ms by default: between Chromium's 3g (≥ 270 ms) and 2g
(≥ 1400 ms) bands, so a good 4G link at 150–200 ms is never degraded for
latency alone). Page load time is *not* used: a lite page loads fast because
it is light, so labels from load time would teach the model that adapting
cures the network.

    >>> rule = LabelRule()
    >>> rule.degraded(kbps=400.0), rule.degraded(kbps=5000.0), rule.degraded(kbps=5000.0, rtt_ms=1500.0)
    (True, False, True)
    >>> rule.degraded() is None     # nothing measured: no label
    True
    >>> rule.degraded(rtt_ms=150.0) is None   # a fast round trip says nothing about throughput
    True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LabelRule", "DEFAULT_THRESHOLD_KBPS", "DEFAULT_RTT_MS"]

DEFAULT_THRESHOLD_KBPS = 700.0
DEFAULT_RTT_MS = 1000.0


@dataclass(frozen=True, slots=True)
class LabelRule:
    """Thresholds that turn a network measurement into a label (set in the policy's ``[labels]``)."""

    threshold_kbps: float = DEFAULT_THRESHOLD_KBPS
    rtt_ms: float = DEFAULT_RTT_MS

    def degraded(self, kbps: float | None = None, rtt_ms: float | None = None) -> bool | None:
        """True/False from whatever was measured; ``None`` when the measurement cannot decide.

        A slow round trip alone is degraded; a fast one alone is not "not degraded"
        (a 150 ms link can still carry only 250 kbit/s), so it gives no label.
        """
        slow_rtt = rtt_ms is not None and rtt_ms > self.rtt_ms
        if kbps is None:
            return True if slow_rtt else None
        return kbps < self.threshold_kbps or slow_rtt
