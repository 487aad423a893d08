"""Stage 3's baseline: Chromium's published thresholds, and what edge needs of any predictor.

A :class:`NetworkModel` maps a feature dict (see :mod:`edge.pipeline.features`) to the
probability that the client's network is degraded, or ``None`` when it has no
basis to say (cold start, no signals): ``None`` serves the full page. What some models can do
besides is an optional ability, each a protocol of its own, checked with ``isinstance``:
:class:`Checkpointed` (``save``, and the ``extra`` state that travels with the checkpoint) with its
class-side :class:`Restorable` (``load``), :class:`Snapshotting` (``snapshot()`` for ``GET /admin/model``) and :class:`Enveloped`
(``tier_ceiling(x)``, the safety envelope).

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
(GPRS/EDGE are 2G, UMTS 3G), to the cell's recent degraded share, and to the
server's own TCP round trip (``tcp_rtt_ms``, :mod:`edge.pipeline.client_rtt`).

A TCP round trip is shorter than Chromium's HTTP RTT on the same network (no request
processing, no TLS or HTTP framing in it), so it has its own thresholds (:data:`TCP_RTT_ECT_MS`),
scaled from Chromium's own pairs of HTTP and transport RTT in the same file: 3G's default
observation is 273 ms HTTP for 209 ms transport (×0.77), the typical 2G 1800 for 1500 ms and
slow-2G 3600 for 3000 ms (×0.83). So 270 ms → 210 ms (3g), 1400 → 1170 ms (2g), 2000 → 1670 ms
(slow-2g). Like every round trip, it only ever counts as evidence of slowness. Each piece
of evidence gives a probability; the prediction is their weighted mean, with
direct measurements weighted above inferences from the radio type.

    >>> model = RuleModel()
    >>> model.predict({}) is None
    True
    >>> model.predict({"ect": "2g"})
    0.88
    >>> round(model.predict({"radio": "edge", "last_kbps": 80.0, "last_bytes": 40000.0}), 3)
    0.893
    >>> model.predict({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0})
    0.1
    >>> model.predict({"tcp_rtt_ms": 412.0}), model.predict({"tcp_rtt_ms": 0.05}) is None
    (0.7, True)
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

from edge.pipeline.features import Features

__all__ = [
    "NetworkModel",
    "Checkpointed",
    "Restorable",
    "Snapshotting",
    "Enveloped",
    "Observing",
    "tier_ceiling_of",
    "RuleModel",
    "NullModel",
    "ect_class",
    "last_throughput_p",
    "DEGRADED_BELOW_KBPS",
    "ECT_DEGRADED_P",
    "SLOW_RTT_MS",
    "TCP_RTT_ECT_MS",
    "tcp_rtt_class",
]

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

#: Chromium's "3g" HTTP RTT: a round trip at least this long is evidence of a slow network.
SLOW_RTT_MS = 270.0
#: Chromium's "2g" HTTP RTT: a whole request (round trips and transfer) at least this long is.
SLOW_REQUEST_MS = 1400.0
#: The server's TCP round trip (smoothed, ms) at which a network is in each class (module docstring).
TCP_RTT_ECT_MS = (("slow-2g", 1670.0), ("2g", 1170.0), ("3g", 210.0))
#: How much the server's round trip weighs: as much as the browser's own estimate (which Chromium
#: derives from the same kind of samples), less than a measured last request (3).
TCP_RTT_WEIGHT = 2.0
#: Cells need this many (decayed) recent measurements before their share counts fully.
CELL_FULL_WEIGHT_SAMPLES = 10.0


def tcp_rtt_class(rtt_ms: float) -> str | None:
    """The effective connection type a server-side TCP round trip is evidence of, or None (not slow).

    >>> tcp_rtt_class(150.0), tcp_rtt_class(250.0), tcp_rtt_class(1200.0), tcp_rtt_class(1700.0)
    (None, '3g', '2g', 'slow-2g')
    """
    for ect, threshold in TCP_RTT_ECT_MS:
        if rtt_ms >= threshold:
            return ect
    return None


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

#: The label threshold (kbit/s): a measured throughput here is even odds of a degraded network.
DEGRADED_BELOW_KBPS = 700.0


def last_throughput_p(kbps: float, rtt_ms: float | None = None) -> float:
    """p(degraded) from a measured throughput: ``T / (T + kbps)`` with T the 700 kbit/s threshold,
    raised to the ECT class of a slow round trip (≥ 270 ms) if one was measured.

    Continuous, not banded: throughput is a continuum, and a measured 900 kbit/s is far likelier to
    fall below 700 on the next page than a measured 20 Mbit/s, though Chromium's table calls both "4g"
    (banded, every fast client tied, and ranking among them is most of what a ROC-AUC measures when
    few page views are degraded). It meets the table at its bands' edges: 70 kbit/s → 0.91 (2g 0.88),
    7 Mbit/s → 0.09 (4g 0.10).

    >>> last_throughput_p(700.0), round(last_throughput_p(70.0), 2), round(last_throughput_p(20000.0), 3)
    (0.5, 0.91, 0.034)
    >>> last_throughput_p(20000.0, rtt_ms=1500.0)   # fast transfer, 2G-like round trip
    0.88
    """
    p = DEGRADED_BELOW_KBPS / (DEGRADED_BELOW_KBPS + max(kbps, 0.0))
    if rtt_ms is not None and rtt_ms >= SLOW_RTT_MS:
        p = max(p, ECT_DEGRADED_P[ect_class(rtt_ms=rtt_ms) or "3g"])
    return p


@runtime_checkable
class NetworkModel(Protocol):
    """What edge needs of a predictor."""

    @property
    def source(self) -> str:
        """Short name, used as the decision source label (``rules``, ``model``)."""
        ...

    def predict(self, x: Features) -> float | None:
        """p(degraded) in [0, 1] for features ``x``, or ``None`` when unknown."""
        ...

    def learn(self, x: Features, degraded: bool) -> None:
        """Update from one labelled request (a no-op for fixed models)."""
        ...


# The optional abilities. Each is runtime-checkable: callers ask ``isinstance(model, Snapshotting)``
# (``issubclass(factory, Checkpointed)`` for a class), never ``getattr(model, "snapshot", None)``.


@runtime_checkable
class Checkpointed(Protocol):
    """A model that writes its state to a file (``--model auto``'s
    :class:`~edge.learning.model.champion.ChampionChallenger`; the format is :mod:`edge.learning.model.checkpoints`)."""

    #: The caller's state that travels in the checkpoint (the middleware's TowerTable, its replay guard).
    extra: dict[str, Any]

    def save(self, path: str | os.PathLike[str], *, key: bytes | None = None) -> None:
        """Write the checkpoint atomically; signed with ``key`` (HMAC) when given."""
        ...

    def checkpoint_bytes(self, *, key: bytes | None = None) -> bytes:
        """What :meth:`save` writes, as bytes: a consistent picture of the model at the moment of the call
        (a server takes it on its event loop, where nothing learns meanwhile, and writes it in a thread
        with :func:`~edge.learning.model.checkpoints.write_atomically`)."""
        ...


@runtime_checkable
class Restorable(Protocol):
    """A model class restored from what its :class:`Checkpointed` instances saved: checked on the class
    (``issubclass(factory, Restorable)``), before there is an instance."""

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, key: bytes | None = None) -> NetworkModel:
        """Restore what ``save`` wrote (given the same ``key``), or raise naming the file."""
        ...


@runtime_checkable
class Snapshotting(Protocol):
    """A model that summarises itself for ``GET /admin/model``."""

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary: the champion, its evaluation, its labels."""
        ...


