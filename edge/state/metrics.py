"""The fleet's metrics: ``edge_state_*`` (every sidecar and the learner) and ``edge_learner_*``.

They are declared here, not in :mod:`edge.core.metrics`, and this module is imported only when a
fleet is configured: a single sidecar exports no ``edge_state_connected 0`` that an alert would
read as a lost Redis.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "CONNECTED",
    "ERRORS",
    "OUTBOX",
    "DROPPED",
    "SYNC_LAG",
    "MODEL_VERSION",
    "SNAPSHOTS",
    "GUARD_FALLBACKS",
    "LEARNER_LEADER",
    "LEARNER_LABELS",
    "STREAM_LAG",
    "LEARNER_PENDING",
    "OPS",
]

#: What a sidecar or the learner asks of Redis (the ``op`` label of :data:`ERRORS`).
OPS = ("connect", "flush", "follow", "model", "lead", "learn", "publish")

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
LEARNER_LEADER = Gauge("edge_learner_leader", "1 on the learner that holds the lock and learns, 0 on a standby.")
LEARNER_LABELS = Counter("edge_learner_labels_total", "Labels the fleet's learner learned from.")
STREAM_LAG = Gauge("edge_state_stream_lag", "Entries of the label stream not yet delivered to the learner.")
LEARNER_PENDING = Gauge("edge_learner_pending", "Labels delivered to the learner and not yet acknowledged (not yet in a published model).")

for _op in OPS:
    ERRORS.labels(_op)
for _reason in ("outbox_full", "forged_entry"):
    DROPPED.labels(_reason)
for _result in ("loaded", "refused", "failed"):
    SNAPSHOTS.labels(_result)
