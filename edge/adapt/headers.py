"""The HTTP headers of an adapted response, and the request headers edge reads.

Header names are compared as lower-case bytes: :func:`lower_names` lower-cases a message's names
once (ASGI apps such as Django send ``Content-Type`` as written). An adapted response's ``Vary``
is the storefront's merged with :data:`VARY_HEADERS`; its ETag is weak and tier-suffixed; on lite
and minimal its ``Cache-Control`` is private. A ``304`` carries the same (:func:`not_modified_headers`),
and a conditional request's validators are translated back to the storefront's
(:func:`translate_if_none_match`).
"""

from __future__ import annotations

import functools

from starlette.types import Scope

from edge.pipeline.policy import Decision
from edge.pipeline.signals import ACCEPT_CH

__all__ = [
    "VARY_HEADERS",
    "adapted_headers",
    "cookie",
    "header",
    "lower_names",
    "lower_scope",
    "not_modified_headers",
    "translate_if_none_match",
]

Headers = list[tuple[bytes, bytes]]

#: Request headers the tier depends on — by presence or absence — so every decided response varies on them.
VARY_HEADERS = (
    "Accept-Encoding",
    "User-Agent",
    "Sec-CH-UA-Mobile",
    "Device-Memory",
    "ECT",
    "RTT",
    "Downlink",
    "Save-Data",
    "Edge-Cell",
    "Edge-Last-Request",
    "Cookie",
)
_MAX_COOKIE_BYTES = 8192
_ACCEPT_CH = ACCEPT_CH.encode()
_TIER_BYTES = {"full": b"full", "lite": b"lite", "minimal": b"minimal"}


def lower_names(headers: Headers) -> Headers:
    """``headers`` with lower-case names: the same list when they already are (servers, the proxy).

    HTTP names are case-insensitive and ASGI apps may send them as written (Django: ``Content-Type``).
    One pass per message; every lookup after it compares bytes.

    >>> lower_names([(b"Content-Type", b"text/html"), (b"ETag", b'"A"')])
    [(b'content-type', b'text/html'), (b'etag', b'"A"')]
    >>> headers = [(b"content-type", b"text/html")]
    >>> lower_names(headers) is headers
    True
    """
    for name, _ in headers:
        if not name.islower():
            return [(n.lower(), v) for n, v in headers]
    return headers


def lower_scope(scope: Scope) -> Scope:
    """``scope`` with lower-case header names (itself when they already are)."""
    headers = scope["headers"]
    lowered = lower_names(headers)
    return scope if lowered is headers else {**scope, "headers": lowered}


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def translate_if_none_match(headers: Headers, tier: str) -> Headers:
    """Keep only the validators of ``tier``'s variant, as the storefront knows them.

    >>> translate_if_none_match([(b"if-none-match", b'W/"v1-lite", W/"v1", "v0-minimal"')], "lite")
    [(b'if-none-match', b'"v1"')]
    >>> translate_if_none_match([(b"if-none-match", b'W/"v1-lite", W/"v1"')], "full")
    [(b'if-none-match', b'W/"v1"')]
    >>> translate_if_none_match([(b"if-none-match", b'W/"v1"'), (b"accept", b"*/*")], "lite")
    [(b'accept', b'*/*')]
    """
    out: Headers = []
    for name, value in headers:
        if name != b"if-none-match":
            out.append((name, value))
            continue
        kept = []
        for tag in (t.strip() for t in value.split(b",")):
            if tag == b"*":
                kept.append(tag)
                continue
            variant = next((t for t in ("lite", "minimal") if tag.endswith(b"-" + t.encode() + b'"')), "full")
            if variant != tier:
                continue  # validates another tier's page: the client does not have this one
            if tier != "full":
                opaque = tag[2:] if tag.startswith(b"W/") else tag
                tag = opaque[: -len(tier) - 2] + b'"'
            kept.append(tag)
        if kept:
            out.append((name, b", ".join(kept)))
    return out


def not_modified_headers(headers: Headers, tier: str) -> Headers:
    """A 304 carries the cache headers the variant's 200 did (RFC 9110 §15.4.5): the weak,
    tier-suffixed ETag, edge's Vary and, on lite and minimal, a private ``Cache-Control`` (``private``
    alone when the storefront's 304 sent none: a cache must never take the variant as shared).

    >>> not_modified_headers([(b"etag", b'"v1"'), (b"cache-control", b"public, max-age=60")], "lite")[:2]
    [(b'etag', b'W/"v1-lite"'), (b'cache-control', b'private, max-age=60')]
    >>> not_modified_headers([(b"etag", b'"v1"')], "minimal")[1]
    (b'cache-control', b'private')
    >>> not_modified_headers([(b"etag", b'"v1"'), (b"cache-control", b"public")], "full")[1]
    (b'cache-control', b'public')
    """
    out, vary, cache_control = _variant_headers(headers, tier, _CACHE_HEADERS)
    if cache_control is not None:
        out.append((b"cache-control", cache_control))
    out.append((b"vary", vary))
    out.append((b"edge-tier", _TIER_BYTES[tier]))
    return out