@runtime_checkable
class Observing(Protocol):
    """A model that can judge its candidates on a label without learning from it (a frozen replay)."""

    def observe(self, x: Features, degraded: bool) -> None:
        """Score the label and apply the switching rule; learn nothing."""
        ...


@runtime_checkable
class Enveloped(Protocol):
    """A model with a safety envelope: the richest tier a request may be served, whatever p says."""

    def tier_ceiling(self, x: Features) -> str | None:
        """``"lite"`` (never minimal) when ``x`` must not get the minimal page, else None."""
        ...


_ENVELOPED: dict[type, bool] = {}


def tier_ceiling_of(model: NetworkModel, x: Features) -> str | None:
    """``model``'s safety envelope for ``x`` if it is :class:`Enveloped`, else None (every request, live and replayed).

    The answer to "is this class Enveloped" is kept per class: a protocol ``isinstance`` costs tens of
    microseconds, too much for every request.

    >>> tier_ceiling_of(RuleModel(), {"ect": "4g"}) is None
    True
    """
    cls = type(model)
    enveloped = _ENVELOPED.get(cls)
    if enveloped is None:
        enveloped = _ENVELOPED[cls] = issubclass(cls, Enveloped)
    return model.tier_ceiling(x) if enveloped else None  # type: ignore[attr-defined]  # (no cast(): a call per request)


