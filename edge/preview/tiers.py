"""A page's tiers, made with edge's own rewriter, and a loopback server that serves each to Chromium.

:func:`fetch_page` reads the page once; :func:`make_variants` lays it out at every tier with
:class:`~edge.pipeline.rewrite.HtmlRewriter` (the full tier is the byte splice, as edge serves it)
and keeps each :class:`~edge.pipeline.rewrite.RewriteReport`. A :class:`TierServer` per tier then
stands where edge would: the page's own URL path answers with the tier's bytes, compressed as edge
would compress them, and every other request (images, scripts, styles) goes on to the origin
byte for byte, so the browser downloads what the tier's markup references and nothing else.

    >>> from edge.pipeline.policy import Policy
    >>> policy = Policy.from_toml('[[widgets]]\\nwidget = "ads"\\npriority = 1\\nlite = "drop"')
    >>> page = Page("http://shop.test/", 200, "text/html; charset=utf-8", b'<body><p>hi</p><div data-edge-widget="ads">x</div></body>', False)
    >>> variants = make_variants(page, policy)
    >>> [(v.tier, b"ads" in v.body, v.report.dropped if v.report else None) for v in variants]
    [('full', True, []), ('lite', False, ['ads']), ('minimal', False, ['ads'])]
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

from edge.core.tiers import TIERS
from edge.pipeline.policy import Policy
from edge.pipeline.rewrite import HtmlRewriter, RewriteReport, beacon_script, switch_link
from edge.transport.encoding import charset_of, encode, negotiate

__all__ = ["Page", "PageUnavailable", "TierServer", "Variant", "fetch_page", "make_variants"]

#: What the injected switch link says on each tier (edge's own wording).
SWITCH_TEXT = {"full": "Light page", "lite": "Full page", "minimal": "Full page"}
#: edge compresses an adapted page from this size on (``edge/adapt/responder.py``).
MIN_COMPRESS_BYTES = 1024
#: Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), and those recomputed here.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"})


class PageUnavailable(Exception):
    """The page could not be previewed at all: unreachable, not a 200, not HTML."""


@dataclass(frozen=True)
class Page:
    """The page as the origin served it (body decoded), and whether the origin compressed it."""

    url: str  # after redirects
    status: int
    content_type: str
    body: bytes
    compressed: bool

    @property
    def path(self) -> str:
        """The path and query the page is served at (what picks the policy's route)."""
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True)
class Variant:
    """One tier of the page: its bytes and what the rewrite did (``error`` set when it failed)."""

    tier: str
    body: bytes
    report: RewriteReport | None
    error: str | None = None


def fetch_page(url: str, timeout: float = 20.0) -> Page:
    """GET ``url`` (following redirects). Raises :class:`PageUnavailable` with the reason on any failure."""
    if not url.startswith(("http://", "https://")):
        raise PageUnavailable(f"{url}: not an http(s) URL")
    try:
        response = httpx.get(url, follow_redirects=True, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        raise PageUnavailable(f"cannot fetch {url}: {exc or type(exc).__name__}") from None
    content_type = response.headers.get("content-type", "")
    if response.status_code != 200:
        raise PageUnavailable(f"{url} answered HTTP {response.status_code}: only a 200 page can be previewed")
    if not content_type.lower().startswith("text/html"):
        raise PageUnavailable(f"{url} is not an HTML page (Content-Type: {content_type or 'none'}): edge rewrites HTML pages")
    compressed = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    return Page(str(response.url), response.status_code, content_type, response.content, compressed)


def make_variants(page: Page, policy: Policy) -> list[Variant]:
    """Every tier of ``page`` under ``policy``; a tier the rewriter refuses is a :class:`Variant` with its error."""
    rewriter = HtmlRewriter(policy)
    charset = charset_of(page.content_type.encode("latin-1", "replace"), page.body[:1024])
    route_path = urlsplit(page.url).path or "/"
    variants = []
    for tier in TIERS:
        snippet = switch_link("lite" if tier == "full" else "full", page.path, SWITCH_TEXT[tier]) + beacon_script("preview")
        try:
            body, report = rewriter.rewrite_with_report(page.body, tier, snippet, path=route_path, charset=charset)
        except Exception as exc:  # noqa: BLE001 - a tier that cannot be made is reported in its column
            variants.append(Variant(tier, b"", None, f"rewrite failed: {exc}"))
            continue
        variants.append(Variant(tier, body, report))
    return variants


class TierServer:
    """A loopback HTTP server that serves one tier of ``page`` at its path and forwards the rest to the origin.

    ``url`` is the page's address on this server. The tier's bytes are compressed as edge compresses
    them: an adapted (lite, minimal) page of 1 KB or more with the best coding the browser accepts;
    the full tier is spliced as it streams, so it stays as the origin sent it (uncompressed unless
    the origin compressed it).
    """

    def __init__(self, page: Page, variant: Variant) -> None:
        origin = urlsplit(page.url)
        self.origin = f"{origin.scheme}://{origin.netloc}"
        self.page_path = page.path
        self.content_type = page.content_type
        self.variant = variant
        self.keep_coding = variant.tier == "full" and not page.compressed
        self.client = httpx.Client(timeout=30.0, trust_env=False)
        self.httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=f"preview-{variant.tier}", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{self.page_path}"

    def page_response(self, accept_encoding: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        body = self.variant.body
        headers = [("Content-Type", self.content_type), ("Edge-Tier", self.variant.tier)]
        coding = None if self.keep_coding or len(body) < MIN_COMPRESS_BYTES else negotiate(accept_encoding)
        if coding:
            body = encode(body, coding)
            headers.append(("Content-Encoding", coding))
        return 200, headers, body

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The origin's answer to one request, its bytes untouched (still compressed if they were)."""
        request = self.client.build_request(method, self.origin + path, headers=[(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP], content=body)
        try:
            response = self.client.send(request, stream=True)
            try:
                raw = b"".join(response.iter_raw())
            finally:
                response.close()
        except httpx.HTTPError as exc:
            return 502, [("Content-Type", "text/plain")], f"origin unavailable: {exc}".encode()
        return response.status_code, [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP], raw

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser dropping a connection mid-answer is no news; the page's figures say what it got


def _handler_for(server: TierServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a browser talks to a storefront

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers: list[tuple[str, str]]
            if self.path.startswith("/__edge/"):  # edge's own beacon and switch endpoints: nothing to learn here
                status, headers, payload = 204, [], b""
            elif self.command == "GET" and self.path == server.page_path:
                status, headers, payload = server.page_response(self.headers.get("Accept-Encoding"))
            else:
                status, headers, payload = server.forward(self.command, self.path, list(self.headers.items()), body)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser moved on (its tab closed): nothing left to tell it

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # the preview's own progress line is the log

    return Handler
