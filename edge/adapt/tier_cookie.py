"""The tier cookie: a client's last predicted tier and when it was chosen, signed.

The stability rule (:mod:`edge.pipeline.policy.stability`) needs to know, per client, the tier it
was last served and when that tier was chosen; nothing is remembered on the server, so the client
carries it. The cookie ``edge_t`` holds a token of :class:`~edge.learning.tokens.TokenSigner`
signed with its own purpose (``s``: it can never pass for a feedback token or the measurement
cookie, nor they for it)::

    base64url({"d": tier, "p": pending_tier_if_any, "t": chosen_at, "n": nonce}) "." base64url(HMAC-SHA256(key, "s|" payload)[:16])

It lives as long as the dwell time (``Max-Age``, and the signature's time to live): past it the
tier is chosen afresh anyway. A cookie that is malformed, forged, expired or names no tier is
ignored, as if absent: never an error for the shopper. It is set only when the client's state
changes (its first predicted page, a switch, a choice after the dwell time, an unconfirmed
crossing remembered or forgotten), not on every page.

    >>> from edge.learning.tokens import TokenSigner
    >>> cookies = TierCookie(TokenSigner([b"k" * 32]), dwell_s=600.0)
    >>> value = cookies.issue(LastTier("lite", chosen_at=1000.0))
    >>> cookies.read(value, now=1300.0)
    LastTier(tier='lite', chosen_at=1000.0, pending=None)
    >>> cookies.read(value, now=1600.0) is None, cookies.read(value[:-2] + "AA", now=1300.0) is None
    (True, True)
    >>> cookies.set_cookie(value).split(b";", 1)[1]
    b' Max-Age=600; Path=/; HttpOnly; SameSite=Lax'
"""

from __future__ import annotations

from edge.core.tiers import TIERS
from edge.learning.tokens import FeedbackRejected, TokenSigner
from edge.pipeline.policy.stability import LastTier

__all__ = ["TIER_COOKIE", "TierCookie"]

#: The cookie's name.
TIER_COOKIE = "edge_t"
_PURPOSE = b"s"


class TierCookie:
    """Read and issue the signed tier cookie of one middleware (its key, its dwell time)."""

    def __init__(self, signer: TokenSigner, dwell_s: float) -> None:
        self.signer = signer
        self.dwell_s = dwell_s

    def read(self, value: str | None, now: float) -> LastTier | None:
        """The cookie's state if genuine and its tier younger than the dwell time; else None (never raises)."""
        if not value or self.dwell_s <= 0:
            return None
        try:
            payload = self.signer.verify(value, now, purpose=_PURPOSE, ttl_s=self.dwell_s)
        except FeedbackRejected:
            return None
        tier, pending = payload.get("d"), payload.get("p")
        chosen_at = float(payload["t"])
        if tier not in TIERS or (pending is not None and pending not in TIERS) or now - chosen_at >= self.dwell_s:
            return None
        return LastTier(tier, chosen_at, pending)

    def issue(self, state: LastTier) -> str:
        """A cookie value for ``state`` (signed as issued at the time its tier was chosen)."""
        payload: dict[str, str] = {"d": state.tier}
        if state.pending is not None:
            payload["p"] = state.pending
        return self.signer.sign(payload, state.chosen_at, purpose=_PURPOSE)

    def set_cookie(self, value: str) -> bytes:
        """The ``Set-Cookie`` header value for ``value``."""
        return f"{TIER_COOKIE}={value}; Max-Age={int(self.dwell_s)}; Path=/; HttpOnly; SameSite=Lax".encode()
