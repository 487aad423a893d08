"""The adversarial suite's tools: a scripted recording upstream and raw-socket clients.

:class:`Recorder` is an asyncio raw-socket HTTP/1.1 server running in a background thread of the
test process. For every connection edge opens to it, it keeps every byte received, parses the
bytes with httptools into a list of COMPLETE requests (method, target, headers, trailers, body),
the incomplete one in progress when the connection ended, and any parse error. It answers by the
first path segment of the target (see :data:`BEHAVIOURS` in :meth:`Recorder._route`):

======================  ===============================================================================
``/echo/...``           (default) after the whole request: ``200 text/plain`` ``"METHOD TARGET BODYLEN"``
``/early/...?s=404``    as soon as the head is in (before any body): status ``s``, keep-alive; with
                        ``close=1``: ``Connection: close``, then a lingering close (FIN, read and
                        discard for 2 s, close) as nginx and uvicorn do
``/slow/...?ms=500``    the echo, ``ms`` milliseconds after the request is complete
``/html/...?mode=M``    a ``text/html`` page (``ETag: "v1"``): ``full`` (default); ``cut`` (headers with
                        Content-Length, half the body, close); ``stall`` (half the body, then nothing);
                        ``bomb`` (``Content-Encoding: gzip`` decoding to 256 MiB of zeros)
``/cond/...``           ``If-None-Match`` present: ``304`` with ``ETag: "v1"`` and
                        ``Cache-Control: public, max-age=60``; otherwise that page with ``200``
``/raw/...?r=NAME``     the scripted raw response :data:`RAW_RESPONSES` ``[NAME]`` (then close or not)
======================  ===============================================================================

The clients (:func:`exchange`, :class:`Conn`, :func:`async_exchange`) send exact bytes and parse
what comes back with :func:`parse_responses`, which also says whether each response was complete
(so a body cut short is told apart from a clean one) and whether the connection was reset.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import socket
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httptools

HOST = "127.0.0.1"

# --------------------------------------------------------------------------------------------
# What the upstream answers
# --------------------------------------------------------------------------------------------

PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>adversarial</title></head><body>\n"
    b'<section data-edge-widget="header"><h1>Shop</h1></section>\n'
    + b"".join(b'<section data-edge-widget="reviews"><p>review %d: fine tea, fast shipping</p></section>\n' % i for i in range(60))
    + b'<section data-edge-widget="ads"><a href="/ad">ad</a></section>\n'
    b"</body></html>\n"
)
TEGZIP_TEXT = b"transfer-coded gzip body, read until close\n" * 200
BIG_HEADER_BYTES = 1 << 20


def _bomb() -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    out = [compressor.compress(chunk) for _ in range(256)]
    out.append(compressor.flush())
    return b"".join(out)


_BOMB: bytes | None = None


def bomb() -> bytes:
    """A gzip stream of 256 MiB of zeros (~250 KB), made once."""
    global _BOMB
    if _BOMB is None:
        _BOMB = _bomb()
    return _BOMB


#: name → (raw response bytes, close the connection after writing them)
RAW_RESPONSES: dict[str, tuple[bytes, bool]] = {
    # RFC 9110 §8.6 allows a 304 to carry the Content-Length the 200 would have; it has no body.
    "304cl": (b'HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "x1"\r\n\r\n', False),
    "status99": (b"HTTP/1.1 099 Low\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", False),
    "status600": (b"HTTP/1.1 600 High\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", False),
    "status999": (b"HTTP/1.1 999 Higher\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", False),
    "101": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello", True),
    "garbage": (b"THIS IS NOT HTTP\x00\xff\r\n\r\nat all\r\n", True),
    "cutcl": (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000\r\n\r\n" + b"x" * 1000, True),
    "tegzip": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip\r\n\r\n" + gzip.compress(TEGZIP_TEXT, mtime=0),
        True,
    ),
    "bighead": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * BIG_HEADER_BYTES + b"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
        True,
    ),
}


# --------------------------------------------------------------------------------------------
# The recording upstream
# --------------------------------------------------------------------------------------------


@dataclass
class Req:
    """One request as the upstream parsed it."""

    method: str = ""
    target: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def key(self) -> tuple[str, str, bytes]:
        return (self.method, self.target, self.body)

    def __repr__(self) -> str:
        body = self.body if len(self.body) < 120 else self.body[:120] + b"...(%d bytes)" % len(self.body)
        state = "complete" if self.complete else "INCOMPLETE"
        return f"<{state} {self.method} {self.target} body={body!r} headers={len(self.headers)}>"


@dataclass
class UpConn:
    """One connection edge opened to the upstream."""

    id: int
    raw: bytearray = field(default_factory=bytearray)
    requests: list[Req] = field(default_factory=list)  # complete ones, in order
    current: Req | None = None  # begun, not complete
    error: str | None = None
    closed: bool = False

    @property
    def incomplete(self) -> Req | None:
        return self.current


class _UpstreamProtocol(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.headers_done = False
        self.url = b""
        self.hname = b""
        self.hvalue_pending: list[tuple[bytes, bytes]] = []
        self.write_lock = asyncio.Lock()
        self.discarding = False
        self.tasks: set[asyncio.Task] = set()

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        with self.rec.lock:
            self.conn = UpConn(id=len(self.rec.conns) + self.rec.conn_id_base)
            self.rec.conns.append(self.conn)
            self.rec.open_protocols.add(self)

    def data_received(self, data: bytes) -> None:
        with self.rec.lock:
            self.conn.raw += data
        if self.discarding or self.conn.error is not None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            with self.rec.lock:
                self.conn.error = f"{exc.__class__.__name__}: {exc}"
            self._respond_raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", close=True)

    def connection_lost(self, exc: Exception | None) -> None:
        with self.rec.lock:
            self.conn.closed = True
            self.rec.open_protocols.discard(self)
            self.rec._inflight_done(self.conn.current)
        for task in self.tasks:
            task.cancel()

    # httptools
    def on_message_begin(self) -> None:
        self.headers_done = False
        self.url = b""
        with self.rec.lock:
            self.conn.current = Req()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        pair = (name.decode("latin-1"), value.decode("latin-1"))
        with self.rec.lock:
            req = self.conn.current
            if req is not None:
                (req.trailers if self.headers_done else req.headers).append(pair)

    def on_headers_complete(self) -> None:
        self.headers_done = True
        with self.rec.lock:
            req = self.conn.current
            req.method = self.parser.get_method().decode("latin-1")
            req.target = self.url.decode("latin-1")
            self.rec._inflight_start(req)
        self._dispatch(req, "head")

    def on_body(self, body: bytes) -> None:
        with self.rec.lock:
            req = self.conn.current
            req.body += body

    def on_message_complete(self) -> None:
        with self.rec.lock:
            req = self.conn.current
            req.complete = True
            self.conn.requests.append(req)
            self.conn.current = None
            self.rec._inflight_done(req)
        self._dispatch(req, "complete")

    # answering
    def _dispatch(self, req: Req, stage: str) -> None:
        handler = self.rec._route(req, stage)
        if handler is not None:
            task = asyncio.get_running_loop().create_task(self._run(handler, req))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, handler, req: Req) -> None:  # noqa: ANN001
        async with self.write_lock:
            try:
                await handler(self, req)
            except (ConnectionError, asyncio.CancelledError):
                pass

    def _respond_raw(self, data: bytes, close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if close:
            self.transport.close()

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("closed")
        self.transport.write(data)
        # Crude flow control: let the loop flush big writes.
        while self.transport.get_write_buffer_size() > 1 << 20:
            if self.transport.is_closing():
                raise ConnectionError("closed")
            await asyncio.sleep(0.01)

    async def lingering_close(self, seconds: float = 2.0) -> None:
        """FIN our side, read and discard what still comes for a while, then close (no RST on unread data)."""
        self.discarding = True
        if self.transport is None:
            return
        try:
            self.transport.write_eof()
        except OSError:
            pass
        await asyncio.sleep(seconds)
        self.transport.close()


def _simple(status: int, body: bytes, ctype: bytes = b"text/plain", extra: bytes = b"", close: bool = False) -> bytes:
    reason = {200: b"OK", 304: b"Not Modified", 401: b"Unauthorized", 404: b"Not Found", 405: b"Method Not Allowed", 413: b"Payload Too Large"}
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n"
        % (status, reason.get(status, b"X"), ctype, len(body), extra, b"Connection: close\r\n" if close else b"")
        + body
    )


async def _echo(p: _UpstreamProtocol, req: Req) -> None:
    await p.write(_simple(200, f"{req.method} {req.target} {len(req.body)}".encode("latin-1")))


def _query(req: Req) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(req.target).query).items()}


async def _early(p: _UpstreamProtocol, req: Req) -> None:
    q = _query(req)
    close = q.get("close") == "1"
    await p.write(_simple(int(q.get("s", "404")), b"early answer\n", close=close))
    if close:
        await p.lingering_close()


async def _slow(p: _UpstreamProtocol, req: Req) -> None:
    await asyncio.sleep(int(_query(req).get("ms", "500")) / 1000)
    await _echo(p, req)


async def _html(p: _UpstreamProtocol, req: Req) -> None:
    mode = _query(req).get("mode", "full")
    head = b'HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nETag: "v1"\r\n'
    if mode == "bomb":
        body = bomb()
        await p.write(head + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 65536):
            await p.write(body[i : i + 65536])
        return
    await p.write(head + b"Content-Length: %d\r\n\r\n" % len(PAGE))
    if mode == "full":
        await p.write(PAGE)
        return
    await p.write(PAGE[: len(PAGE) // 2])
    if mode == "cut":
        await asyncio.sleep(0.05)
        p.transport.close()
    elif mode == "stall":
        await asyncio.sleep(3600)  # until edge gives up and closes (the task is cancelled then)


async def _cond(p: _UpstreamProtocol, req: Req) -> None:
    if req.header("if-none-match"):
        await p.write(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nCache-Control: public, max-age=60\r\n\r\n')
    else:
        await p.write(_simple(200, PAGE, b"text/html; charset=utf-8", b'ETag: "v1"\r\nCache-Control: public, max-age=60\r\n'))


async def _raw(p: _UpstreamProtocol, req: Req) -> None:
    data, close = RAW_RESPONSES[_query(req).get("r", "garbage")]
    for i in range(0, len(data), 65536):
        await p.write(data[i : i + 65536])
    if close:
        await asyncio.sleep(0.2)
        p.transport.close()


BEHAVIOURS = {
    # first path segment → (stage it answers at, coroutine)
    "early": ("head", _early),
    "slow": ("complete", _slow),
    "html": ("complete", _html),
    "cond": ("complete", _cond),
    "raw": ("complete", _raw),
    "echo": ("complete", _echo),
}


class Recorder:
    """The scripted recording upstream (see the module docstring). ``url`` is what edge is pointed at."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.conns: list[UpConn] = []
        self.conn_id_base = 0
        self.open_protocols: set[_UpstreamProtocol] = set()
        self.inflight: Counter[str] = Counter()
        self.max_inflight: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="recorder", daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("recorder did not start")
        self.url = f"http://{HOST}:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.server = await self.loop.create_server(lambda: _UpstreamProtocol(self), HOST, 0, backlog=2048)
            self.port = self.server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(start())
        self._ready.set()
        self.loop.run_forever()

    def _route(self, req: Req, stage: str):  # noqa: ANN202
        segment = urlsplit(req.target).path.lstrip("/").split("/", 1)[0]
        when, handler = BEHAVIOURS.get(segment, BEHAVIOURS["echo"])
        return handler if when == stage else None

    @staticmethod
    def _prefix(req: Req | None) -> str:
        if req is None:
            return ""
        return urlsplit(req.target).path.lstrip("/").split("/", 1)[0]

    def _inflight_start(self, req: Req) -> None:
        prefix = self._prefix(req)
        self.inflight[prefix] += 1
        self.max_inflight[prefix] = max(self.max_inflight[prefix], self.inflight[prefix])

    def _inflight_done(self, req: Req | None) -> None:
        if req is not None and req.method:
            prefix = self._prefix(req)
            if self.inflight[prefix] > 0:
                self.inflight[prefix] -= 1

    # --- used by the tests -------------------------------------------------------------------

    def reset(self) -> None:
        """Close every upstream connection (so no state leaks into the next test) and forget all records."""
        done = threading.Event()

        def close_all() -> None:
            for proto in list(self.open_protocols):
                if proto.transport is not None:
                    proto.transport.abort()
            done.set()

        self.loop.call_soon_threadsafe(close_all)
        done.wait(5)
        with self.lock:
            self.conn_id_base += len(self.conns)
            self.conns = []
            self.inflight.clear()
            self.max_inflight.clear()

    def snapshot(self) -> list[UpConn]:
        with self.lock:
            return copy.deepcopy(self.conns)

    def complete(self) -> list[Req]:
        return [r for c in self.snapshot() for r in c.requests]

    def incomplete(self) -> list[Req]:
        return [c.current for c in self.snapshot() if c.current is not None]

    def raw_bytes(self) -> bytes:
        with self.lock:
            return b"".join(bytes(c.raw) for c in self.conns)

    def saw(self, token: str | bytes) -> bool:
        token = token.encode() if isinstance(token, str) else token
        return token in self.raw_bytes()

    def open_count(self) -> int:
        with self.lock:
            return len(self.open_protocols)

    def summary(self, limit: int = 6000) -> str:
        lines = []
        for c in self.snapshot():
            lines.append(
                f"upstream conn {c.id}: {len(c.raw)} bytes, closed={c.closed}, error={c.error}, "
                f"complete={c.requests!r}, in progress={c.current!r}, first bytes={bytes(c.raw[:300])!r}"
            )
        text = "\n".join(lines) or "(no upstream connection)"
        return text[-limit:]

    def close(self) -> None:
        self.reset()
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def assert_only_whole(recorder: Recorder, sent_whole: Counter | list, context: str = "") -> None:
    """Every COMPLETE request the upstream recorded is (method, target, body) of one a client sent
    whole, and none came more often than it was sent."""
    sent = Counter(sent_whole)
    seen = Counter(r.key for r in recorder.complete())
    extra = {k: n - sent[k] for k, n in seen.items() if n > sent[k]}
    assert not extra, (
        f"the upstream ran requests no client sent whole (or more often than sent) {context}: "
        f"{[(m, t, b[:200]) for (m, t, b) in extra]}\n{recorder.summary()}"
    )


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | tuple = (),
    body: bytes = b"",
    *,
    host: str | None = "shop.example",
    chunked: bool = False,
    close: bool = False,
    length: int | None = None,
) -> bytes:
    """Request bytes. ``length`` overrides the Content-Length (to announce more than is sent)."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{n}: {v}" for n, v in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif body or length is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if chunked and body:
        return head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    if chunked:
        return head + b"0\r\n\r\n"
    return head + body


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool
    raw_head: bytes = b""

    def get(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n == name.lower()]
        return values[0] if values else None

    def get_list(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]

    def __repr__(self) -> str:
        body = self.body if len(self.body) < 200 else self.body[:200] + b"...(%d bytes)" % len(self.body)
        return f"<Resp {self.status} complete={self.complete} headers={self.headers[:12]} body={body!r}>"


def parse_responses(data: bytes, eof: bool, head_methods: tuple[bool, ...] = ()) -> tuple[list[Resp], bytes]:
    """Split ``data`` (what a client read) into responses; the last may be incomplete.

    ``eof``: the connection ended after ``data`` (a read-until-close body is then complete).
    ``head_methods[i]``: response ``i`` answers a HEAD (no body). Returns (responses, unparsed rest).
    """
    out: list[Resp] = []
    rest = data
    index = 0
    while rest:
        head, sep, after = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            break
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
        resp = Resp(status, headers, b"", False, head)
        is_head = index < len(head_methods) and head_methods[index]
        te = ",".join(v for n, v in headers if n == "transfer-encoding").lower()
        codings = [c.strip() for c in te.split(",") if c.strip()]
        cl = [v for n, v in headers if n == "content-length"]
        if 100 <= status < 200 and status != 101:
            rest = after  # interim: skip
            continue
        if is_head or status in (204, 304) or status == 101:
            resp.complete = True
            rest = after
        elif codings and codings[-1] == "chunked":
            body = bytearray()
            pos = 0
            ok = False
            while True:
                line_end = after.find(b"\r\n", pos)
                if line_end < 0:
                    break
                try:
                    size = int(after[pos:line_end].split(b";")[0], 16)
                except ValueError:
                    break
                if size == 0:
                    trailer_end = after.find(b"\r\n\r\n", line_end)
                    if after[line_end : line_end + 4] == b"\r\n\r\n":
                        pos, ok = line_end + 4, True
                    elif trailer_end >= 0:
                        pos, ok = trailer_end + 4, True
                    break
                if len(after) < line_end + 2 + size + 2:
                    body += after[line_end + 2 : line_end + 2 + size]
                    pos = len(after)
                    break
                body += after[line_end + 2 : line_end + 2 + size]
                pos = line_end + 2 + size + 2
            resp.body, resp.complete = bytes(body), ok
            rest = after[pos:] if ok else b""
        elif codings:
            resp.body, resp.complete, rest = after, eof, b""  # a non-chunked transfer coding: until close
        elif cl:
            n = int(cl[0])
            resp.body = after[:n]
            resp.complete = len(after) >= n
            rest = after[n:]
        else:
            resp.body, resp.complete, rest = after, eof, b""
        out.append(resp)
        index += 1
        if not resp.complete:
            break
    return out, rest


@dataclass
class ReadResult:
    responses: list[Resp]
    data: bytes
    eof: bool  # the peer closed cleanly
    reset: bool  # the peer reset the connection
    timed_out: bool

    @property
    def first(self) -> Resp:
        assert self.responses, f"no response at all (eof={self.eof}, reset={self.reset}, timed out={self.timed_out}): {self.data[:300]!r}"
        return self.responses[0]

    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]


class Conn:
    """A raw client connection to edge."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.data = bytearray()
        self.eof = False
        self.reset = False

    def send(self, data: bytes) -> bool:
        """Send; False when the peer has closed/reset (that is not an error for an attacker)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _recv(self, timeout: float) -> bool:
        """One recv; False at EOF/reset/timeout."""
        if self.eof or self.reset:
            return False
        self.sock.settimeout(max(0.01, timeout))
        try:
            chunk = self.sock.recv(1 << 20)
        except TimeoutError:
            return False
        except OSError:
            self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    def read(self, n: int = 1, timeout: float = 10.0, head_methods: tuple[bool, ...] = ()) -> ReadResult:
        """Read until ``n`` complete responses, EOF, a reset or ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        timed_out = False
        while True:
            # A body read "until close" is complete only at a clean EOF, never at a reset.
            responses, _ = parse_responses(bytes(self.data), self.eof, head_methods)
            if len([r for r in responses if r.complete]) >= n or self.eof or self.reset:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            self._recv(remaining)
        return ReadResult(responses, bytes(self.data), self.eof, self.reset, timed_out)

    def wait_closed(self, timeout: float) -> tuple[bool, bytes]:
        """Wait until the peer closes (EOF or reset) within ``timeout`` s: (closed, everything read)."""
        deadline = time.monotonic() + timeout
        while not (self.eof or self.reset) and time.monotonic() < deadline:
            self._recv(deadline - time.monotonic())
        return (self.eof or self.reset), bytes(self.data)

    def is_closed_now(self) -> bool:
        """Non-blocking: has the peer closed (EOF/reset already queued)?"""
        if self.eof or self.reset:
            return True
        self._recv(0.01)
        return self.eof or self.reset

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exchange(port: int, data: bytes, n: int = 1, timeout: float = 10.0, head_methods: tuple[bool, ...] = ()) -> ReadResult:
    """Open a connection, send ``data``, read ``n`` responses (or to EOF), close."""
    with Conn(port, timeout) as conn:
        conn.send(data)
        return conn.read(n, timeout, head_methods)


async def async_exchange(port: int, data: bytes, timeout: float = 30.0) -> Resp | str:
    """``data`` should say ``Connection: close``: read to EOF. A :class:`Resp`, or a string naming the failure."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, TimeoutError) as exc:
        return f"connect: {exc.__class__.__name__}"
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            chunk = await asyncio.wait_for(reader.read(1 << 16), max(0.01, deadline - time.monotonic()))
            if not chunk:
                break
            chunks.append(chunk)
            responses, _ = parse_responses(b"".join(chunks), False)
            if responses and responses[0].complete:
                break
    except (OSError, TimeoutError) as exc:
        return f"read: {exc.__class__.__name__}"
    finally:
        writer.close()
    responses, _ = parse_responses(b"".join(chunks), True)
    if not responses:
        return f"no response: {b''.join(chunks)[:100]!r}"
    return responses[0]
