"""AdaptiveMiddleware: the per-request pipeline, as pure ASGI middleware.

Wrap the reverse proxy (``edge serve``) or any ASGI storefront in-process::

    from edge import AdaptiveMiddleware, load_policy
    app = AdaptiveMiddleware(storefront_app, policy=load_policy("policies/shop.toml"))

For every ``GET`` whose response is an HTML page (status 200, ``text/html``,
not compressed, not ``Cache-Control: no-transform``, under the size cap):

1. signals   request headers → :class:`~edge.pipeline.signals.Signals`
2. features  signals + the cell's live state → feature dict
3. predict   model → p(degraded), or ``None`` (unknown)
4. decide    policy → :class:`~edge.pipeline.policy.Decision` (tier and reason)
5. rewrite   drop the tier's widgets and add the switch link

Everything else (images, downloads, ``HEAD``, ranges, ``304``, other methods)
streams through untouched. Stages 1–4 run while the storefront works on the
request when it looks like a page (no static-asset extension, no
``Sec-Fetch-Dest`` of an asset): the verdict is ready when the answer comes,
so the shopper does not wait for it. Asset requests are decided only if their
answer turns out to be HTML, so images and scripts pay nothing.

Header names are read in any case (ASGI apps such as Django send ``Content-Type``
as written): each message's names are lower-cased once, by :func:`_lower_names`.
A 200 edge cannot classify (no ``Content-Type``…) passes through and is counted in
``edge_unclassified_responses_total{reason}``.

Fail open: if any stage raises, the shopper gets the original response and
``edge_fail_open_total{stage}`` counts it; with ``fail_mode="closed"`` (tests)
the error is raised as :class:`~edge.core.errors.AdaptError` instead. Per-request
state lives on a per-request :class:`_Responder`, never on the middleware.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from dataclasses import dataclass
from email.utils import formatdate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.adapt.endpoints import build_endpoints
from edge.core import metrics
from edge.core.errors import AdaptError, UpstreamStreamBroken
from edge.core.settings import Settings
from edge.learning.feedback import MEASUREMENT_COOKIE, MEASUREMENT_MAX_AGE_S, Feedback, FeedbackRejected, ReplayGuard, TokenSigner
from edge.learning.model import NetworkModel, RuleModel
from edge.learning.trust import client_group
from edge.pipeline.features import Features, to_features
from edge.pipeline.policy import Decision, Policy, holdback_draw
from edge.pipeline.rewrite import HtmlRewriter, JsonRewriter, RewriteCache, StreamSplicer, beacon_script, switch_link
from edge.pipeline.signals import ACCEPT_CH, SIGNAL_HEADERS, Signals, read_signals
from edge.pipeline.towers import TowerTable
from edge.transport.encoding import CODINGS, DecodeFailed, charset_of, decode, encode, negotiate

__all__ = ["AdaptiveMiddleware", "VARY_HEADERS", "EDGE_PATH_PREFIX"]

log = logging.getLogger("edge.adapt")

#: Edge's own endpoints on the public port; never adapted, never proxied.
EDGE_PATH_PREFIX = "/__edge/"
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
_SIGNAL_HEADER_BYTES = frozenset(h.encode() for h in SIGNAL_HEADERS) | {b"cookie"}
_MAX_COOKIE_BYTES = 8192
_DECODABLE = frozenset({"", "identity", "x-gzip", *CODINGS})
#: Below this, compressing the adapted page costs more than it saves.
_MIN_COMPRESS_BYTES = 1024
_SWITCH_TEXT = {"full": "Light page", "lite": "Full page", "minimal": "Full page"}


class AdaptiveMiddleware:
    """Predict a degraded network per request and serve the tier's layout (see module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: Policy,
        model: NetworkModel | None = None,
        towers: TowerTable | None = None,
        settings: Settings | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        self.app = app
        # (`is None`, not `or`: an empty TowerTable or guard is falsy but very much wanted.)
        self.settings = settings if settings is not None else Settings()
        self.model: NetworkModel = model if model is not None else RuleModel()
        self.towers = towers if towers is not None else TowerTable(self.settings.max_cells, self.settings.cell_half_life_s)
        if feedback is None:
            extra = getattr(self.model, "extra", None)
            guard = extra.get("replay_guard") if isinstance(extra, dict) else None  # restored with the model
            if not isinstance(guard, ReplayGuard):
                guard = ReplayGuard(self.settings.max_replay_entries, self.settings.feedback_ttl_s)
            feedback = Feedback(_signer(self.settings), self.model, self.towers, policy.labels, guard)
        self.feedback = feedback
        self.strict = self.settings.fail_mode == "closed"
        self.max_body = self.settings.max_rewrite_bytes
        self.set_policy(policy)
        self.endpoints = build_endpoints(self)

    def set_policy(self, policy: Policy) -> None:
        """Swap in a new compiled policy; requests already in flight keep the one they started with."""
        cache = (
            RewriteCache(self.settings.rewrite_cache_bytes, _CACHE_HIT.inc, _CACHE_MISS.inc)
            if self.settings.rewrite_cache_bytes > 0
            else None
        )
        self._compiled = (policy, HtmlRewriter(policy, cache), JsonRewriter(policy))
        self.feedback.labels = policy.labels

    @property
    def policy(self) -> Policy:
        return self._compiled[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(EDGE_PATH_PREFIX):
            await self.endpoints(_lower_scope(scope), receive, _with_date(send))
            return
        if scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        # edge reads the request through a scope whose header names are lower-case (a server
        # sends them so, an outer middleware may not); the storefront gets the scope as it came.
        own = _lower_scope(scope)
        responder = _Responder(self, own, send)
        if _header(own, b"if-none-match") is not None:
            # A conditional request must be checked against the validator of the tier it will get,
            # so decide first and translate our variant ETags back to the storefront's.
            responder.verdict = self.decide(own, time.time())
            scope = {**own, "headers": _translate_if_none_match(own["headers"], responder.verdict.decision.tier)}
            responder.scope = scope
        elif not self.strict and _likely_page(own):
            # Decide in the next loop step: after the request has gone upstream, before its answer.
            asyncio.get_running_loop().call_soon(responder.decide_early)
        try:
            await self.app(scope, receive, responder.send)
        except UpstreamStreamBroken as exc:
            if not await responder.upstream_broke(exc):
                # Headers are out: aborting the connection is the only signal left. Returning mid-body
                # makes the server close it (uvicorn: "returned without completing response"), in a
                # log line, not a traceback.
                log.warning("%s after the response started: connection aborted", exc)

    # The adaptive steps, plain synchronous code: the responder calls them once it knows the page is HTML.

    def decide(self, scope: Scope, now: float) -> _Verdict:
        """Stages 1–4 for one request (signals, features, predict, decide); ``scope``'s header names are lower-case."""
        policy = self._compiled[0]
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _SIGNAL_HEADER_BYTES and name.decode() not in headers:
                headers[name.decode()] = value.decode("latin-1")
        stage = "signals"
        try:
            signals = read_signals(headers)
            cookies = headers.get("cookie")
            peer = _peer(scope)  # who sends this request's report, and whose own cell reports it may see (edge.learning.trust)
            self._last_measurement(signals, cookies, now, peer)
            cell = self.towers.lookup(signals.cell_id, now, client_group(peer)) if signals.cell_id else None
            x = to_features(signals, cell)
            stage = "predict"
            started = time.perf_counter()
            p = self.model.predict(x)
            model_s = time.perf_counter() - started
            stage = "decide"
            preference = _cookie(cookies, policy.preference_cookie)
            draw = holdback_draw(_client_id(scope, headers)) if policy.holdback else None
            decision = policy.decide(
                p,
                source=self.model.source,
                save_data=signals.save_data,
                preference=preference,
                holdback_draw=draw,
                path=scope["path"],
                ceiling=_tier_ceiling(self.model, x),
            )
            return _Verdict(decision, model_s, x, signals.cell_id)
        except Exception as exc:
            self.fail_open(stage, exc)
            return _Verdict(Decision("full", "error", "none"), 0.0, {}, None)

    def _last_measurement(self, signals: Signals, cookies: str | None, now: float, peer: str | None = None) -> None:
        """Fill the last-request signals: the app's header, else the browser's signed cookie.

        An app's report that carries its previous response's token is also a label.
        """
        if signals.last_token is not None and signals.last_ms is not None:
            try:
                self.feedback.app_report(
                    signals.last_token, signals.last_ms, signals.last_bytes, now, signals.last_rtt_ms, client=peer
                )
            except FeedbackRejected:
                pass  # counted by reason; the figures still serve as this request's signals
        if signals.last_ms is not None:
            return
        raw = _cookie(cookies, MEASUREMENT_COOKIE)
        payload = self.feedback.read_measurement_cookie(raw, now, MEASUREMENT_MAX_AGE_S) if raw else None
        if payload is None:
            return
        kbps, rtt, cell, avg = payload.get("k"), payload.get("r"), payload.get("c"), payload.get("a")
        signals.last_kbps = float(kbps) if isinstance(kbps, (int, float)) else None
        signals.last_rtt_ms = float(rtt) if isinstance(rtt, (int, float)) else None
        measured_at = payload.get("kt") if signals.last_kbps is not None else None
        signals.last_age_s = max(0.0, now - float(measured_at if isinstance(measured_at, (int, float)) else payload["t"]))
        signals.last_cell_id = cell if isinstance(cell, str) else None
        signals.client_kbps_avg = float(avg) if isinstance(avg, (int, float)) else None

    def fail_open(self, stage: str, exc: BaseException) -> None:
        metrics.FAIL_OPEN.labels(stage).inc()
        if self.strict:
            raise AdaptError(stage, exc) from exc
        log.warning("adaptation failed at %s, serving the original: %r", stage, exc)


@dataclass(slots=True)
class _Verdict:
    """What stages 1–4 concluded for one request."""

    decision: Decision
    model_s: float
    features: Features
    cell_id: str | None


def _signer(settings: Settings) -> TokenSigner:
    keys = [k for k in (settings.feedback_key, settings.feedback_key_previous) if k]
    if not keys:
        log.warning("EDGE_FEEDBACK_KEY is not set: using a random key; feedback tokens die with this process")
        return TokenSigner([secrets.token_bytes(32)], settings.feedback_ttl_s)
    return TokenSigner([_key_bytes(k) for k in keys], settings.feedback_ttl_s)


def _key_bytes(key: str) -> bytes:
    """A configured key's bytes: the text as given (UTF-8), so the same string means the same key everywhere."""
    return key.encode()


@dataclass(frozen=True, slots=True)
class _TierMetrics:
    """Metric children of one tier, resolved once: the per-request path only increments."""

    upstream_bytes: object
    served_bytes: object
    duration: object
    rewrite: object


_PER_TIER = {
    tier: _TierMetrics(
        metrics.UPSTREAM_BYTES.labels(tier),
        metrics.SERVED_BYTES.labels(tier),
        metrics.REQUEST_DURATION.labels(tier),
        metrics.REWRITE_DURATION.labels(tier),
    )
    for tier in metrics.TIERS
}
_UNCLASSIFIED = {reason: metrics.UNCLASSIFIED.labels(reason) for reason in metrics.UNCLASSIFIED_REASONS}
_CACHE_HIT = metrics.REWRITE_CACHE.labels("hit")
_CACHE_MISS = metrics.REWRITE_CACHE.labels("miss")
_REQUESTS = {(tier, source): metrics.REQUESTS.labels(tier, source) for tier in metrics.TIERS for source in metrics.SOURCES}


class _Responder:
    """Per-request state: holds an HTML response's start message until the body is rewritten."""

    __slots__ = (
        "mw", "scope", "downstream", "started", "mode", "start", "chunks", "size", "verdict", "upstream_s",
        "content_type", "coding", "kind", "splicer",
    )

    def __init__(self, mw: AdaptiveMiddleware, scope: Scope, send: Send) -> None:
        self.mw = mw
        self.scope = scope
        self.downstream = send
        self.started = time.perf_counter()
        self.mode = "pending"  # pending → pass | buffer | splice → done
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.verdict: _Verdict | None = None
        self.upstream_s = 0.0
        self.content_type = b""
        self.coding = ""
        self.kind = "html"
        self.splicer: StreamSplicer | None = None

    async def upstream_broke(self, exc: UpstreamStreamBroken) -> bool:
        """The storefront's body broke off. If edge held the page (nothing sent yet): a 502, or a 504
        when the read timed out, with a one-line plain body, and True. False once headers are out.

        The proxy has counted the error in ``edge_upstream_errors_total{kind}``.
        """
        if self.mode not in ("pending", "buffer"):
            return False
        self.mode = "done"
        self.chunks.clear()
        timed_out = _timed_out(exc)
        log.warning("%s while edge held the page for rewriting: answered %d", exc, 504 if timed_out else 502)
        if timed_out:
            await _plain(self.downstream, 504, b"upstream timed out\n")
        else:
            await _plain(self.downstream, 502, b"upstream unavailable\n")
        return True

    def decide_early(self) -> None:
        """Stages 1–4 ahead of the response (a loop callback); a no-op once the response has started."""
        if self.verdict is None and self.mode == "pending":
            self.verdict = self.mw.decide(self.scope, time.time())

    async def send(self, message: Message) -> None:
        if self.mode == "pass":
            await self.downstream(message)
        elif message["type"] == "http.response.start":
            self.upstream_s = time.perf_counter() - self.started
            metrics.UPSTREAM_DURATION.observe(self.upstream_s)
            # Header names lower-cased once (Django and others send them as written: "Content-Type");
            # everything below reads `message`, and what passes through unchanged is `original`.
            original = message
            headers = _lower_names(message["headers"])
            if headers is not message["headers"]:
                message = {**message, "headers": headers}
            if message["status"] == 304 and self.verdict is not None:
                self.mode = "pass"
                await self.downstream({**message, "headers": _not_modified_headers(headers, self.verdict.decision.tier)})
                return
            kind = self._adaptable(message)
            if kind is not None and self.verdict is None:
                self.verdict = self.mw.decide(self.scope, time.time())
            if kind == "html" and await self._start_streamed_splice(message):
                return
            if kind == "html" or (kind == "json" and self._json_rules_apply()):
                # Hold the start message: Content-Length, ETag and Vary change with the body.
                self.kind = kind
                self.start = message
                self.mode = "buffer"
            elif kind == "json":
                # An app response no layout rule touches: its body passes through, with the token.
                self.mode = "pass"
                await self.downstream({**original, "headers": [*original["headers"], *self._token_header()]})
            else:
                self.mode = "pass"
                await self.downstream(original)
        elif message["type"] == "http.response.body" and self.mode == "buffer":
            await self._buffer(message)
        elif message["type"] == "http.response.body" and self.mode == "splice":
            await self._splice(message)
        else:
            await self.downstream(message)

    async def _start_streamed_splice(self, start: Message) -> bool:
        """The full tier's hot path: stream the page, splicing the snippet in as it passes.

        Only for an uncompressed page whose length is declared (the output is that plus
        the snippet, so Content-Length goes out first). Returns False to take the
        buffered path instead.
        """
        verdict = self.verdict
        if verdict is None or verdict.decision.tier != "full" or self.coding not in ("", "identity"):
            return False
        length = next((int(v) for n, v in start["headers"] if n == b"content-length"), None)
        if length is None:
            return False
        decision = verdict.decision
        try:
            token = self.mw.feedback.issue(
                verdict.features, "full", decision.source, decision.p, self.upstream_s * 1000, verdict.cell_id, time.time()
            )
            query = self.scope.get("query_string", b"")
            back = self.scope["path"] + ("?" + query.decode("latin-1") if query else "")
            snippet = switch_link("lite", back, _SWITCH_TEXT["full"]) + beacon_script(token)
            headers = _adapted_headers(
                start["headers"], "full", decision, length + len(snippet), None, self.upstream_s, verdict.model_s, 0.0
            )
        except Exception as exc:
            self.mw.fail_open("respond", exc)
            return False
        headers.append((b"edge-token", token.encode()))
        self.splicer = StreamSplicer(snippet, length)
        self.mode = "splice"
        await self.downstream({**start, "headers": headers})
        return True

    async def _splice(self, message: Message) -> None:
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if message.get("more_body", False):
            out = self.splicer.feed(chunk) if chunk else b""
            if out:
                await self.downstream({"type": "http.response.body", "body": out, "more_body": True})
            return
        self.mode = "done"
        await self.downstream({"type": "http.response.body", "body": self.splicer.finish(chunk), "more_body": False})
        decision = self.verdict.decision  # type: ignore[union-attr]
        counted = _PER_TIER["full"]
        _REQUESTS["full", decision.source].inc()
        counted.upstream_bytes.inc(self.size)
        counted.served_bytes.inc(self.size + len(self.splicer.snippet))
        elapsed = time.perf_counter() - self.started
        counted.duration.observe(elapsed)
        if decision.source == "holdback":
            metrics.HOLDBACK_DURATION.observe(elapsed)

    def _json_rules_apply(self) -> bool:
        assert self.verdict is not None
        try:
            return self.mw._compiled[2].applies(self.verdict.decision.tier, self.scope["path"])
        except Exception as exc:
            self.mw.fail_open("rewrite", exc)
            return False

    def _token_header(self) -> list[tuple[bytes, bytes]]:
        try:
            v = self.verdict
            assert v is not None
            token = self.mw.feedback.issue(
                v.features, "full", v.decision.source, v.decision.p, self.upstream_s * 1000, v.cell_id, time.time()
            )
        except Exception as exc:
            self.mw.fail_open("respond", exc)
            return []
        return [(b"edge-token", token.encode())]

    def _adaptable(self, start: Message) -> str | None:
        """"html", "json" or None (pass through) for a response start whose header names are lower-case.

        A 200 edge cannot classify or read (no ``Content-Type``, a ``Content-Length`` that is not
        a number, a page in a coding edge does not decode) passes through and is counted in
        ``edge_unclassified_responses_total{reason}``: a storefront edge never adapts shows there.
        """
        if start["status"] != 200:
            return None
        content_type: bytes | None = None
        encoding = b""
        for name, value in start["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-encoding":
                encoding = value
            elif name == b"cache-control" and b"no-transform" in value.lower():
                return None
            elif name == b"content-length":
                if not value.isdigit():
                    _UNCLASSIFIED["bad-length"].inc()
                    return None
                if int(value) > self.mw.max_body:
                    return None
        for name, value in self.scope["headers"]:
            if name == b"cache-control" and b"no-transform" in value.lower():
                return None
        if content_type is None:
            _UNCLASSIFIED["no-content-type"].inc()
            return None
        content_type = content_type.lower()
        if content_type.startswith(b"application/json"):
            kind = "json"
        elif content_type.startswith(b"text/html"):
            kind = "html"
        else:
            return None
        coding = encoding.strip().lower().decode("latin-1")
        if coding not in _DECODABLE:
            _UNCLASSIFIED["coding"].inc()
            return None
        self.content_type, self.coding = content_type, coding
        return kind

    async def _buffer(self, message: Message) -> None:
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self.size > self.mw.max_body:
            # Too big to rewrite (no Content-Length told us earlier): stream it through unmodified.
            self.mode = "pass"
            await self.downstream(self.start)
            for held in self.chunks:
                await self.downstream({"type": "http.response.body", "body": held, "more_body": True})
            self.chunks.clear()
            await self.downstream(message)
            return
        if chunk:
            self.chunks.append(chunk)
        if not message.get("more_body", False):
            self.mode = "done"
            await self._respond(b"".join(self.chunks))

    async def _respond(self, original: bytes) -> None:
        verdict = self.verdict
        assert verdict is not None and self.start is not None
        decision = verdict.decision
        tier = decision.tier
        rewrite_started = time.perf_counter()
        token = ""
        body: bytes | None = None
        try:
            page = decode(original, self.coding, self.mw.max_body)
        except DecodeFailed as exc:
            self.mw.fail_open("decode", exc)
            page = None
        if page is None:
            # Over the cap once decoded (a compression bomb, or just huge) or undecodable: pass it through.
            tier = "full"
        else:
            try:
                _, html_rewriter, json_rewriter = self.mw._compiled
                route = self.scope["path"]
                token = self.mw.feedback.issue(
                    verdict.features, tier, decision.source, decision.p, self.upstream_s * 1000, verdict.cell_id, time.time()
                )
                if self.kind == "json":
                    body = json_rewriter.rewrite(page, tier, route)
                else:
                    query = self.scope.get("query_string", b"")
                    back = route + ("?" + query.decode("latin-1") if query else "")
                    snippet = switch_link("lite" if tier == "full" else "full", back, _SWITCH_TEXT[tier]) + beacon_script(token)
                    charset = charset_of(self.content_type, page[:1024])
                    body = html_rewriter.rewrite(page, tier, snippet, path=route, charset=charset)
                coding = negotiate(_header(self.scope, b"accept-encoding")) if len(body) >= _MIN_COMPRESS_BYTES else None
                body = encode(body, coding) if coding else body
            except Exception as exc:
                self.mw.fail_open("rewrite", exc)
                tier, body = "full", None
        rewrite_s = time.perf_counter() - rewrite_started
        if body is None:
            await self.downstream(self.start)
            await self.downstream({"type": "http.response.body", "body": original})
            served = original
        else:
            _PER_TIER[tier].rewrite.observe(rewrite_s)
            headers = _adapted_headers(
                self.start["headers"], tier, decision, len(body), coding, self.upstream_s, verdict.model_s, rewrite_s
            )
            headers.append((b"edge-token", token.encode()))
            await self.downstream({**self.start, "headers": headers})
            await self.downstream({"type": "http.response.body", "body": body})
            served = body
        counted = _PER_TIER[tier]
        _REQUESTS[tier, decision.source].inc()
        counted.upstream_bytes.inc(len(original))
        counted.served_bytes.inc(len(served))
        elapsed = time.perf_counter() - self.started
        counted.duration.observe(elapsed)
        if decision.source == "holdback":
            metrics.HOLDBACK_DURATION.observe(elapsed)


def _translate_if_none_match(headers: list[tuple[bytes, bytes]], tier: str) -> list[tuple[bytes, bytes]]:
    """Keep only the validators of ``tier``'s variant, as the storefront knows them.

    >>> _translate_if_none_match([(b"if-none-match", b'W/"v1-lite", W/"v1", "v0-minimal"')], "lite")
    [(b'if-none-match', b'"v1"')]
    >>> _translate_if_none_match([(b"if-none-match", b'W/"v1-lite", W/"v1"')], "full")
    [(b'if-none-match', b'W/"v1"')]
    >>> _translate_if_none_match([(b"if-none-match", b'W/"v1"'), (b"accept", b"*/*")], "lite")
    [(b'accept', b'*/*')]
    """
    out: list[tuple[bytes, bytes]] = []
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


def _not_modified_headers(headers: list[tuple[bytes, bytes]], tier: str) -> list[tuple[bytes, bytes]]:
    """A 304 carries the cache headers the variant's 200 did (RFC 9110 §15.4.5): the weak,
    tier-suffixed ETag, edge's Vary and, on lite and minimal, a private ``Cache-Control`` (``private``
    alone when the storefront's 304 sent none: a cache must never take the variant as shared).

    >>> _not_modified_headers([(b"etag", b'"v1"'), (b"cache-control", b"public, max-age=60")], "lite")[:2]
    [(b'etag', b'W/"v1-lite"'), (b'cache-control', b'private, max-age=60')]
    >>> _not_modified_headers([(b"etag", b'"v1"')], "minimal")[1]
    (b'cache-control', b'private')
    >>> _not_modified_headers([(b"etag", b'"v1"'), (b"cache-control", b"public")], "full")[1]
    (b'cache-control', b'public')
    """
    out: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    cache_control: bytes | None = None
    for name, value in headers:
        if name == b"vary":
            vary.append(value)
        elif name == b"cache-control":
            cache_control = value if cache_control is None else cache_control + b", " + value
        else:
            out.append((name, _weaken_etag(value, tier) if name == b"etag" else value))
    if tier != "full":
        out.append((b"cache-control", _private(cache_control)))
    elif cache_control is not None:
        out.append((b"cache-control", cache_control))
    out.append((b"vary", _vary_for(tuple(vary))))
    out.append((b"edge-tier", _TIER_BYTES[tier]))
    return out


def _tier_ceiling(model: NetworkModel, x: dict) -> str | None:
    """The model's safety envelope for ``x`` (``"lite"``: never minimal), if the model has one."""
    ceiling = getattr(model, "tier_ceiling", None)
    return ceiling(x) if ceiling is not None else None


def _timed_out(exc: UpstreamStreamBroken) -> bool:
    """Whether the body broke off because the storefront stalled past the read timeout (else it closed)."""
    return exc.timed_out


async def _plain(send: Send, status: int, body: bytes) -> None:
    """A short plain-text answer edge originates (an upstream failure), dated and never cached."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"date", formatdate(usegmt=True).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _with_date(send: Send) -> Send:
    """edge originates its /__edge/ responses, so it dates them (uvicorn's Date is off for the proxy)."""

    async def dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], (b"date", formatdate(usegmt=True).encode())]}
        await send(message)

    return dated


