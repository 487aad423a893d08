"""A fleet model snapshot: the learner's model, its version and when it was published, signed.

It travels through Redis as checkpoint bytes (:func:`edge.learning.model.checkpoints.checkpoint_bytes`)
signed with the feedback key: a sidecar verifies the HMAC before it unpickles anything, so a
snapshot written to Redis by anyone without the key is refused (``edge_state_snapshots_total{result="refused"}``).

    >>> from edge.learning.model import RuleModel
    >>> data = FleetSnapshot(version=3, published_at=1.5, model=RuleModel()).to_bytes(b"k" * 32)
    >>> snapshot = FleetSnapshot.from_bytes(data, b"k" * 32)
    >>> snapshot.version, type(snapshot.model).__name__
    (3, 'RuleModel')
    >>> FleetSnapshot.from_bytes(data, b"x" * 32)
    Traceback (most recent call last):
    ...
    edge.learning.model.checkpoints.CheckpointError: checkpoint redis model snapshot: digest mismatch (corrupt or tampered with)
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.learning.model import NetworkModel
from edge.learning.model.checkpoints import checkpoint_bytes, from_checkpoint_bytes

__all__ = ["FleetSnapshot", "SNAPSHOT_KIND"]

SNAPSHOT_KIND = "edge-fleet-model"


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    version: int
    published_at: float
    model: NetworkModel

    def to_bytes(self, key: bytes) -> bytes:
        return checkpoint_bytes(self, kind=SNAPSHOT_KIND, key=key)

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> FleetSnapshot:
        """The snapshot in ``data``; :class:`~edge.learning.model.CheckpointError` if it is not genuine."""
        return from_checkpoint_bytes(data, cls, kind=SNAPSHOT_KIND, key=key, name="redis model snapshot")
