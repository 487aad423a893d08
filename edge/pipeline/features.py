"""Stage 2: flatten :class:`~edge.pipeline.signals.Signals` (plus the cell's live state) into a model's feature dict.

A missing signal is an *absent key*, never ``None``: that is how River models
and the rule baseline expect it, and most clients send only a few signals.

    >>> from edge.pipeline.signals import Signals
    >>> to_features(Signals(ect="2g", radio="edge", last_ms=4000.0, last_bytes=40000.0, last_kbps=80.0))
    {'save_data': 0.0, 'ect': '2g', 'radio': 'edge', 'last_ms': 4000.0, 'last_bytes': 40000.0, 'last_kbps': 80.0}
"""

from __future__ import annotations

from edge.pipeline.signals import Signals
from edge.pipeline.towers import CellState

__all__ = ["Features", "to_features"]

Features = dict[str, float | str]

_NUMERIC = (
    "device_memory",
    "dpr",
    "viewport_width",
    "rtt_ms",
    "downlink_kbps",
    "rsrp",
    "rsrq",
    "sinr",
    "cqi",
    "speed",
    "last_ms",
    "last_bytes",
    "last_kbps",
    "last_rtt_ms",
    "last_age_s",
    "client_kbps_avg",
    "tcp_rtt_ms",
    "tcp_rttvar_ms",
    "tcp_min_rtt_ms",
    "tcp_delivery_kbps",
    "tcp_app_limited",
    "tcp_goodput_kbps",
)
_CATEGORICAL = ("device_class", "os", "ect", "radio")


def to_features(signals: Signals, cell: CellState | None = None) -> Features:
    """The model's view of one request: numbers as floats, categories as short strings."""
    x: Features = {"save_data": 1.0 if signals.save_data else 0.0}
    for name in _CATEGORICAL:
        value = getattr(signals, name)
        if value is not None:
            x[name] = value
    for name in _NUMERIC:
        value = getattr(signals, name)
        if value is not None:
            x[name] = value
    if signals.low_end is not None:
        x["low_end"] = 1.0 if signals.low_end else 0.0
    if signals.tower_switch is not None:
        x["tower_switch"] = 1.0 if signals.tower_switch else 0.0
    if cell is not None:
        if cell.kbps is not None:
            x["cell_kbps"] = cell.kbps
        x["cell_degraded_share"] = cell.degraded_share
        x["cell_samples"] = cell.samples
    return x