def _peer(scope: Scope) -> str | None:
    """The client's address (uvicorn takes it from X-Forwarded-For only for EDGE_FORWARDED_ALLOW_IPS)."""
    client = scope.get("client")
    return client[0] if client else None


def _client_id(scope: Scope, headers: dict[str, str]) -> str:
    """A stable id for the holdback draw: the client's address and User-Agent (no cookie needed).

    Behind a load balancer, set EDGE_FORWARDED_ALLOW_IPS so the address is the shopper's.
    """
    client = scope.get("client")
    return f"{client[0] if client else ''} {headers.get('user-agent', '')}"


#: Paths ending so are assets, not pages: not worth deciding before their answer is known.
_ASSET_SUFFIXES = (
    ".css", ".js", ".mjs", ".map", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico",
    ".woff", ".woff2", ".ttf", ".otf", ".mp4", ".webm", ".mp3", ".pdf", ".zip", ".wasm",
)
_ASSET_DESTINATIONS = frozenset(
    {b"image", b"script", b"style", b"font", b"audio", b"video", b"track", b"manifest", b"worker", b"sharedworker", b"serviceworker"}
)


def _likely_page(scope: Scope) -> bool:
    """Whether a GET looks like it asks for a page (worth deciding while the storefront works).

    >>> _likely_page({"path": "/shop/tea", "headers": [(b"sec-fetch-dest", b"document")]})
    True
    >>> _likely_page({"path": "/static/hero.PNG", "headers": []}), _likely_page({"path": "/p", "headers": [(b"sec-fetch-dest", b"image")]})
    (False, False)
    """
    if scope["path"].lower().endswith(_ASSET_SUFFIXES):
        return False
    for name, value in scope["headers"]:
        if name == b"sec-fetch-dest":
            return value not in _ASSET_DESTINATIONS
    return True


