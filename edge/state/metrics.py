"""The fleet's metrics: ``edge_state_*`` (every sidecar and the learner) and ``edge_learner_*`` (the learner).

They are declared here, not in :mod:`edge.core.metrics`, and this module is imported only when a
fleet is configured: a single sidecar exports no ``edge_state_connected 0`` that an alert would
read as a lost Redis. The learner's own (:func:`learner_metrics`) are registered only by
``edge learner``, so a sidecar exports no ``edge_learner_leader 0``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from edge.core import metric_values

metric_values.install()  # (as edge.core.metrics: this module may be the first to make a metric)

__all__ = [
    "CONNECTED",
    "ERRORS",
    "OUTBOX",
    "DROPPED",
    "SYNC_LAG",
    "MODEL_VERSION",
    "SNAPSHOTS",
    "GUARD_FALLBACKS",
    "LearnerMetrics",
    "learner_metrics",
    "OPS",
]

#: What a sidecar (``flush`` the outbox, ``follow`` the stream, poll the ``model``) or the learner (``lead``:
#: the lock, ``learn``: read and acknowledge the stream, ``publish`` a snapshot) asks of Redis: :data:`ERRORS`'s ``op``.
OPS = ("flush", "follow", "model", "lead", "learn", "publish")

CONNECTED = Gauge(
    "edge_state_connected",
    "1 while this process's last exchange with the fleet's Redis succeeded, 0 while it cannot reach it.",
    multiprocess_mode="livemin",
)
ERRORS = Counter("edge_state_errors_total", "Failed exchanges with the fleet's Redis, by operation.", ["op"])
OUTBOX = Gauge(
    "edge_state_outbox",
    "Accepted labels waiting to be sent to the fleet (bounded by EDGE_STATE_OUTBOX_MAX).",
    multiprocess_mode="livesum",
)
DROPPED = Counter("edge_state_dropped_total", "Labels the fleet never got, by reason.", ["reason"])
SYNC_LAG = Gauge(
    "edge_state_sync_lag_seconds",
    "Seconds since this sidecar last completed a read of the fleet's label stream (near 0 while it keeps up).",
    multiprocess_mode="livemax",
)
MODEL_VERSION = Gauge(
    "edge_state_model_version",
    "Version of the fleet model this process serves (a sidecar) or last published (the learner); 0: none yet.",
    multiprocess_mode="livemin",
)
SNAPSHOTS = Counter("edge_state_snapshots_total", "Fleet model snapshots fetched, by result.", ["result"])
GUARD_FALLBACKS = Counter(
    "edge_state_guard_fallbacks_total",
    "Feedback accepted on this sidecar's own replay guard alone because Redis was unreachable.",
)


class LearnerMetrics:
    """``edge learner``'s own metrics (registered once, on first use)."""

    def __init__(self) -> None:
        self.leader = Gauge("edge_learner_leader", "1 on the learner that holds the lock and learns, 0 on a standby.")
        self.labels = Counter("edge_learner_labels_total", "Labels the fleet's learner learned from.")
        self.stream_lag = Gauge("edge_state_stream_lag", "Entries of the label stream not yet delivered to the learner.")
        self.pending = Gauge(
            "edge_learner_pending", "Labels delivered to the learner and not yet acknowledged (not yet in a published model)."
        )


_learner: LearnerMetrics | None = None


def learner_metrics() -> LearnerMetrics:
    global _learner
    if _learner is None:
        _learner = LearnerMetrics()
    return _learner


for _op in OPS:
    ERRORS.labels(_op)
for _reason in ("outbox_full", "forged_entry"):
    DROPPED.labels(_reason)
for _result in ("loaded", "refused", "failed"):
    SNAPSHOTS.labels(_result)
