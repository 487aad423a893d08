"""The per-response state of :class:`~edge.adapt.middleware.AdaptiveMiddleware` (as Starlette's ``GZipResponder``).

One :class:`Responder` per request wraps the downstream ``send``. At the response start it
decides what happens to the body (:data:`ResponseState`):

- ``pending``: nothing from the storefront yet;
- ``pass``: not adaptable (an image, a 404, a ``no-transform`` page…), or too big: streamed untouched;
- ``splice``: the full tier's hot path: an uncompressed page of declared length streams through,
  the switch link and beacon spliced in before ``</body>`` (:class:`~edge.pipeline.rewrite.StreamSplicer`);
- ``buffer``: the start message held until the whole body is in, then rewritten for the tier;
- ``done``: the answer is out.

Every decided response carries its own token (``Edge-Token``), and its tier's counters
(requests, bytes in and out, duration) move once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from starlette.types import Message, Scope, Send

from edge.adapt.headers import adapted_headers, header, lower_names, not_modified_headers
from edge.core import metrics
from edge.core.errors import UpstreamStreamBroken
from edge.pipeline.client_rtt import SCOPE_EXTENSION
from edge.pipeline.features import Features
from edge.pipeline.policy import Decision, Policy
from edge.pipeline.rewrite import HtmlRewriter, JsonRewriter, StreamSplicer, beacon_script, switch_link
from edge.transport.encoding import CODINGS, DecodeFailed, charset_of, decode, encode, negotiate

if TYPE_CHECKING:
    from edge.adapt.middleware import AdaptiveMiddleware

__all__ = ["Compiled", "Responder", "ResponseState", "Verdict"]

log = logging.getLogger("edge.adapt")

#: What happens to a response's body: pending → pass | buffer | splice → done.
ResponseState = Literal["pending", "pass", "buffer", "splice", "done"]
#: A body edge adapts: an HTML page, or an app's JSON.
Kind = Literal["html", "json"]

_DECODABLE = frozenset({"", "identity", "x-gzip", *CODINGS})
#: Below this, compressing the adapted page costs more than it saves.
_MIN_COMPRESS_BYTES = 1024
_SWITCH_TEXT = {"full": "Light page", "lite": "Full page", "minimal": "Full page"}
_NONE: dict[str, Any] = {}  # (a scope without extensions)


class Compiled(NamedTuple):
    """A policy and the rewriters compiled from it, swapped as one."""

    policy: Policy
    html: HtmlRewriter
    json: JsonRewriter


@dataclass(slots=True)
class Verdict:
    """What stages 1–4 concluded for one request."""

    decision: Decision
    model_s: float
    features: Features
    cell_id: str | None
    #: The tier cookie's ``Set-Cookie`` value when this decision chose the client's tier anew (edge.adapt.tier_cookie).
    set_cookie: bytes | None = None


@dataclass(frozen=True, slots=True)
class _TierMetrics:
    """Metric children of one tier, resolved once: the per-request path only increments (edge.core.metrics.adding, observing)."""

    upstream_bytes: Callable[[float], None]
    served_bytes: Callable[[float], None]
    duration: Callable[[float], None]
    rewrite: Callable[[float], None]


_PER_TIER: dict[str, _TierMetrics] = {
    tier: _TierMetrics(
        metrics.adding(metrics.UPSTREAM_BYTES.labels(tier)),
        metrics.adding(metrics.SERVED_BYTES.labels(tier)),
        metrics.observing(metrics.REQUEST_DURATION.labels(tier)),
        metrics.observing(metrics.REWRITE_DURATION.labels(tier)),
    )
    for tier in metrics.TIERS
}
_UNCLASSIFIED = {reason: metrics.UNCLASSIFIED.labels(reason) for reason in metrics.UNCLASSIFIED_REASONS}
_REQUESTS: dict[tuple[str, str], Callable[[], None]] = {
    (tier, source): metrics.counting(metrics.REQUESTS.labels(tier, source)) for tier in metrics.TIERS for source in metrics.SOURCES
}
#: edge_upstream_duration_seconds.observe
observe_upstream = metrics.observing(metrics.UPSTREAM_DURATION)


class Responder:
    """Per-request state: holds an HTML response's start message until the body is rewritten."""

    __slots__ = (
        "mw", "scope", "downstream", "started", "mode", "start", "chunks", "size", "verdict", "upstream_s",
        "content_type", "coding", "kind", "splicer",
    )  # fmt: skip

    def __init__(self, mw: AdaptiveMiddleware, scope: Scope, send: Send) -> None:
        self.mw = mw
        self.scope = scope
        self.downstream = send
        self.started = time.perf_counter()
        self.mode: ResponseState = "pending"
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.verdict: Verdict | None = None
        self.upstream_s = 0.0
        self.content_type = b""
        self.coding = ""
        self.kind: Kind = "html"
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
        timed_out = exc.timed_out  # the storefront stalled past the read timeout (else it closed)
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
            await self._start(message)
        elif message["type"] == "http.response.body" and self.mode == "buffer":
            await self._buffer(message)
        elif message["type"] == "http.response.body" and self.mode == "splice":
            await self._splice(message)
        else:
            await self.downstream(message)

    async def _start(self, message: Message) -> None:
        """The response starts: pass it, splice it, or hold it for the rewrite."""
        self.upstream_s = time.perf_counter() - self.started
        observe_upstream(self.upstream_s)
        # Header names lower-cased once (Django and others send them as written: "Content-Type");
        # everything below reads `message`, and what passes through unchanged is `original`.
        original = message
        headers = lower_names(message["headers"])
        if headers is not message["headers"]:
            message = {**message, "headers": headers}
        if message["status"] == 304 and self.verdict is not None:
            self.mode = "pass"
            await self.downstream({**message, "headers": not_modified_headers(headers, self.verdict.decision.tier)})
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

    # ------------------------------------------------------------ what every decided response gets

    def _issue(self, verdict: Verdict, tier: str) -> str:
        """This response's token: the features it was decided on, its tier, and its server time: how long the
        storefront took plus how long the request waited unread in edge's queue (the scope extension's
        ``queued_ms``, edge.pipeline.client_rtt), which the beacon must not count as the shopper's round trip."""
        d = verdict.decision
        server_ms = self.upstream_s * 1000
        extension = self.scope.get("extensions", _NONE).get(SCOPE_EXTENSION)
        if extension:
            queued = extension.get("queued_ms")
            if type(queued) is float:
                server_ms += queued
            head_at = extension.get("head_at")  # (and from the head read to this request's start: a task's turn, a pipeline's wait)
            if type(head_at) is float and head_at < self.started:
                server_ms += (self.started - head_at) * 1000
        return self.mw.feedback.issue(verdict.features, tier, d.source, d.p, server_ms, verdict.cell_id, time.time())

    def _snippet(self, tier: str, token: str) -> bytes:
        """The switch link to the other layout (back to this very URL) and the beacon carrying ``token``."""
        query = self.scope.get("query_string", b"")
        back = self.scope["path"] + ("?" + query.decode("latin-1") if query else "")
        link = _switch_link(tier, back) if len(back) <= _LINK_MEMO_PATH_CHARS else _make_switch_link(tier, back)
        return link + beacon_script(token)

    def _count(self, tier: str, source: str, upstream_bytes: int, served_bytes: int) -> None:
        """The tier's counters for one answered page: requests, bytes in and out, duration."""
        counted = _PER_TIER[tier]
        _REQUESTS[tier, source]()
        if self.verdict is not None:
            self.mw.refusals.served(self.mw._compiled[0].name, self.verdict.decision.route, tier)  # (the policy, no property call)
        counted.upstream_bytes(upstream_bytes)
        counted.served_bytes(served_bytes)
        elapsed = time.perf_counter() - self.started
        counted.duration(elapsed)
        if source == "holdback":
            metrics.HOLDBACK_DURATION.observe(elapsed)

    # ------------------------------------------------------------ full tier: streamed splice

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
        try:
            token = self._issue(verdict, "full")
            snippet = self._snippet("full", token)
            headers = adapted_headers(
                start["headers"], "full", verdict.decision, length + len(snippet), None, self.upstream_s, verdict.model_s, 0.0,
                verdict.set_cookie,
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
        splicer = self.splicer
        assert splicer is not None and self.verdict is not None
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if message.get("more_body", False):
            out = splicer.feed(chunk) if chunk else b""
            if out:
                await self.downstream({"type": "http.response.body", "body": out, "more_body": True})
            return
        self.mode = "done"
        await self.downstream({"type": "http.response.body", "body": splicer.finish(chunk), "more_body": False})
        self._count("full", self.verdict.decision.source, self.size, self.size + len(splicer.snippet))

    # ------------------------------------------------------------ classification

    def _json_rules_apply(self) -> bool:
        assert self.verdict is not None
        try:
            return self.mw.compiled.json.applies(self.verdict.decision.tier, self.scope["path"])
        except Exception as exc:
            self.mw.fail_open("rewrite", exc)
            return False

    def _token_header(self) -> list[tuple[bytes, bytes]]:
        try:
            assert self.verdict is not None
            token = self._issue(self.verdict, "full")
        except Exception as exc:
            self.mw.fail_open("respond", exc)
            return []
        return [(b"edge-token", token.encode())]

    def _adaptable(self, start: Message) -> Kind | None:
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
        kind: Kind
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

    # ------------------------------------------------------------ buffered: rewrite the whole body

    async def _buffer(self, message: Message) -> None:
        start = self.start
        assert start is not None
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self.size > self.mw.max_body:
            # Too big to rewrite (no Content-Length told us earlier): stream it through unmodified.
            self.mode = "pass"
            await self.downstream(start)
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
        start = self.start
        assert start is not None
        tier, headers, served = self.laid_out(original)
        await self.downstream(start if headers is None else {**start, "headers": headers})
        await self.downstream({"type": "http.response.body", "body": served})
        assert self.verdict is not None
        self._count(tier, self.verdict.decision.source, len(original), len(served))

    def laid_out(self, original: bytes) -> tuple[str, list[tuple[bytes, bytes]] | None, bytes]:
        """The answer to the page held whole: (tier served, its headers, its body); headers None when it is
        the original as it came (adapting it failed: the held start message's headers go out)."""
        verdict, start = self.verdict, self.start
        assert verdict is not None and start is not None
        decision = verdict.decision
        rewrite_started = time.perf_counter()
        tier, body, token, coding = self._adapt(original, verdict)
        rewrite_s = time.perf_counter() - rewrite_started
        if body is None:
            return tier, None, original
        _PER_TIER[tier].rewrite(rewrite_s)
        # The tier cookie says what was served: only when the verdict's tier was (not a fallback to full).
        chosen = verdict.set_cookie if tier == decision.tier else None
        headers = adapted_headers(start["headers"], tier, decision, len(body), coding, self.upstream_s, verdict.model_s, rewrite_s, chosen)
        headers.append((b"edge-token", token.encode()))
        return tier, headers, body

    def _adapt(self, original: bytes, verdict: Verdict) -> tuple[str, bytes | None, str, str | None]:
        """The body for the verdict's tier: (tier, body, token, content coding); body None: serve the original, as full."""
        tier = verdict.decision.tier
        try:
            page = decode(original, self.coding, self.mw.max_body)
        except DecodeFailed as exc:
            self.mw.fail_open("decode", exc)
            page = None
        if page is None:
            # Over the cap once decoded (a compression bomb, or just huge) or undecodable: pass it through.
            return "full", None, "", None
        try:
            _, html_rewriter, json_rewriter = self.mw.compiled
            route = self.scope["path"]
            token = self._issue(verdict, tier)
            if self.kind == "json":
                body = json_rewriter.rewrite(page, tier, route)
            else:
                charset = charset_of(self.content_type, page[:1024])
                body = html_rewriter.rewrite(page, tier, self._snippet(tier, token), path=route, charset=charset)
            coding = negotiate(header(self.scope, b"accept-encoding")) if len(body) >= _MIN_COMPRESS_BYTES else None
            return tier, (encode(body, coding) if coding else body), token, coding
        except Exception as exc:
            self.mw.fail_open("rewrite", exc)
            return "full", None, "", None


def _make_switch_link(tier: str, back: str) -> bytes:
    """The link from a ``tier`` page at ``back`` to the other layout."""
    leaving = "minimal" if tier == "minimal" else None  # full and lite are implied by the link's target
    return switch_link("lite" if tier == "full" else "full", back, _SWITCH_TEXT[tier], leaving)


#: Switch links are kept for this many (tier, URL) pairs of URLs up to this long (~1 MB at most).
_LINK_MEMO_PATH_CHARS = 256
_switch_link = functools.lru_cache(maxsize=1024)(_make_switch_link)


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
