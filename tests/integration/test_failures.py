"""Failure modes through real processes: dead and slow upstreams, hostile headers, bad policy files, metrics."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
EDGE_BIN = str(Path(sys.executable).parent / "edge")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def metric_samples(admin_url: str, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(admin_url + "/metrics", timeout=5, trust_env=False).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


@pytest.fixture(scope="module")
def dead_upstream_edge(start_edge):
    """An edge whose upstream port has nothing listening.

    The port stays bound (never listening) for the module, so connections to it are refused
    and no process started later can take it.
    """
    with socket.socket() as reserved:
        reserved.bind((HOST, 0))
        port = reserved.getsockname()[1]
        yield start_edge(f"http://{HOST}:{port}", "--fail-mode", "open", "--connect-timeout", "1", name="edge-dead-upstream")


# --- the upstream is down or slow ----------------------------------------------------------------


def test_dead_upstream_gives_a_short_plain_502_and_edge_keeps_serving(dead_upstream_edge, client):
    for _ in range(2):
        response = client.get(dead_upstream_edge.url + "/", headers={"ECT": "2g"})
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/plain")
        assert len(response.content) < 200
        assert b"Traceback" not in response.content and b"Error" not in response.content
        assert int(response.headers["content-length"]) == len(response.content)
        assert len(response.headers.get_list("date")) == 1
    assert client.get(dead_upstream_edge.admin_url + "/healthz").status_code == 200
    assert dead_upstream_edge.proc.alive()


def test_dead_upstream_counts_connect_errors(dead_upstream_edge, client):
    client.get(dead_upstream_edge.url + "/")
    connect = [v for labels, v in metric_samples(dead_upstream_edge.admin_url, "edge_upstream_errors_total") if labels == {"kind": "connect"}]
    assert connect and connect[0] > 0


def test_slow_upstream_gives_504(stack, tight_edge):
    """edge's 1 s read timeout answers 504 while the storefront is still working on the page.

    Order, not wall time: the same slow page asked of the storefront directly, at the same moment,
    comes back (200) only after edge's 504.
    """
    edge = tight_edge  # --read-timeout 1
    finished: list[tuple[str, int]] = []
    bodies: list[bytes] = []
    lock = threading.Lock()

    def fetch(name: str, base: str) -> None:
        # timeout=30 is only a hang guard: the storefront answers after 5 s, edge well before.
        response = httpx.get(base + "/slow", params={"ms": "5000"}, timeout=30, trust_env=False)
        with lock:
            finished.append((name, response.status_code))
            if name == "edge":
                bodies.append(response.content)

    threads = [
        threading.Thread(target=fetch, args=("storefront", stack.storefront_url)),
        threading.Thread(target=fetch, args=("edge", edge.url)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert finished == [("edge", 504), ("storefront", 200)]
    assert len(bodies[0]) < 200
    timeouts = [v for labels, v in metric_samples(edge.admin_url, "edge_upstream_errors_total") if labels == {"kind": "timeout"}]
    assert timeouts and timeouts[0] > 0
    # and it still serves normal pages
    assert httpx.get(edge.url + "/", timeout=5, trust_env=False).status_code == 200


# --- hostile or broken request headers never break a page ---------------------------------------

MALFORMED = {
    "ect-bogus": {"ECT": "bogus"},
    "rtt-negative": {"RTT": "-5"},
    "rtt-nan": {"RTT": "nan"},
    "downlink-overflow": {"Downlink": "1e999"},
    "device-memory-negative": {"Device-Memory": "-1"},
    "edge-cell-10kb": {"Edge-Cell": 'id="' + "9" * 10_000 + '", radio=edge'},
    "edge-cell-unbalanced": {"Edge-Cell": "id=(("},
    "edge-cell-string-rsrp": {"Edge-Cell": 'radio=lte, rsrp="x"'},
    "last-request-garbage": {"Edge-Last-Request": "ms=-1, bytes=abc"},
    "ua-mobile-maybe": {"Sec-CH-UA-Mobile": "maybe"},
    "user-agent-10kb": {"User-Agent": "Mozilla/5.0 (Linux; Android 8) " + "A" * 10_000},
    "everything-at-once": {
        "ECT": "bogus",
        "RTT": "nan",
        "Downlink": "1e999",
        "Device-Memory": "-1",
        "Edge-Cell": "id=((",
        "Edge-Last-Request": "ms=-1, bytes=abc",
        "Sec-CH-UA-Mobile": "maybe",
        "Save-Data": "maybe",
        "Cookie": "edge_tier=" + "x" * 9000,
    },
}


@pytest.mark.parametrize("headers", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_signal_headers_still_get_a_page(stack, client, headers):
    response = client.get(stack.edge_url + "/", headers=headers)
    assert response.status_code == 200
    assert response.headers.get("edge-tier") in ("full", "lite", "minimal")
    assert b"</html>" in response.content.lower()
    assert stack.edge.proc.alive()


NON_ASCII = {
    "user-agent-utf8": b"User-Agent: Mozilla/5.0 (Linux; Android 13) caf\xc3\xa9 \xe2\x98\x83\r\n",
    "ect-latin1": b"ECT: 2g\xff\r\n",
    "edge-cell-latin1": b'Edge-Cell: id="caf\xe9", radio=edge\r\n',
    "ua-mobile-bytes": b"Sec-CH-UA-Mobile: ?\xc3\xbf\r\n",
    "cookie-bytes": b"Cookie: edge_tier=f\xfcll\r\n",
}


@pytest.mark.parametrize("line", list(NON_ASCII.values()), ids=list(NON_ASCII))
def test_non_ascii_header_bytes_still_get_a_page(stack, raw, line):
    host, port = stack.edge.url.removeprefix("http://").split(":")
    head = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n".encode() + line + b"\r\n"
    response = raw(host, int(port), head)
    assert response.status == 200, response.body[:300]
    assert response.get("edge-tier") in ("full", "lite", "minimal")
    assert stack.edge.proc.alive()


def test_malformed_headers_did_not_make_any_stage_fail_open(stack, client):
    # read_signals turns bad input into missing signals; it must not get there by raising and failing open.
    for headers in MALFORMED.values():
        client.get(stack.edge_url + "/", headers=headers)
    failed = {labels["stage"]: value for labels, value in metric_samples(stack.admin_url, "edge_fail_open_total")}
    assert failed and not any(failed.values()), failed


# --- metrics live on the admin port only --------------------------------------------------------


def test_requests_are_counted_by_tier_and_source(stack, client):
    client.get(stack.edge_url + "/", headers={"ECT": "2g"})
    client.get(stack.edge_url + "/", headers={"Save-Data": "on"})
    samples = metric_samples(stack.admin_url, "edge_requests_total")
    assert samples and all(set(labels) == {"tier", "source"} for labels, _ in samples)
    counted = {(labels["tier"], labels["source"]): value for labels, value in samples}
    assert counted[("lite", "rules")] >= 1
    assert counted[("lite", "override")] >= 1


def test_public_port_does_not_serve_edge_metrics(stack, client):
    direct = client.get(stack.storefront_url + "/metrics")
    proxied = client.get(stack.edge_url + "/metrics")
    assert direct.status_code == 404
    assert proxied.status_code == 404
    assert proxied.content == direct.content
    assert b"edge_requests_total" not in proxied.content
    for path in ("/healthz", "/readyz", "/__edge/metrics"):
        assert b"edge_requests_total" not in client.get(stack.edge_url + path).content


def test_admin_health_endpoints(stack, client):
    assert client.get(stack.admin_url + "/healthz").status_code == 200
    assert client.get(stack.admin_url + "/readyz").status_code == 200


# --- configuration errors ----------------------------------------------------------------------

BAD_POLICY = """\
name = "broken"