def adapted_headers(
    upstream: Headers,
    tier: str,
    decision: Decision,
    length: int,
    coding: str | None,
    upstream_s: float,
    model_s: float,
    rewrite_s: float,
    set_cookie: bytes | None = None,
) -> Headers:
    """A rewritten (or spliced) response's headers: the storefront's for the variant, its new length and
    coding, edge's ``Edge-Tier``, ``Accept-CH`` and a ``Server-Timing`` of the upstream, model and rewrite.

    With ``set_cookie`` (the tier cookie, :mod:`edge.adapt.tier_cookie`) the response also sets it, and is
    private at every tier: a shared cache must never hand one client's cookie to others."""
    headers, vary, cache_control = _variant_headers(upstream, tier, _RECOMPUTED, private=set_cookie is not None)
    if set_cookie is not None:
        headers.append((b"set-cookie", set_cookie))
    headers.append((b"content-length", str(length).encode()))
    if coding:
        headers.append((b"content-encoding", coding.encode()))
    headers.append((b"vary", vary))
    if cache_control is not None:
        headers.append((b"cache-control", cache_control))
    headers.append((b"edge-tier", _TIER_BYTES[tier]))
    headers.append((b"accept-ch", _ACCEPT_CH))
    timing = (
        f"upstream;dur={upstream_s * 1000:.2f}, model;dur={model_s * 1000:.3f}, "
        f'rewrite;dur={rewrite_s * 1000:.2f}, edge;desc="{tier}/{decision.source}/{decision.reason}"'
    )
    headers.append((b"server-timing", timing.encode()))
    return headers


#: Headers :func:`_variant_headers` takes out of the storefront's: read (Vary, Cache-Control) or recomputed.
_CACHE_HEADERS = frozenset({b"vary", b"cache-control"})
_RECOMPUTED = _CACHE_HEADERS | {b"content-length", b"content-encoding"}


def _variant_headers(
    headers: Headers, tier: str, taken: frozenset[bytes], private: bool = False
) -> tuple[Headers, bytes, bytes | None]:
    """The storefront's headers for ``tier``'s variant: the ones not ``taken`` (the ETag weakened),
    the merged ``Vary``, and the ``Cache-Control`` to send (private below full, or when ``private``; None: send none).

    >>> _variant_headers([(b"etag", b'"a"'), (b"vary", b"Cookie"), (b"cache-control", b"public")], "lite", _CACHE_HEADERS)[2]
    b'private'
    """
    out: Headers = []
    vary: list[bytes] = []
    cache_control: bytes | None = None
    for name, value in headers:
        if name in taken:
            if name == b"vary":
                vary.append(value)
            elif name == b"cache-control":
                cache_control = value if cache_control is None else cache_control + b", " + value
            continue
        out.append((name, _weaken_etag(value, tier) if name == b"etag" else value))
    if tier != "full" or private:
        cache_control = _private(cache_control)
    return out, _vary_for(tuple(vary)), cache_control


@functools.lru_cache(maxsize=64)
def _vary_for(upstream_vary: tuple[bytes, ...]) -> bytes:
    """Edge's Vary merged with the upstream's (storefronts send a handful of distinct values)."""
    names = [v.strip() for value in upstream_vary for v in value.decode("latin-1").split(",") if v.strip()]
    return _merge_vary(names).encode("latin-1")


def _merge_vary(upstream: list[str]) -> str:
    """Union of the upstream's ``Vary`` and edge's, case-insensitively; ``*`` stays ``*``.

    >>> _merge_vary(["Accept-Encoding", "cookie"]).startswith("Accept-Encoding, cookie, User-Agent")
    True
    >>> _merge_vary(["*"])
    '*'
    """
    if "*" in upstream:
        return "*"
    seen = {v.lower() for v in upstream}
    merged = list(upstream)
    for name in VARY_HEADERS:
        if name.lower() not in seen:
            merged.append(name)
            seen.add(name.lower())
    return ", ".join(merged)


def _private(upstream: bytes | None) -> bytes:
    """A ``Cache-Control`` no weaker than the upstream's that keeps shared caches away.

    >>> _private(b"public, max-age=60, s-maxage=600")
    b'private, max-age=60'
    >>> _private(b"no-store")
    b'no-store'
    >>> _private(None)
    b'private'
    """
    if upstream is None:
        return b"private"
    directives = [d.strip() for d in upstream.split(b",") if d.strip()]
    kept = [d for d in directives if d.lower() != b"public" and not d.lower().startswith(b"s-maxage")]
    if any(d.lower() in (b"no-store", b"private") or d.lower().startswith(b"private=") for d in kept):
        return b", ".join(kept)
    return b", ".join([b"private", *kept])


def _weaken_etag(value: bytes, tier: str) -> bytes:
    """Adapted bodies differ from the upstream's: a strong validator must not claim byte equality.

    >>> _weaken_etag(b'"abc"', "lite"), _weaken_etag(b'W/"abc"', "full")
    (b'W/"abc-lite"', b'W/"abc"')
    """
    weak = value.startswith(b"W/")
    tag = value[2:] if weak else value
    if tier != "full" and tag.endswith(b'"'):
        tag = tag[:-1] + b"-" + tier.encode() + b'"'
    return b"W/" + tag


def cookie(header: str | None, name: str) -> str | None:
    """The value of the first cookie called ``name`` in a ``Cookie`` header, unquoted; None
    when there is none, or it is empty.

    Read from the part holding the name's first occurrence on: a returning shopper's header runs to a
    kilobyte or more of other sites' cookies (analytics, consent), and edge looks up three of its own in
    it per page, most often absent. The parts before that occurrence cannot be the cookie, so they are
    not split (~0.3 µs for an absent cookie in ~900 bytes, against ~2.9 µs to split it all).

    >>> cookie('_ga=GA1.2.3; edge_tier="lite" ; cart=3', "edge_tier"), cookie("xedge_tier=1", "edge_tier")
    ('lite', None)
    """
    if not header or len(header) > _MAX_COOKIE_BYTES:
        return None
    first = header.find(name)
    if first < 0:
        return None
    for part in header[header.rfind(";", 0, first) + 1 :].split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip().strip('"') or None
    return None
