"""The networks edge is measured on, defined once: published throttling presets and a congested cell.

The load tests (``loadtests/profiles.py``: Locust phones that pay these RTTs and downlinks) and
``edge preview`` (Chromium's DevTools network emulation) both read them from here, so a
"Regular 2G" is the same link everywhere.

    >>> [p.name for p in PROFILES.values()]
    ['regular2g', 'good2g', 'slow3g', 'lighthouse3g', '4g', 'congested']
    >>> r = PROFILES["regular2g"]
    >>> r.title, r.downlink_kbps, r.uplink_kbps, r.rtt_ms
    ('Regular 2G', 250, 50, 300)
    >>> c = PROFILES["congested"]
    >>> c.downlink_at(0) > 5000 > 500 > c.downlink_at(c.period_s / 2)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PROFILES", "SLOW_PROFILES", "FAST_PROFILES", "Profile"]


@dataclass(frozen=True)
class Profile:
    """One network: steady figures, or a congestion cycle when ``period_s`` is set.

    ``expect`` is the tier edge should serve on this network once it has learned:
    ``"lite"`` (lite or minimal) for clearly slow networks, ``"full"`` for clearly
    fast ones, ``None`` for ambiguous ones (no tier is asserted).
    """

    name: str
    title: str
    downlink_kbps: float
    uplink_kbps: float
    rtt_ms: float
    source: str
    radios: tuple[str, ...]  # Edge-Cell radio types an app on this network reports
    expect: str | None = None
    # Congested cell: bandwidth falls from downlink_kbps to low_kbps and back every period_s,
    # and queueing adds up to extra_rtt_ms at the trough.
    period_s: float | None = None
    low_kbps: float | None = None
    extra_rtt_ms: float = 0.0

    def congestion_at(self, elapsed_s: float) -> float:
        """0 (uncongested) … 1 (the trough): a raised cosine over ``period_s``."""
        if not self.period_s:
            return 0.0
        return 0.5 - 0.5 * math.cos(2 * math.pi * (elapsed_s % self.period_s) / self.period_s)

    def downlink_at(self, elapsed_s: float) -> float:
        c = self.congestion_at(elapsed_s)
        if not c or self.low_kbps is None:
            return self.downlink_kbps
        # Interpolate in log space: capacity shares fall multiplicatively as a cell fills.
        return math.exp((1 - c) * math.log(self.downlink_kbps) + c * math.log(self.low_kbps))

    def uplink_at(self, elapsed_s: float) -> float:
        return self.uplink_kbps * self.downlink_at(elapsed_s) / self.downlink_kbps

    def rtt_at(self, elapsed_s: float) -> float:
        return self.rtt_ms + self.extra_rtt_ms * self.congestion_at(elapsed_s)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        # Chrome DevTools' original presets (front_end NetworkConditionsSelector, Chrome ≤ 60):
        # "Regular 2G" 250 kbit/s down, 50 kbit/s up, 300 ms latency; the same figures appear in
        # WebPageTest-derived tables. Chromium's ECT for 300 ms / 250 kbit/s is "3g" (< 700 kbit/s).
        Profile("regular2g", "Regular 2G", 250, 50, 300, "Chrome DevTools old preset 'Regular 2G'", ("gprs", "edge"), "lite"),
        # Chrome DevTools' old "Good 2G": 450 kbit/s down, 150 kbit/s up, 150 ms.
        Profile("good2g", "Good 2G", 450, 150, 150, "Chrome DevTools old preset 'Good 2G'", ("edge",), "lite"),
        # WebPageTest "3GSlow" (connectivity.ini.sample: 400/400 kbit/s, 400 ms RTT) = Chrome DevTools
        # "Slow 3G" before its request-level fudge factors (DevTools applies 400 ms × 5 = 2 s of
        # per-request latency and 500 kbit/s × 0.8 = 400 kbit/s; debugbear.com/blog/chrome-devtools-
        # network-throttling). We emulate per round trip, so the packet-level 400 ms is the right figure.
        Profile("slow3g", "Slow 3G", 400, 400, 400, "WebPageTest 3GSlow / Chrome DevTools Slow 3G", ("umts",), "lite"),
        # Lighthouse's mobile throttling (docs/throttling.md, core/config/constants.js mobileSlow4G):
        # 150 ms, 1.6 Mbit/s down, 750 kbit/s up; "Slow 4G", formerly "Fast 3G"; identical to
        # WebPageTest "Mobile 3G - Fast". Above 700 kbit/s and under 270 ms: ambiguous, no tier asserted.
        Profile("lighthouse3g", "Lighthouse mobile 3G (Slow 4G)", 1600, 750, 150, "Lighthouse throttling.md mobileSlow4G", ("hspa",)),
        # WebPageTest "4G" (connectivity.ini.sample): 9 Mbit/s down and up, 170 ms RTT.
        Profile("4g", "4G", 9000, 9000, 170, "WebPageTest connectivity '4G'", ("lte",), "full"),
        # A busy LTE cell: starts at WebPageTest 4G figures, falls to Regular-2G-like 250 kbit/s with
        # +800 ms of queueing (bufferbloat) at mid-period, and recovers; one cycle per minute.
        # Figures chosen to cross Chromium's 3g/4g boundary both ways; not a published preset.
        Profile(
            "congested", "Congested LTE cell", 9000, 9000, 170, "WebPageTest 4G, degraded by a 60 s congestion cycle",
            ("lte",), None, period_s=60.0, low_kbps=250.0, extra_rtt_ms=800.0,
        ),
    )
}
SLOW_PROFILES = tuple(n for n, p in PROFILES.items() if p.expect == "lite")
FAST_PROFILES = tuple(n for n, p in PROFILES.items() if p.expect == "full")
