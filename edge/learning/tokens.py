"""Signed tokens and the replay guards: what makes returned feedback genuine, fresh and used once.

Edge signs a page's features and decision into a compact token (:class:`TokenSigner`:
HMAC-SHA256, key rotation, a purpose per token kind, a time to live); the feedback that brings
it back is admitted once (:class:`ReplayGuard`, bounded: when full of unexpired nonces it
refuses, ``overloaded``, rather than forget). Under ``edge serve --workers N`` the workers share
one replay table (:class:`SharedReplayGuard`, :func:`shared_guard_for_workers`), so a token is
one label at most. Refused feedback raises :class:`FeedbackRejected`, whose reason maps to an
HTTP status (:data:`REJECT_STATUS`). The loop that uses them is :mod:`edge.learning.feedback`.

    >>> signer = TokenSigner([b"k" * 32], ttl_s=600)
    >>> token = signer.sign({"x": {"ect": "2g"}, "d": "lite"}, now=1000.0)
    >>> signer.verify(token, now=1001.0)["x"]
    {'ect': '2g'}
    >>> signer.verify(token, now=5000.0)
    Traceback (most recent call last):
    ...
    edge.learning.tokens.FeedbackRejected: expired
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import mmap
import os
import struct
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from edge.core.errors import EdgeError

__all__ = [
    "TokenSigner",
    "ReplayGuard",
    "SharedReplayGuard",
    "shared_guard_for_workers",
    "FeedbackRejected",
    "MAX_TOKEN_BYTES",
    "REJECT_STATUS",
    "SHARED_GUARD_FILE",
]

MAX_TOKEN_BYTES = 2048

REJECT_STATUS = {
    "malformed": 400,
    "forged": 403,
    "replayed": 409,
    "expired": 410,
    "oversized": 413,
    "overloaded": 429,
    "throttled": 429,
}


class FeedbackRejected(EdgeError):
    """Feedback that must not reach the model; ``reason`` is one of :data:`REJECT_STATUS`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


#: Nonces drawn from the OS's CSPRNG in batches (one getrandom call per 512 tokens, not one per token).
_NONCE_BATCH = 512
_nonces: list[int] = []


def _nonce() -> int:
    """A random 63-bit nonce (what ``secrets.randbits(63)`` gives), from a batch read from ``os.urandom``.

    >>> 0 <= _nonce() < 2**63
    True
    """
    if not _nonces:
        _nonces.extend(n >> 1 for n in struct.unpack(f"<{_NONCE_BATCH}Q", os.urandom(8 * _NONCE_BATCH)))
    return _nonces.pop()


# A forked worker must not hand out the nonces its parent had drawn and not used yet.
os.register_at_fork(after_in_child=_nonces.clear)