class RuleModel:
    """The published-thresholds baseline described in the module docstring. Does not learn."""

    source = "rules"

    def predict(self, x: Features) -> float | None:
        # Each piece of evidence adds p·w to ``total`` and w to ``weight``, in this order (the
        # order fixes the float sums; the River model's "rules" feature is built from this).
        total = weight = 0.0
        get = x.get
        # The browser's own estimate: ECT if sent, else classify its RTT/Downlink hints.
        ect = get("ect")
        if not (isinstance(ect, str) and ect in ECT_DEGRADED_P):  # an unknown value is no hint
            rtt, down = get("rtt_ms"), get("downlink_kbps")
            ect = ect_class(
                rtt if isinstance(rtt, float) else None, down if isinstance(down, float) else None
            )
        if ect is not None:
            total += ECT_DEGRADED_P[ect] * 2.0
            weight += 2.0
        # The client's last request: a real measurement of its network, weighted highest.
        # last_kbps is only set when it measures throughput (edge.pipeline.signals.app_throughput, the beacon's
        # 16 KB floor). A round trip alone only ever says "slow": a fast one can still be a thin link.
        last_kbps, last_ms, last_rtt = get("last_kbps"), get("last_ms"), get("last_rtt_ms")
        if not isinstance(last_rtt, float):
            last_rtt = None
        if isinstance(last_kbps, float) and last_kbps == last_kbps:  # NaN is no measurement
            # last_throughput_p(last_kbps, last_rtt) inline, its max() as comparisons (per request and label; the
            # same floats: tests/learning/test_model.py), ect_class(rtt_ms=…) of a slow round trip (≥ 270 ms) too
            p = DEGRADED_BELOW_KBPS / (DEGRADED_BELOW_KBPS + (0.0 if 0.0 > last_kbps else last_kbps))
            if last_rtt is not None and last_rtt >= SLOW_RTT_MS:
                q = ECT_DEGRADED_P["slow-2g" if last_rtt >= 2000 else "2g" if last_rtt >= 1400 else "3g"]
                if q > p:
                    p = q
            total += p * 3.0
            weight += 3.0
        elif last_rtt is not None and last_rtt >= SLOW_RTT_MS:
            total += ECT_DEGRADED_P[ect_class(rtt_ms=last_rtt) or "3g"] * 3.0
            weight += 3.0
        elif isinstance(last_ms, float) and last_ms >= SLOW_REQUEST_MS:
            # A whole request this slow is at least 2g-like, whatever its size.
            total += ECT_DEGRADED_P[ect_class(rtt_ms=last_ms) or "2g"] * 1.0
            weight += 1.0
        radio = get("radio")
        if isinstance(radio, str) and radio in _RADIO_EVIDENCE:
            p, w = _RADIO_EVIDENCE[radio]
            total += p * w
            weight += w
        share, samples = get("cell_degraded_share"), get("cell_samples")
        if isinstance(share, float) and isinstance(samples, float) and samples:
            w = min(samples / CELL_FULL_WEIGHT_SAMPLES, 1.0)
            total += share * w
            weight += w
        # The server's own view of this connection (absent in replayed traces: their sums are unchanged).
        tcp_rtt = get("tcp_rtt_ms")
        if isinstance(tcp_rtt, float):
            tcp_ect = tcp_rtt_class(tcp_rtt)
            if tcp_ect is not None:
                total += ECT_DEGRADED_P[tcp_ect] * TCP_RTT_WEIGHT
                weight += TCP_RTT_WEIGHT
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

