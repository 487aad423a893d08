"""The Redis keys of one shop's fleet, all under one prefix (``--state-prefix``, default ``edge:``).

    >>> keys = FleetKeys("shop-a:")
    >>> keys.nonce(42), keys.labels, keys.model, keys.learner_lock
    ('shop-a:nonce:42', 'shop-a:labels', 'shop-a:model', 'shop-a:learner:lock')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FleetKeys", "LEARNER_GROUP"]

#: The consumer group of the label stream that the learner reads through.
LEARNER_GROUP = "learner"


@dataclass(frozen=True, slots=True)
class FleetKeys:
    prefix: str = "edge:"

    def nonce(self, nonce: int) -> str:
        """Set (NX, expiring with the token) by the sidecar that accepts the token: the fleet's replay guard."""
        return f"{self.prefix}nonce:{nonce}"

    @property
    def labels(self) -> str:
        """The stream of accepted labels: every sidecar follows it, the learner consumes it."""
        return f"{self.prefix}labels"

    @property
    def model(self) -> str:
        """The learner's latest signed model snapshot."""
        return f"{self.prefix}model"

    @property
    def model_version(self) -> str:
        """The version of :attr:`model`, polled by every sidecar (a few bytes, so polling is cheap)."""
        return f"{self.prefix}model:version"

    @property
    def learner_lock(self) -> str:
        """Held (with an expiry, renewed) by the learner that leads; standbys wait for it."""
        return f"{self.prefix}learner:lock"