[tiers]
lite = 0.5
minimal = 0.95

[[widgets]]
widget = "header"
priority = 100

[[widgets]]
widget = "carousel"
priority = 20
lite = "hide"
"""


def test_invalid_policy_file_exits_quickly_naming_file_key_and_problem(tmp_path):
    policy = tmp_path / "broken-policy.toml"
    policy.write_text(BAD_POLICY, encoding="utf-8")
    # It exits by itself, before it ever serves: timeout=30 is only a hang guard (a process that
    # accepted the broken policy would serve until killed, and fail this test by TimeoutExpired).
    result = subprocess.run(
        [
            EDGE_BIN, "serve",
            "--upstream", f"http://{HOST}:{free_port()}",
            "--port", str(free_port()),
            "--admin-port", str(free_port()),
            "--policy", str(policy),
        ],
        capture_output=True,
        timeout=30,
        cwd=ROOT,
        text=True,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Started server process" not in output and "Uvicorn running" not in output, output
    assert str(policy) in result.stderr
    assert "widgets[1].lite" in result.stderr
    assert "'hide'" in result.stderr and "keep" in result.stderr and "drop" in result.stderr
    assert "Traceback" not in result.stderr


# --- shutdown ----------------------------------------------------------------------------------


def test_sigterm_drains_in_flight_requests_and_exits_0(stack, start_edge):
    import signal
    import threading

    edge = start_edge(stack.storefront_url, "--read-timeout", "5", name="edge-sigterm")
    result: dict[str, object] = {}

    def slow_request() -> None:
        try:
            result["response"] = httpx.get(edge.url + "/slow", params={"ms": "1500"}, timeout=10, trust_env=False)
        except httpx.HTTPError as exc:  # pragma: no cover - reported below
            result["error"] = exc

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.5)  # the request is in flight, waiting on the storefront
    edge.proc.popen.send_signal(signal.SIGTERM)
    worker.join(10)
    rc = edge.proc.popen.wait(10)
    assert "error" not in result, result.get("error")
    assert result["response"].status_code == 200
    assert b"1500 ms" in result["response"].content
    assert rc == 0, edge.proc.logs()


def test_storefront_restart_behind_warm_keep_alive_connections(start_edge, integration_logs):
    """A rolling deploy of the storefront: edge's pooled connections die with the old process.

    Pages keep coming: idle connections closed by the old process leave the pool, and a GET that
    meets one in the instant it closes is retried on a new connection. No 502 once the new
    storefront listens.
    """
    from tests.integration.conftest import _spawn, _wait_until

    port = free_port()
    url = f"http://{HOST}:{port}"
    args = ["storefront", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    old = _spawn("storefront-rolling-old", args, integration_logs)
    _wait_until(url + "/", [old], time.monotonic() + 30)
    edge = start_edge(url, "--fail-mode", "open", name="edge-rolling")
    with httpx.Client(timeout=10, trust_env=False) as client:
        # Warm the pool: several connections in use at once, then idle.
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: httpx.get(edge.url + "/", timeout=10, trust_env=False).status_code, range(32))) == {200}
        old.stop()
        new = _spawn("storefront-rolling-new", args, integration_logs)
        try:
            _wait_until(url + "/", [new], time.monotonic() + 30)
            statuses = [client.get(edge.url + "/", headers={"ECT": "4g" if i % 2 else "2g"}).status_code for i in range(20)]
            assert statuses == [200] * 20
        finally:
            new.stop()
    assert edge.proc.alive()


# --- a page held for rewriting whose storefront breaks off mid-body (issue 12 item 10) ----------
# --- and the 304 of an adapted page (issue 12 item 16) ------------------------------------------

SCRIPTED_PAGE = (
    "<!DOCTYPE html><html><head><title>Scripted</title></head><body>\n"
    + "".join(f'<section data-edge-widget="w{i}"><p>{"tea " * 40}</p></section>\n' for i in range(20))
    + "</body></html>\n"
).encode()
SENT_BEFORE_BREAK = 1000
STALL_S = 4.0


class ScriptedUpstream:
    """A raw-socket HTTP/1.1 storefront whose answers are scripted per path, one per connection.

    ``/page``           200 text/html with ``ETag: "sv1"``, ``Cache-Control: public, max-age=60``,
                        ``Vary: Accept-Encoding``; a matching ``If-None-Match`` gets a 304 with the same
    ``/page-bare304``   the same page; its 304 carries only the ETag
    ``/cut``            200 text/html with a Content-Length, 1000 bytes of it, then the connection closes
    ``/cut-chunked``    200 text/html, chunked: one chunk, then the connection closes
    ``/stall``          200 text/html with a Content-Length, 1000 bytes, then silence for 4 s;
                        ``stalls[query]`` is an event set when the stall of ``/stall?query`` ends
    """

    def __init__(self) -> None:
        import socketserver
        import threading

        upstream = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                upstream.serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.stalls: dict[str, threading.Event] = {}
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, sock: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                return
            head += data
        lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        path, _, query = lines[0].split()[1].decode().partition("?")
        fields = {n.strip().lower(): v.strip() for n, _, v in (line.partition(b":") for line in lines[1:])}
        html = b"Content-Type: text/html; charset=utf-8\r\n"
        length = b"Content-Length: %d\r\n" % len(SCRIPTED_PAGE)
        if path in ("/page", "/page-bare304"):
            cache = b'ETag: "sv1"\r\nCache-Control: public, max-age=60\r\nVary: Accept-Encoding\r\n'
            if b'"sv1"' in fields.get(b"if-none-match", b""):
                kept = cache if path == "/page" else b'ETag: "sv1"\r\n'
                sock.sendall(b"HTTP/1.1 304 Not Modified\r\n" + kept + b"Connection: close\r\n\r\n")
            else:
                sock.sendall(b"HTTP/1.1 200 OK\r\n" + html + length + cache + b"Connection: close\r\n\r\n" + SCRIPTED_PAGE)
        elif path == "/cut":
            sock.sendall(b"HTTP/1.1 200 OK\r\n" + html + length + b"\r\n" + SCRIPTED_PAGE[:SENT_BEFORE_BREAK])
        elif path == "/cut-chunked":
            chunk = SCRIPTED_PAGE[:SENT_BEFORE_BREAK]
            sock.sendall(b"HTTP/1.1 200 OK\r\n" + html + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        elif path == "/stall":
            ended = self.stalls.setdefault(query, threading.Event())
            sock.sendall(b"HTTP/1.1 200 OK\r\n" + html + length + b"\r\n" + SCRIPTED_PAGE[:SENT_BEFORE_BREAK])
            time.sleep(STALL_S)
            ended.set()
        else:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def scripted_upstream():
    upstream = ScriptedUpstream()
    try:
        yield upstream
    finally:
        upstream.close()


TRANSPORTS = ("http1", "aiohttp", "httpx")


@pytest.fixture(scope="module", params=TRANSPORTS)
def scripted_edge(request, start_edge, scripted_upstream):
    """An edge (read timeout 1 s) in front of the scripted storefront, over each upstream transport."""
    return start_edge(
        scripted_upstream.url, "--read-timeout", "1", "--fail-mode", "open", "--upstream-transport", request.param,
        name=f"edge-scripted-{request.param}",
    )  # fmt: skip


def _upstream_errors(admin_url: str) -> dict[str, float]:
    return {labels["kind"]: value for labels, value in metric_samples(admin_url, "edge_upstream_errors_total")}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/cut", {"ECT": "2g"}),  # lite: held for rewriting
        ("/cut", {"Save-Data": "on", "ECT": "4g"}),  # lite by override
        ("/cut-chunked", {"ECT": "slow-2g"}),  # minimal
        ("/cut-chunked", {"ECT": "4g"}),  # full, but no Content-Length: held to splice
    ],
    ids=["lite", "save-data", "minimal-chunked", "full-chunked"],
)
def test_a_held_page_whose_storefront_closes_mid_body_gets_a_plain_502(scripted_edge, client, path, headers):
    before = _upstream_errors(scripted_edge.admin_url)
    response = client.get(scripted_edge.url + path, headers=headers)
    assert response.status_code == 502
    assert response.content == b"upstream unavailable\n"
    assert response.headers["content-type"].startswith("text/plain")
    assert int(response.headers["content-length"]) == len(response.content)
    assert len(response.headers.get_list("date")) == 1 and response.headers["cache-control"] == "no-store"
    assert "edge-tier" not in response.headers
    after = _upstream_errors(scripted_edge.admin_url)
    grew = {kind: after[kind] - before.get(kind, 0) for kind in after if after[kind] != before.get(kind, 0)}
    assert sum(grew.values()) == 1 and "timeout" not in grew, grew
    assert "Traceback" not in scripted_edge.proc.logs(200_000)
    assert client.get(scripted_edge.url + "/page", headers=headers).status_code == 200  # and edge serves on


def test_a_held_page_whose_storefront_stalls_mid_body_gets_a_plain_504(scripted_edge, scripted_upstream, client):
    before = _upstream_errors(scripted_edge.admin_url)
    stall = f"id={uuid.uuid4().hex}"
    response = client.get(scripted_edge.url + "/stall?" + stall, headers={"ECT": "2g"})
    assert response.status_code == 504
    assert response.content == b"upstream timed out\n"
    assert response.headers["content-type"].startswith("text/plain")
    # Order, not wall time: the 504 is edge's read timeout, given while the storefront still stalls.
    assert stall in scripted_upstream.stalls, "the stall never reached the storefront"
    assert not scripted_upstream.stalls[stall].is_set(), "edge answered only after the storefront gave up"
    after = _upstream_errors(scripted_edge.admin_url)
    assert after["timeout"] == before.get("timeout", 0) + 1
    assert sum(after.values()) == sum(before.values()) + 1
    assert "Traceback" not in scripted_edge.proc.logs(200_000)


@pytest.mark.parametrize("path", ["/cut", "/stall"])
def test_a_streamed_page_whose_storefront_breaks_off_is_aborted_without_a_traceback(scripted_edge, path):
    # The full tier with a Content-Length streams: its headers are out, so the connection is cut short.
    before = sum(_upstream_errors(scripted_edge.admin_url).values())
    with httpx.Client(timeout=10, trust_env=False) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(scripted_edge.url + path, headers={"ECT": "4g", "RTT": "50", "Downlink": "10"})
    assert sum(_upstream_errors(scripted_edge.admin_url).values()) == before + 1
    assert "Traceback" not in scripted_edge.proc.logs(200_000)
    assert "connection aborted" in scripted_edge.proc.logs(200_000)


@pytest.fixture(scope="module")
def scripted_http1_edge(start_edge, scripted_upstream):
    return start_edge(
        scripted_upstream.url, "--read-timeout", "1", "--fail-mode", "open", "--upstream-transport", "http1",
        name="edge-scripted-http1",
    )  # fmt: skip


@pytest.mark.parametrize("headers", [{"ECT": "2g"}, {"ECT": "slow-2g"}, {"Save-Data": "on"}], ids=["lite", "minimal", "save-data"])
def test_the_304_of_an_adapted_page_carries_the_cache_headers_of_its_200(scripted_http1_edge, client, headers):
    edge = scripted_http1_edge
    page = client.get(edge.url + "/page", headers=headers)
    assert page.status_code == 200 and page.headers["edge-tier"] in ("lite", "minimal")
    assert page.headers["cache-control"] == "private, max-age=60"
    again = client.get(edge.url + "/page", headers={**headers, "If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    for name in ("cache-control", "etag", "vary", "edge-tier"):
        assert again.headers.get_list(name) == page.headers.get_list(name), name
    # A storefront 304 that leaves Cache-Control out still never lets a shared cache have the variant.
    bare = client.get(edge.url + "/page-bare304", headers={**headers, "If-None-Match": page.headers["etag"]})
    assert bare.status_code == 304 and bare.headers["cache-control"] == "private" and bare.headers["vary"] == page.headers["vary"]


def test_the_304_of_a_full_page_keeps_the_storefront_cache_policy(scripted_http1_edge, client):
    edge = scripted_http1_edge
    headers = {"ECT": "4g", "RTT": "50", "Downlink": "10"}
    page = client.get(edge.url + "/page", headers=headers)
    assert page.headers["edge-tier"] == "full" and page.headers["cache-control"] == "public, max-age=60"
    again = client.get(edge.url + "/page", headers={**headers, "If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    for name in ("cache-control", "etag", "vary", "edge-tier"):
        assert again.headers.get_list(name) == page.headers.get_list(name), name