#: At most this many (key, purpose) pairs keep precomputed HMAC states (a few keys, a few purposes in practice).
_MAX_PADS = 32
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac_pads(key: bytes, prefix: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner state (with ``prefix`` hashed in) and outer state for ``key`` (RFC 2104)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(key.translate(_IPAD))
    inner.update(prefix)
    return inner, hashlib.sha256(key.translate(_OPAD))


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_b2a = binascii.b2a_base64


def _b64(data: bytes) -> str:
    """``base64.urlsafe_b64encode(data)`` without its padding, as text (in C calls only).

    >>> all(_b64(bytes(range(n))) == base64.urlsafe_b64encode(bytes(range(n))).rstrip(b"=").decode() for n in range(70))
    True
    """
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class TokenSigner:
    """HMAC-SHA256 signing of small JSON payloads, with key rotation.

    ``keys[0]`` signs; every key in ``keys`` verifies (put the previous key
    second while rotating). ``purpose`` separates token kinds, so a signed
    cookie can never be replayed as a feedback token or the other way round.
    """

    def __init__(self, keys: list[bytes], ttl_s: float = 600.0) -> None:
        if not keys or any(len(k) < 16 for k in keys):
            raise ValueError("feedback keys must be at least 16 bytes")
        self.keys = list(keys)
        self.ttl_s = ttl_s
        #: (key, purpose) → HMAC's inner and outer SHA-256 states (:meth:`_mac`); purposes are this code's constants.
        self._pads: dict[tuple[bytes, bytes], tuple[Any, Any]] = {}

    def _mac(self, key: bytes, purpose: bytes, payload: bytes) -> bytes:
        """HMAC-SHA256 of ``purpose|payload`` under ``key``, cut to 16 bytes (``hmac.digest``'s first 16).

        HMAC's two SHA-256 states (the key's inner pad with ``purpose|`` in it, the outer pad) are made
        once per key and purpose and copied per token: two hashes of the payload's length, not the four
        blocks and the OpenSSL MAC set-up of a one-shot ``hmac.digest`` (~1.6 µs against ~4.5 here).

        >>> signer = TokenSigner([b"k" * 32, b"long key " * 10])
        >>> all(signer._mac(k, b"t", b"x" * n) == hmac.digest(k, b"t|" + b"x" * n, "sha256")[:16]
        ...     for k in signer.keys for n in (0, 1, 55, 64, 300))
        True
        """
        pads = self._pads.get((key, purpose))
        if pads is None:
            if len(self._pads) >= _MAX_PADS:
                return hmac.digest(key, purpose + b"|" + payload, "sha256")[:16]
            pads = self._pads[(key, purpose)] = _hmac_pads(key, purpose + b"|")
        inner = pads[0].copy()
        inner.update(payload)
        outer = pads[1].copy()
        outer.update(inner.digest())
        return outer.digest()[:16]

    def sign(self, payload: dict[str, Any], now: float, purpose: bytes = b"t") -> str:
        """A compact token for ``payload`` (adds the issue time ``t`` and a nonce ``n``)."""
        raw = orjson.dumps({**payload, "t": round(now, 3), "n": _nonces.pop() if _nonces else _nonce()})
        mac = self._mac(self.keys[0], purpose, raw)
        # _b64 of each, inline (a token per page): the same text as _b64(raw) + "." + _b64(mac)
        return b".".join((_b2a(raw, newline=False).translate(_URLSAFE).rstrip(b"="), _b2a(mac, newline=False).translate(_URLSAFE).rstrip(b"="))).decode()

    def verify(self, token: str, now: float, purpose: bytes = b"t", ttl_s: float | None = None) -> dict[str, Any]:
        """The payload of a genuine, unexpired token; raises :class:`FeedbackRejected` otherwise."""
        ttl_s = self.ttl_s if ttl_s is None else ttl_s
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
            raise FeedbackRejected("malformed")
        body, _, mac = token.partition(".")
        try:
            raw, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise FeedbackRejected("malformed") from None
        if not any(hmac.compare_digest(given, self._mac(key, purpose, raw)) for key in self.keys):
            raise FeedbackRejected("forged")
        payload = orjson.loads(raw)  # signed by us, so well-formed
        issued = payload.get("t")
        if not isinstance(issued, (int, float)) or not (now - ttl_s <= issued <= now + 60.0):
            raise FeedbackRejected("expired")
        return payload


class ReplayGuard:
    """Remembers the nonces of accepted tokens until they expire; bounded to ``max_entries``.

    >>> guard = ReplayGuard(max_entries=2, window_s=10)
    >>> guard.admit(1, issued=0.0, now=1.0), guard.admit(1, issued=0.0, now=2.0)
    (True, False)
    >>> guard.admit(2, issued=0.0, now=2.0), guard.admit(3, issued=0.0, now=2.0)   # full
    (True, None)
    >>> guard.admit(3, issued=0.0, now=11.0)    # the old nonces have expired
    True
    """

    def __init__(self, max_entries: int = 200_000, window_s: float = 600.0) -> None:
        self.max_entries = max_entries
        self.window_s = window_s
        self._seen: OrderedDict[int, float] = OrderedDict()  # nonce → expiry, in arrival order

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._seen

    def admit(self, nonce: int, issued: float, now: float) -> bool | None:
        """True: first sighting (now remembered); False: a replay; None: full, refuse for now."""
        if nonce in self._seen:
            return False
        self._evict(now)
        if len(self._seen) >= self.max_entries:
            return None
        self._seen[nonce] = issued + self.window_s
        return True

    def _evict(self, now: float) -> None:
        # Tokens arrive roughly in issue order, so expired nonces collect at the front.
        while self._seen:
            nonce, expiry = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[nonce]


class SharedReplayGuard:
    """A replay table shared by the processes of one sidecar (``edge serve --workers N``), in a file they all map.

    Fixed size (``max_entries`` × 2 slots of 16 bytes, open addressing, at most ``PROBES`` slots
    looked at per nonce, an expired slot is free again), so memory never grows; an ``flock`` on
    the file makes look-up-and-insert atomic across the processes. Like :class:`ReplayGuard`,
    ``admit`` returns True (first sighting), False (a replay) or None (no free slot near the
    nonce's place: refuse for now, never forget).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "guard")
    >>> a, b = SharedReplayGuard(path, max_entries=8, window_s=10), SharedReplayGuard(path, max_entries=8, window_s=10)
    >>> a.admit(42, issued=0.0, now=1.0), b.admit(42, issued=0.0, now=2.0), b.admit(43, issued=0.0, now=2.0)
    (True, False, True)
    """

    PROBES = 32
    _MAGIC = b"EDGE-REPLAY-1\0\0\0"
    _SLOT = struct.Struct("<Qd")

    def __init__(self, path: str, max_entries: int = 100_000, window_s: float = 600.0) -> None:
        slots = 64
        while slots < 2 * max(1, max_entries):
            slots *= 2
        self.slots = slots
        self.mask = slots - 1
        self.window_s = window_s
        size = len(self._MAGIC) + 8 + slots * self._SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            header = os.pread(self._fd, len(self._MAGIC) + 8, 0)
            if header != self._MAGIC + struct.pack("<Q", slots) or os.fstat(self._fd).st_size != size:
                os.ftruncate(self._fd, 0)  # new, or written for another size: start empty
                os.ftruncate(self._fd, size)
                os.pwrite(self._fd, self._MAGIC + struct.pack("<Q", slots), 0)
        self._map = mmap.mmap(self._fd, size)
        self._base = len(self._MAGIC) + 8

    def _locked(self) -> _Flock:
        return _Flock(self._fd)

    def admit(self, nonce: int, issued: float, now: float) -> bool | None:
        nonce = (nonce & 0xFFFF_FFFF_FFFF_FFFF) or 1  # 0 marks an empty slot
        slot, base, mask, unpack, mapped = nonce & self.mask, self._base, self.mask, self._SLOT.unpack_from, self._map
        with self._locked():
            free = -1
            for i in range(self.PROBES):
                j = (slot + i) & mask
                key, expiry = unpack(mapped, base + j * 16)
                if key == nonce and expiry > now:
                    return False
                if free < 0 and (key == 0 or expiry <= now):
                    free = j
            if free < 0:
                return None
            self._SLOT.pack_into(mapped, base + free * 16, nonce, issued + self.window_s)
            return True

    def seen(self, nonce: int, now: float) -> bool:
        """Whether ``nonce`` is remembered and unexpired (no insert)."""
        nonce = (nonce & 0xFFFF_FFFF_FFFF_FFFF) or 1
        slot, base, mask, unpack, mapped = nonce & self.mask, self._base, self.mask, self._SLOT.unpack_from, self._map
        with self._locked():
            for i in range(self.PROBES):
                key, expiry = unpack(mapped, base + ((slot + i) & mask) * 16)
                if key == nonce and expiry > now:
                    return True
        return False

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a SharedReplayGuard is a file shared by live processes; it is never checkpointed")


class _Flock:
    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


#: Set by ``edge serve --workers N`` in each worker (edge.runtime.workers), with PROMETHEUS_MULTIPROC_DIR: the
#: directory the supervisor made for this sidecar's workers, where they also keep their replay table.
_WORKER_INDEX_ENV = "EDGE_WORKER_INDEX"
SHARED_GUARD_FILE = "edge-replay-guard.bin"


def shared_guard_for_workers(
    max_entries: int, window_s: float, environ: Mapping[str, str] | None = None
) -> SharedReplayGuard | None:
    """The replay table this process shares with its sibling workers, or None when it is not a worker."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    directory = env.get("PROMETHEUS_MULTIPROC_DIR")
    if env.get(_WORKER_INDEX_ENV) is None or not directory:
        return None
    return SharedReplayGuard(os.path.join(directory, SHARED_GUARD_FILE), max_entries, window_s)