def _lower_names(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with lower-case names: the same list when they already are (servers, the proxy).

    HTTP names are case-insensitive and ASGI apps may send them as written (Django: ``Content-Type``).
    One pass per message; every lookup after it compares bytes.

    >>> _lower_names([(b"Content-Type", b"text/html"), (b"ETag", b'"A"')])
    [(b'content-type', b'text/html'), (b'etag', b'"A"')]
    >>> headers = [(b"content-type", b"text/html")]
    >>> _lower_names(headers) is headers
    True
    """
    for name, _ in headers:
        if not name.islower():
            return [(n.lower(), v) for n, v in headers]
    return headers


def _lower_scope(scope: Scope) -> Scope:
    """``scope`` with lower-case header names (itself when they already are)."""
    headers = scope["headers"]
    lowered = _lower_names(headers)
    return scope if lowered is headers else {**scope, "headers": lowered}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


_ACCEPT_CH = ACCEPT_CH.encode()
_TIER_BYTES = {"full": b"full", "lite": b"lite", "minimal": b"minimal"}


@functools.lru_cache(maxsize=64)
def _vary_for(upstream_vary: tuple[bytes, ...]) -> bytes:
    """Edge's Vary merged with the upstream's (storefronts send a handful of distinct values)."""
    names = [v.strip() for value in upstream_vary for v in value.decode("latin-1").split(",") if v.strip()]
    return _merge_vary(names).encode("latin-1")


def _adapted_headers(
    upstream: list[tuple[bytes, bytes]],
    tier: str,
    decision: Decision,
    length: int,
    coding: str | None,
    upstream_s: float,
    model_s: float,
    rewrite_s: float,
) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    cache_control: bytes | None = None
    for name, value in upstream:
        if name in _RECOMPUTED:
            if name == b"vary":
                vary.append(value)
            elif name == b"cache-control":
                cache_control = value if cache_control is None else cache_control + b", " + value
            continue
        if name == b"etag":
            value = _weaken_etag(value, tier)
        headers.append((name, value))
    headers.append((b"content-length", str(length).encode()))
    if coding:
        headers.append((b"content-encoding", coding.encode()))
    headers.append((b"vary", _vary_for(tuple(vary))))
    if tier != "full":
        headers.append((b"cache-control", _private(cache_control)))
    elif cache_control is not None:
        headers.append((b"cache-control", cache_control))
    headers.append((b"edge-tier", _TIER_BYTES[tier]))
    headers.append((b"accept-ch", _ACCEPT_CH))
    timing = (
        f"upstream;dur={upstream_s * 1000:.2f}, model;dur={model_s * 1000:.3f}, "
        f'rewrite;dur={rewrite_s * 1000:.2f}, edge;desc="{tier}/{decision.source}/{decision.reason}"'
    )
    headers.append((b"server-timing", timing.encode()))
    return headers


_RECOMPUTED = frozenset({b"content-length", b"content-encoding", b"vary", b"cache-control"})


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


def _cookie(header: str | None, name: str) -> str | None:
    if not header or len(header) > _MAX_COOKIE_BYTES:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip().strip('"') or None
    return None
