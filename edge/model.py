"""Stage 3: predict p(degraded) for a request.

A :class:`NetworkModel` maps a feature dict (see :mod:`edge.features`) to the
probability that the client's network is degraded, or ``None`` when it has no
basis to say (cold start, no signals): ``None`` serves the full page.

:class:`RuleModel` is the baseline, built on published thresholds: Chromium's
effective-connection-type table (``net/nqe/network_quality_estimator_params.cc``)

============  ===============  ===================
class         HTTP RTT ≥       or downlink <
============  ===============  ===================
slow-2g       2000 ms          50 kbit/s
2g            1400 ms          70 kbit/s
3g            270 ms           700 kbit/s
4g            otherwise
============  ===============  ===================

applied to the browser's own hints (``ECT``, ``RTT``, ``Downlink``), to the
throughput of the client's last request (bytes·8/ms), to the radio type
(GPRS/EDGE are 2G, UMTS 3G) and to the cell's recent degraded share. Each piece
of evidence gives a probability; the prediction is their weighted mean, with
direct measurements weighted above inferences from the radio type.

    >>> model = RuleModel()
    >>> model.predict({}) is None
    True
    >>> model.predict({"ect": "2g"})
    0.88
    >>> round(model.predict({"radio": "edge", "last_kbps": 80.0, "last_bytes": 40000.0}), 3)
    0.745
    >>> model.predict({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0})
    0.1

The online River model (its own module) plugs into the same interface.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edge.features import Features

__all__ = ["NetworkModel", "RuleModel", "NullModel", "MODELS", "ect_class", "ECT_DEGRADED_P"]

#: Probability that a connection of this effective type is degraded (below 700 kbit/s).
#: Chromium's "3g" class *is* the band below 700 kbit/s or above 270 ms RTT, so it lands above 0.5.
ECT_DEGRADED_P = {"slow-2g": 0.97, "2g": 0.88, "3g": 0.70, "4g": 0.10}

#: Radio access technology → evidence (p, weight). 2G radios cannot reach 700 kbit/s; HSPA
#: and LTE can be anything from poor to good, so they weigh little.
_RADIO_EVIDENCE = {
    "gprs": (0.97, 1.0),
    "edge": (0.88, 1.0),
    "umts": (0.70, 1.0),
    "hspa": (0.50, 0.5),
    "lte": (0.15, 0.5),
    "nr": (0.10, 0.5),
}

#: A measured last request of at least this many bytes says something about throughput;
#: smaller ones are dominated by round trips.
MIN_THROUGHPUT_BYTES = 10_000
#: Cells need this many (decayed) recent measurements before their share counts fully.
CELL_FULL_WEIGHT_SAMPLES = 10.0


def ect_class(rtt_ms: float | None = None, downlink_kbps: float | None = None) -> str | None:
    """Chromium's effective connection type for an RTT and/or downlink.

    >>> ect_class(rtt_ms=1500), ect_class(downlink_kbps=600), ect_class(rtt_ms=100, downlink_kbps=5000)
    ('2g', '3g', '4g')
    >>> ect_class() is None
    True
    """
    if rtt_ms is None and downlink_kbps is None:
        return None
    rtt = rtt_ms if rtt_ms is not None else 0.0
    down = downlink_kbps if downlink_kbps is not None else float("inf")
    if rtt >= 2000 or down < 50:
        return "slow-2g"
    if rtt >= 1400 or down < 70:
        return "2g"
    if rtt >= 270 or down < 700:
        return "3g"
    return "4g"


@runtime_checkable
class NetworkModel(Protocol):
    """What edge needs of a predictor."""

    #: Short name, used as the decision source label (``rules``, ``model``).
    source: str

    def predict(self, x: Features) -> float | None:
        """p(degraded) in [0, 1] for features ``x``, or ``None`` when unknown."""
        ...

    def learn(self, x: Features, degraded: bool) -> None:
        """Update from one labelled request (a no-op for fixed models)."""
        ...


class RuleModel:
    """The published-thresholds baseline described in the module docstring. Does not learn."""

    source = "rules"

    def predict(self, x: Features) -> float | None:
        total = weight = 0.0

        def add(p: float, w: float) -> None:
            nonlocal total, weight
            total += p * w
            weight += w

        # The browser's own estimate: ECT if sent, else classify its RTT/Downlink hints.
        ect = x.get("ect")
        if not isinstance(ect, str):
            ect = ect_class(_num(x, "rtt_ms"), _num(x, "downlink_kbps"))
        if ect is not None:
            add(ECT_DEGRADED_P[ect], 2.0)
        # The client's last request: a real measurement of its network, weighted highest.
        # (A browser's beacon measures throughput and RTT itself: no byte count to check.)
        last_kbps, last_bytes, last_ms = _num(x, "last_kbps"), _num(x, "last_bytes"), _num(x, "last_ms")
        last_rtt = _num(x, "last_rtt_ms")
        if last_kbps is not None and (last_bytes is None or last_bytes >= MIN_THROUGHPUT_BYTES):
            add(ECT_DEGRADED_P[ect_class(rtt_ms=last_rtt, downlink_kbps=last_kbps) or "4g"], 3.0)
        elif last_rtt is not None:
            add(ECT_DEGRADED_P[ect_class(rtt_ms=last_rtt) or "4g"], 3.0)
        elif last_ms is not None:
            # A small response's latency is mostly round trips: classify it as an RTT.
            add(ECT_DEGRADED_P[ect_class(rtt_ms=last_ms) or "4g"], 1.0)
        radio = x.get("radio")
        if isinstance(radio, str) and radio in _RADIO_EVIDENCE:
            add(*_RADIO_EVIDENCE[radio])
        share, samples = _num(x, "cell_degraded_share"), _num(x, "cell_samples")
        if share is not None and samples:
            add(share, min(samples / CELL_FULL_WEIGHT_SAMPLES, 1.0))
        if weight == 0.0:
            return None
        return total / weight

    def learn(self, x: Features, degraded: bool) -> None:
        return None


class NullModel:
    """Never has an opinion: every request is served the full page (``--model off``)."""

    source = "none"

    def predict(self, x: Features) -> float | None:
        return None

    def learn(self, x: Features, degraded: bool) -> None:
        return None


def _num(x: Features, key: str) -> float | None:
    value = x.get(key)
    return value if isinstance(value, float) else None


#: Model choices by name (``--model``); the River model registers itself here in its own issue.
MODELS: dict[str, type] = {"rules": RuleModel, "off": NullModel}
