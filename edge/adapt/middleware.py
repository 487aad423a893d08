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
as written): each message's names are lower-cased once, by :func:`~edge.adapt.headers.lower_names`.
A 200 edge cannot classify (no ``Content-Type``…) passes through and is counted in
``edge_unclassified_responses_total{reason}``.

Fail open: if any stage raises, the shopper gets the original response and
``edge_fail_open_total{stage}`` counts it; with ``fail_mode="closed"`` (tests)
the error is raised as :class:`~edge.core.errors.AdaptError` instead. Per-request
state lives on a per-request :class:`~edge.adapt.responder.Responder`, never on the middleware;
headers are composed in :mod:`edge.adapt.headers`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from email.utils import formatdate
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.adapt.endpoints import build_endpoints
from edge.adapt.headers import VARY_HEADERS, cookie, header, lower_scope, translate_if_none_match
from edge.adapt.refusals import TierRefusals
from edge.adapt.responder import Compiled, Responder, Verdict
from edge.adapt.tier_cookie import TIER_COOKIE, TierCookie
from edge.core import metrics
from edge.core.errors import AdaptError, UpstreamStreamBroken
from edge.core.settings import Settings
from edge.learning.feedback import MEASUREMENT_COOKIE, MEASUREMENT_MAX_AGE_S, Feedback, FeedbackRejected, ReplayGuard, TokenSigner
from edge.learning.model import NetworkModel, RuleModel, tier_ceiling_of
from edge.learning.trust import client_group
from edge.pipeline.client_rtt import SCOPE_EXTENSION, TrustedPeers, server_rtt
from edge.pipeline.features import to_features
from edge.pipeline.policy import Decision, Policy, holdback_draw
from edge.pipeline.policy.stability import TierStability
from edge.pipeline.rewrite import HtmlRewriter, JsonRewriter, RewriteCache
from edge.pipeline.signals import SIGNAL_HEADERS, Signals, measurement_signals, read_signals, server_rtt_signals
from edge.pipeline.towers import TowerTable

__all__ = ["AdaptiveMiddleware", "VARY_HEADERS", "EDGE_PATH_PREFIX", "likely_page"]

log = logging.getLogger("edge.adapt")

