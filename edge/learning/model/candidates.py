"""The decider's inputs that learn nothing: the fixed predictors, the safety envelope's evidence, the support signature.

:class:`~edge.learning.model.champion.ChampionChallenger` scores the fixed predictors of
:data:`FIXED_CANDIDATES` next to the rules and the River model, caps a learned champion's tier by
:func:`fast_evidence` (the safety envelope), and checks a learned champion's support by
:func:`support_signature`. Each is a plain function of one request's features.

    >>> last_request_p({"last_kbps": 2100.0}), fast_evidence({"last_kbps": 2100.0}), support_signature({"last_kbps": 2100.0})
    (0.25, True, 1)
"""

from __future__ import annotations

import math

from edge.learning.model.rules import ECT_DEGRADED_P, SLOW_RTT_MS, ect_class
from edge.pipeline.features import Features

__all__ = [
    "FIXED_CANDIDATES",
    "fast_evidence",
    "last_request_p",
    "client_average_p",
    "cell_share_p",
    "support_signature",
    "ENVELOPE_MAX_P",
    "ENVELOPE_FRESH_S",
    "ENVELOPE_FAST_KBPS",
    "CANDIDATE_THRESHOLD_KBPS",
]

#: Kept for checkpoints pickled when the envelope capped p at this value; the envelope now caps the
#: tier (ChampionChallenger.tier_ceiling): such a shopper may get lite, never minimal.
ENVELOPE_MAX_P = 0.5
#: A last measurement this recent (s) is fresh evidence; this fast (kbit/s, twice the 700 kbit/s label
#: threshold) is a fast network.
ENVELOPE_FRESH_S = 300.0
ENVELOPE_FAST_KBPS = 1400.0


def fast_evidence(x: Features) -> bool:
    """Strong, fresh evidence of a fast network in ``x``: the browser's own hints for this request say
    4G (``ECT: 4g``, or RTT/Downlink hints in Chromium's 4G band) and no fresh measurement says slow,
    or a fresh measurement of the client's last request says fast.

    >>> fast_evidence({"ect": "4g", "rtt_ms": 50.0, "downlink_kbps": 10000.0}), fast_evidence({"ect": "3g"})
    (True, False)
    >>> fast_evidence({"ect": "4g", "last_kbps": 300.0, "last_age_s": 5.0})   # measured slow just now
    False
    >>> fast_evidence({"last_kbps": 20000.0, "last_age_s": 30.0}), fast_evidence({"last_kbps": 20000.0, "last_age_s": 3600.0})
    (True, False)
    """
    get = x.get
    last_kbps, age = get("last_kbps"), get("last_age_s")
    if isinstance(last_kbps, float) and not (isinstance(age, (int, float)) and age > ENVELOPE_FRESH_S):  # fresh
        last_rtt = get("last_rtt_ms")
        slow_rtt = isinstance(last_rtt, float) and last_rtt >= SLOW_RTT_MS
        if last_kbps < ENVELOPE_FAST_KBPS / 2 or slow_rtt:
            return False  # a fresh measurement says slow: no envelope
        if last_kbps >= ENVELOPE_FAST_KBPS:
            return True
    ect = get("ect")
    if not (isinstance(ect, str) and ect in ECT_DEGRADED_P):
        rtt, down = get("rtt_ms"), get("downlink_kbps")
        if not (isinstance(rtt, float) or isinstance(down, float)):
            return False
        ect = ect_class(rtt if isinstance(rtt, float) else None, down if isinstance(down, float) else None)
    return ect == "4g"


#: The label threshold (kbit/s) the fixed throughput candidates are centred on (``edge.pipeline.labels``' default).
CANDIDATE_THRESHOLD_KBPS = 700.0


def last_request_p(x: Features) -> float | None:
    """The client's last measured throughput alone: ``T / (T + kbps)``, 0.5 at the label threshold T.

    >>> last_request_p({"last_kbps": 700.0}), last_request_p({}) is None
    (0.5, True)
    """
    kbps = x.get("last_kbps")
    if not isinstance(kbps, float) or not math.isfinite(kbps):
        return None
    return CANDIDATE_THRESHOLD_KBPS / (CANDIDATE_THRESHOLD_KBPS + (0.0 if 0.0 > kbps else kbps))  # max(kbps, 0.0), no call (per label)


def client_average_p(x: Features) -> float | None:
    """The client's smoothed throughput (the measurement cookie's geometric moving average, the
    connection-class idea; ``edge.learning.feedback.client_average``), scored as :func:`last_request_p`."""
    kbps = x.get("client_kbps_avg")
    if not isinstance(kbps, float) or not math.isfinite(kbps):
        return None
    return CANDIDATE_THRESHOLD_KBPS / (CANDIDATE_THRESHOLD_KBPS + (0.0 if 0.0 > kbps else kbps))


def cell_share_p(x: Features) -> float | None:
    """The cell's recent degraded share (what :class:`edge.pipeline.towers.TowerTable` shows this client)."""
    share = x.get("cell_degraded_share")
    return min(max(share, 0.0), 1.0) if isinstance(share, float) and math.isfinite(share) else None


#: The fixed (non-learning) candidates of :class:`ChampionChallenger`, besides the rules and the River model.
FIXED_CANDIDATES = {"last_request": last_request_p, "client_average": client_average_p, "cell_share": cell_share_p}

def support_signature(x: Features) -> int:
    """Which feature groups ``x`` carries, as bits: the last request (1), cell statistics (2), radio
    figures (4), the browser's network hints (8), the server's TCP view (16). Two networks whose
    traces carry different columns (G-NetTrack's cell and radio figures, Norway's throughput only)
    give different signatures; the champion/challenger's support check reads them.

    >>> support_signature({"last_kbps": 800.0}), support_signature({"last_kbps": 800.0, "cell_degraded_share": 0.1, "rsrp": -90.0})
    (1, 7)
    """
    get = x.get
    return (
        (get("last_kbps") is not None)
        | (get("cell_degraded_share") is not None) << 1
        | (get("radio") is not None or get("rsrp") is not None or get("cqi") is not None or get("sinr") is not None) << 2
        | (get("ect") is not None or get("rtt_ms") is not None or get("downlink_kbps") is not None) << 3
        | (get("tcp_rtt_ms") is not None) << 4
    )
