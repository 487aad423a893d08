"""One accepted label as a fleet shares it: what a model and a cell table learn from, signed.

A sidecar that accepts feedback (edge.learning.feedback) hands a :class:`SharedLabel` to the
fleet (edge.state), which writes it to a Redis Stream; every other sidecar applies its cell
observation and remembers its nonce, and the learner learns from it. The entry is signed with the
feedback key (HMAC-SHA256, 128 bits kept), so whoever can write to Redis without the key cannot
teach the fleet anything: a forged or altered entry is dropped when read.

    >>> label = SharedLabel(nonce=7, expires=600.0, x={"ect": "3g"}, degraded=True, client="198.51.100.9",
    ...                     trusted=True, cell="404-45-1-2", kbps=310.5, at=12.0)
    >>> fields = label.encode(b"k" * 32)
    >>> SharedLabel.decode(fields, b"k" * 32) == label
    True
    >>> SharedLabel.decode({**fields, b"l": fields[b"l"].replace(b"310.5", b"9999.0")}, b"k" * 32) is None
    True
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["SharedLabel", "MAX_ENTRY_BYTES"]

#: An entry larger than this is not one edge wrote (a token's features are a few hundred bytes).
MAX_ENTRY_BYTES = 16 * 1024
_MAC_BYTES = 16


@dataclass(slots=True)
class SharedLabel:
    """A label accepted by one sidecar: the token's nonce and expiry, its features, the label, who sent
    it, whether it may be shown to others (:mod:`edge.learning.trust`), its cell observation and when."""

    nonce: int
    expires: float  # when the token stops being valid (s since the epoch): the nonce matters until then
    x: dict[str, Any] | None
    degraded: bool
    client: str
    trusted: bool
    cell: str | None
    kbps: float | None
    at: float
    #: Already learned by the sidecar that accepted it (Redis was unreachable then): not sent on the wire.
    learned_locally: bool = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SharedLabel):
            return NotImplemented
        return self._wire() == other._wire()

    def _wire(self) -> list[Any]:
        return [self.nonce, self.expires, self.x, self.degraded, self.client, self.trusted, self.cell, self.kbps, self.at]

    def encode(self, key: bytes) -> dict[bytes, bytes]:
        """The stream entry's fields: ``l`` the label, ``s`` its signature."""
        body = orjson.dumps(self._wire())
        return {b"l": body, b"s": hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]}

    @classmethod
    def decode(cls, fields: dict[bytes, bytes], key: bytes) -> SharedLabel | None:
        """The label in a stream entry, or None if it is not a genuine, well-formed one."""
        body, mac = fields.get(b"l"), fields.get(b"s")
        if not isinstance(body, bytes) or not isinstance(mac, bytes) or len(body) > MAX_ENTRY_BYTES:
            return None
        if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]):
            return None
        try:
            nonce, expires, x, degraded, client, trusted, cell, kbps, at = orjson.loads(body)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
        if not (
            isinstance(nonce, int)
            and _finite(expires)
            and (x is None or isinstance(x, dict))
            and isinstance(degraded, bool)
            and isinstance(client, str)
            and isinstance(trusted, bool)
            and (cell is None or isinstance(cell, str))
            and (kbps is None or (_finite(kbps) and kbps >= 0))
            and _finite(at)
        ):
            return None
        return cls(nonce, float(expires), x, degraded, client, trusted, cell, None if kbps is None else float(kbps), float(at))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
