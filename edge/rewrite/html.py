"""HTML rewriting with lol_html, Cloudflare's streaming HTML rewriter.

Why lol_html (through ``python-lolhtml``) rather than a DOM parser such as
selectolax/Lexbor: it rewrites as it tokenizes and copies every byte it does
not touch verbatim, so doctypes, comments, conditional comments, entities,
inline scripts (``</`` inside strings) and even legacy charsets (Latin-1,
Shift_JIS: every byte of markup edge matches on is ASCII) survive exactly, and
it is faster: see ``loadtests/bench_rewrite.py`` and the README for the
figures measured on the demo home page.

    >>> from edge.policy import Policy
    >>> policy = Policy.from_toml('[[widgets]]\\nwidget = "ads"\\npriority = 1\\nlite = "drop"')
    >>> rewriter = HtmlRewriter(policy)
    >>> page = b'<body><div data-edge-widget="ads">buy!</div><p>caf\\xe9</p></body>'
    >>> rewriter.rewrite(page, "lite", b"<a>Full page</a>")
    b'<body><p>caf\\xe9</p><a>Full page</a></body>'
    >>> rewriter.rewrite(page, "full", b"<a>Light page</a>")
    b'<body><div data-edge-widget="ads">buy!</div><p>caf\\xe9</p><a>Light page</a></body>'
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

from lolhtml import ContentType, HTMLRewriter

from edge.policy import Policy

__all__ = ["HtmlRewriter", "splice_before_body_end", "switch_link", "beacon_script"]

_BEACON_JS = (Path(__file__).with_name("beacon.js")).read_text().strip()


def beacon_script(token: str) -> bytes:
    """The inline beacon (``beacon.js``, under 1 KB, no dependencies) carrying this page's token.

    After ``load`` it posts Navigation and Resource Timing figures (and
    ``navigator.connection`` where present) to ``/__edge/beacon`` with
    ``navigator.sendBeacon``. Tokens are base64url and ``.``, safe in a JS string.

    >>> script = beacon_script("abc.def")
    >>> script.startswith(b"<script>") and b'"abc.def"' in script and len(script) < 1024
    True
    """
    return b"<script>" + _BEACON_JS.replace("__EDGE_TOKEN__", token).encode() + b"</script>"

_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)


def splice_before_body_end(body: bytes, snippet: bytes) -> bytes:
    """Insert ``snippet`` before the last ``</body>`` (or at the end when there is none).

    The last one, because an inline script may contain the string ``"</body>"``
    earlier in the page.

    >>> splice_before_body_end(b"<body>x</BODY >", b"<i>")
    b'<body>x<i></BODY >'
    >>> splice_before_body_end(b"<p>fragment", b"<i>")
    b'<p>fragment<i>'
    """
    last = None
    for last in _BODY_END.finditer(body, max(0, len(body) - 64 * 1024)):
        pass
    if last is None and len(body) > 64 * 1024:
        # Rare: </body> far from the end (huge trailing scripts). Search the rest once.
        for last in _BODY_END.finditer(body):
            pass
    if last is None:
        return body + snippet
    return body[: last.start()] + snippet + body[last.start() :]


def switch_link(to_tier: str, next_path: str, text: str) -> bytes:
    """The small link that switches the shopper's tier (sets the preference cookie, then returns).

    >>> switch_link("full", "/search?q=tea", "Full page")
    b'<p class="edge-switch" style="text-align:center;font:14px sans-serif;margin:12px"><a href="/__edge/tier/full?next=/search%3Fq%3Dtea" rel="nofollow">Full page</a></p>'
    """
    href = f"/__edge/tier/{to_tier}?next={quote(next_path, safe='/')}"
    return (
        '<p class="edge-switch" style="text-align:center;font:14px sans-serif;margin:12px">'
        f'<a href="{html.escape(href)}" rel="nofollow">{html.escape(text)}</a></p>'
    ).encode()


class _Remove:
    __slots__ = ()

    def element(self, el) -> None:  # noqa: ANN001 - lolhtml.Element
        el.remove()


class _AppendToBody:
    __slots__ = ("snippet", "done")

    def __init__(self, snippet: str) -> None:
        self.snippet = snippet
        self.done = False

    def element(self, el) -> None:  # noqa: ANN001
        if not self.done:  # a second <body> start tag is merged by browsers; link once
            el.append(self.snippet, ContentType.HTML)
            self.done = True


_REMOVE = _Remove()


class HtmlRewriter:
    """Rewrite HTML pages per tier for one compiled :class:`~edge.policy.Policy`."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        # Selectors per tier, looked up per request; lol_html compiles them when registered.
        self._drops = {tier: policy.drop_selectors(tier) for tier in ("lite", "minimal")}

    def rewrite(self, body: bytes, tier: str, link: bytes) -> bytes:
        """Return ``body`` laid out for ``tier`` with ``link`` appended to the page's body."""
        drops = self._drops.get(tier, ())
        if not drops:
            return splice_before_body_end(body, link)
        out = bytearray()
        rewriter = HTMLRewriter(out.extend)
        for css in drops:
            rewriter.on(css, _REMOVE)
        appender = _AppendToBody(link.decode())
        rewriter.on("body", appender)
        rewriter.write(body)
        rewriter.end()
        if not appender.done:
            out += link
        return bytes(out)