#: Edge's own endpoints on the public port; never adapted, never proxied.
EDGE_PATH_PREFIX = "/__edge/"
#: The request headers decide() reads, by their lower-case bytes (as the scope has them) → their name as text.
_SIGNAL_HEADER_NAMES = {name.encode(): name for name in (*SIGNAL_HEADERS, "cookie")}
_CACHE_HIT = metrics.counting(metrics.REWRITE_CACHE.labels("hit"))
_CACHE_MISS = metrics.counting(metrics.REWRITE_CACHE.labels("miss"))


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
        self.stability = TierStability(self.settings.tier_margin, self.settings.tier_dwell_s)
        self._stable = self.stability.enabled  # (frozen: read once, not per request)
        self.tier_cookie = TierCookie(feedback.signer, self.settings.tier_dwell_s)
        self.refusals = TierRefusals()  # switch-link clicks against pages served (edge.adapt.refusals)
        self.strict = self.settings.fail_mode == "closed"
        # The server-side round trip (edge.pipeline.client_rtt): from the socket, or from a trusted balancer's header.
        self.behind_proxy = self.settings.client_socket == "behind-proxy"
        self.rtt_header = self.settings.client_rtt_header.strip().lower().encode("latin-1")
        self.trusted_peers = TrustedPeers(self.settings.forwarded_allow_ips)
        if self.behind_proxy and not self.settings.forwarded_allow_ips:
            log.warning("EDGE_CLIENT_SOCKET=behind-proxy but EDGE_FORWARDED_ALLOW_IPS is empty: the RTT header is never believed")
        self.max_body = self.settings.max_rewrite_bytes
        self.set_policy(policy)
        self.endpoints = build_endpoints(self)

    def set_policy(self, policy: Policy) -> None:
        """Swap in a new compiled policy; requests already in flight keep the one they started with."""
        cache = (
            RewriteCache(self.settings.rewrite_cache_bytes, _CACHE_HIT, _CACHE_MISS)
            if self.settings.rewrite_cache_bytes > 0
            else None
        )
        self._compiled = Compiled(policy, HtmlRewriter(policy, cache), JsonRewriter(policy))
        self.feedback.labels = policy.labels

    @property
    def policy(self) -> Policy:
        return self._compiled[0]

    @property
    def compiled(self) -> Compiled:
        """The policy and its rewriters, read once per response (a policy swap never splits them)."""
        return self._compiled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(EDGE_PATH_PREFIX):
            await self.endpoints(lower_scope(scope), receive, _with_date(send))
            return
        if scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        # edge reads the request through a scope whose header names are lower-case (a server
        # sends them so, an outer middleware may not); the storefront gets the scope as it came.
        own = lower_scope(scope)
        responder = Responder(self, own, send)
        if header(own, b"if-none-match") is not None:
            # A conditional request must be checked against the validator of the tier it will get,
            # so decide first and translate our variant ETags back to the storefront's.
            responder.verdict = self.decide(own, time.time())
            scope = {**own, "headers": translate_if_none_match(own["headers"], responder.verdict.decision.tier)}
            responder.scope = scope
        elif not self.strict and likely_page(own):
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

    def decide(self, scope: Scope, now: float) -> Verdict:
        """Stages 1–4 for one request (signals, features, predict, decide); ``scope``'s header names are lower-case.

        Once per page, so written flat: the steps a request without cookies or a report does not need
        (reading a cookie, the last measurement) are not called for it (each is a no-op there)."""
        policy = self._compiled[0]
        headers: dict[str, str] = {}
        rtt_header: bytes | None = None
        for name, value in scope["headers"]:
            key = _SIGNAL_HEADER_NAMES.get(name)
            if key is not None and key not in headers:
                headers[key] = value.decode("latin-1")
            elif name == self.rtt_header and rtt_header is None:
                rtt_header = value
        stage = "signals"
        try:
            signals = read_signals(headers)
            extensions = scope.get("extensions")
            extension = extensions.get(SCOPE_EXTENSION) if extensions else None
            if self.behind_proxy or not isinstance(extension, dict):
                self._server_rtt(signals, extension, rtt_header)
            else:
                server_rtt_signals(signals, extension)  # (server_rtt's figures: the extension's floats)
            cookies = headers.get("cookie")
            client = scope.get("client")
            peer = client[0] if client else None  # who sends its report, whose own cell reports it may see (edge.learning.trust)
            if signals.last_token is not None or (cookies and signals.last_ms is None):
                self._last_measurement(signals, cookies, now, peer)
            cell = self.towers.lookup(signals.cell_id, now, client_group(peer)) if signals.cell_id else None
            x = to_features(signals, cell)
            stage = "predict"
            model = self.model
            started = time.perf_counter()
            p = model.predict(x)
            model_s = time.perf_counter() - started
            stage = "decide"
            stability: TierStability | None = self.stability
            if not self._stable:
                stability = None
            if cookies:
                preference = cookie(cookies, policy.preference_cookie)
                last = self.tier_cookie.read(cookie(cookies, TIER_COOKIE), now) if stability is not None else None
            else:
                preference = last = None
            draw = holdback_draw(_client_id(scope, headers)) if policy.holdback else None
            decision = policy.decide(
                p,
                source=model.source,
                save_data=signals.save_data,
                preference=preference,
                holdback_draw=draw,
                path=scope["path"],
                ceiling=tier_ceiling_of(model, x),
                last=last,
                stability=stability,
                now=now,
            )
            state = decision.remember
            chosen = self.tier_cookie.set_cookie(self.tier_cookie.issue(state)) if state is not None else None
            return Verdict(decision, model_s, x, signals.cell_id, chosen)
        except Exception as exc:
            self.fail_open(stage, exc)
            return Verdict(Decision("full", "error", "none"), 0.0, {}, None)

    def _server_rtt(self, signals: Signals, extension: Any, rtt_header: bytes | None) -> None:
        """The ``tcp_*`` signals from the server's scope extension (direct) or a trusted balancer's header."""
        figures, missing = server_rtt(extension, self.behind_proxy, rtt_header, self.trusted_peers)
        if missing is not None:
            metrics.CLIENT_RTT_MISSING.labels(missing).inc()
        server_rtt_signals(signals, figures)

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
        raw = cookie(cookies, MEASUREMENT_COOKIE)
        payload = self.feedback.read_measurement_cookie(raw, now, MEASUREMENT_MAX_AGE_S) if raw else None
        if payload is not None:
            measurement_signals(signals, payload, now)

    def fail_open(self, stage: str, exc: BaseException) -> None:
        metrics.FAIL_OPEN.labels(stage).inc()
        if self.strict:
            raise AdaptError(stage, exc) from exc
        log.warning("adaptation failed at %s, serving the original: %r", stage, exc)


def _signer(settings: Settings) -> TokenSigner:
    keys = [k for k in (settings.feedback_key, settings.feedback_key_previous) if k]
    if not keys:
        log.warning("EDGE_FEEDBACK_KEY is not set: using a random key; feedback tokens die with this process")
        return TokenSigner([secrets.token_bytes(32)], settings.feedback_ttl_s)
    return TokenSigner([_key_bytes(k) for k in keys], settings.feedback_ttl_s)


def _key_bytes(key: str) -> bytes:
    """A configured key's bytes: the text as given (UTF-8), so the same string means the same key everywhere."""
    return key.encode()


def _with_date(send: Send) -> Send:
    """edge originates its /__edge/ responses, so it dates them (uvicorn's Date is off for the proxy)."""

    async def dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], (b"date", formatdate(usegmt=True).encode())]}
        await send(message)

    return dated


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


def likely_page(scope: Scope) -> bool:
    """Whether a GET looks like it asks for a page (worth deciding while the storefront works).

    >>> likely_page({"path": "/shop/tea", "headers": [(b"sec-fetch-dest", b"document")]})
    True
    >>> likely_page({"path": "/static/hero.PNG", "headers": []}), likely_page({"path": "/p", "headers": [(b"sec-fetch-dest", b"image")]})
    (False, False)
    """
    if scope["path"].lower().endswith(_ASSET_SUFFIXES):
        return False
    for name, value in scope["headers"]:
        if name == b"sec-fetch-dest":
            return value not in _ASSET_DESTINATIONS
    return True
