"""The sidecar as a proxy: byte-exact pass-through, streaming without buffering, header hygiene."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re

import httpx
import pytest

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port


def _some_image(client: httpx.Client, base: str) -> str:
    home = client.get(base + "/", headers={"ECT": "4g", "RTT": "50", "Downlink": "10"})
    marker = b'src="/static/img/'
    start = home.content.index(marker) + len(b'src="')
    return home.content[start : home.content.index(b'"', start)].decode()


# --- pass-through, byte for byte ---------------------------------------------------------------


def test_png_is_byte_identical(stack, client):
    path = _some_image(client, stack.edge_url)
    direct = client.get(stack.storefront_url + path)
    proxied = client.get(stack.edge_url + path)
    assert direct.status_code == proxied.status_code == 200
    assert proxied.content == direct.content
    assert proxied.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert proxied.headers["content-type"] == direct.headers["content-type"] == "image/png"
    assert proxied.headers["content-length"] == direct.headers["content-length"] == str(len(direct.content))
    assert "edge-tier" not in proxied.headers


def _stream_sha256(client: httpx.Client, url: str, **kwargs) -> tuple[int, str, int]:
    digest = hashlib.sha256()
    size = 0
    with client.stream("GET", url, **kwargs) as response:
        for chunk in response.iter_raw(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return response.status_code, digest.hexdigest(), size


def test_20_mb_download_streams_through_without_buffering(stack, client, vm_rss):
    pid = stack.edge.pid
    # Warm up: the first large transfer allocates the pools and buffers that later ones reuse.
    assert _stream_sha256(client, stack.edge_url + "/download/2.bin")[0] == 200
    before = vm_rss(pid)
    status, proxied_sha, proxied_size = _stream_sha256(client, stack.edge_url + "/download/20.bin")
    after = vm_rss(pid)
    assert status == 200
    assert proxied_size == 20 * MiB
    direct_status, direct_sha, _ = _stream_sha256(client, stack.storefront_url + "/download/20.bin")
    assert direct_status == 200
    assert proxied_sha == direct_sha
    growth_kib = after - before
    print(f"edge VmRSS {before} KiB -> {after} KiB over a 20 MiB download")
    assert growth_kib <= 10 * 1024, f"edge's RSS grew by {growth_kib / 1024:.1f} MiB for a 20 MiB download"


def test_range_request_gives_the_same_206(stack, client):
    headers = {"Range": "bytes=100-199"}
    direct = client.get(stack.storefront_url + "/download/1.bin", headers=headers)
    proxied = client.get(stack.edge_url + "/download/1.bin", headers=headers)
    assert direct.status_code == proxied.status_code == 206
    assert len(proxied.content) == 100
    assert proxied.content == direct.content
    assert proxied.headers["content-range"] == direct.headers["content-range"]


def test_unsatisfiable_range_gives_416(stack, client):
    headers = {"Range": f"bytes={2 * MiB}-"}
    direct = client.get(stack.storefront_url + "/download/1.bin", headers=headers)
    proxied = client.get(stack.edge_url + "/download/1.bin", headers=headers)
    assert direct.status_code == proxied.status_code == 416


def test_head_gives_the_direct_headers_and_no_body(stack, raw):
    responses = []
    for url in (stack.storefront_url, stack.edge_url):
        host, port = _host_port(url)
        # ECT: 2g would make a GET lite: a HEAD is never adapted, so its headers stay the storefront's.
        head = f"HEAD / HTTP/1.1\r\nHost: {host}:{port}\r\nECT: 2g\r\nConnection: close\r\n\r\n"
        responses.append(raw(host, port, head.encode()))
    direct, proxied = responses
    assert direct.status == proxied.status == 200
    assert proxied.body == b""
    ignore = {"date", "via", "connection", "server"}
    assert [h for h in proxied.headers if h[0] not in ignore] == [h for h in direct.headers if h[0] not in ignore]
    assert proxied.get("via") is not None and "edge" in proxied.get("via")


def _opaque(etag: str) -> str:
    return etag.removeprefix("W/")


def test_if_none_match_with_the_storefront_etag_gives_304(stack, client):
    etag = client.get(stack.storefront_url + "/").headers["etag"]
    response = client.get(stack.edge_url + "/", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert _opaque(response.headers["etag"]) == _opaque(etag)


def test_lite_page_revalidates_with_its_own_etag(stack, client):
    lite = client.get(stack.edge_url + "/", headers={"ECT": "2g"})
    assert lite.headers["edge-tier"] == "lite"
    etag = lite.headers["etag"]
    again = client.get(stack.edge_url + "/", headers={"ECT": "2g", "If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers.get("etag") == etag
    # The lite validator does not validate the full page: a shopper now on 4G gets the full page.
    full = client.get(stack.edge_url + "/", headers={"ECT": "4g", "RTT": "50", "Downlink": "10", "If-None-Match": etag})
    assert full.status_code == 200
    assert full.headers["edge-tier"] == "full"


def test_redirects_pass_through_unfollowed(stack, client):
    response = client.get(stack.edge_url + "/checkout")
    assert response.status_code == 302
    assert response.headers["location"] == "/cart"


def test_post_cart_gives_303(stack, client):
    direct = client.post(stack.storefront_url + "/cart", data={"product_id": "1"})
    proxied = client.post(stack.edge_url + "/cart", data={"product_id": "1"})
    assert proxied.status_code == direct.status_code == 303
    assert proxied.headers["location"] == direct.headers["location"]


def _raw_get(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[bytes, httpx.Headers]:
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw()), response.headers


def test_gzip_page_passes_through_compressed(stack, client):
    # A request edge may not transform: the origin's compressed bytes arrive exactly.
    headers = {"Accept-Encoding": "gzip", "ECT": "2g", "Cache-Control": "no-transform"}
    direct, direct_headers = _raw_get(client, stack.storefront_url + "/gzip-page", headers)
    proxied, proxied_headers = _raw_get(client, stack.edge_url + "/gzip-page", headers)
    assert direct_headers["content-encoding"] == proxied_headers["content-encoding"] == "gzip"
    assert proxied == direct
    assert proxied.startswith(b"\x1f\x8b")
    assert proxied_headers["content-length"] == str(len(direct))
    assert "edge-tier" not in proxied_headers


def test_gzip_page_through_edge_is_the_same_page(stack, client):
    """Without no-transform, edge decodes the gzip page, adapts it (2g: lite) and serves valid gzip
    of the same page plus its switch link (README: compressed pages are decoded and compressed again)."""
    headers = {"Accept-Encoding": "gzip", "ECT": "2g"}
    direct, direct_headers = _raw_get(client, stack.storefront_url + "/gzip-page", headers)
    proxied, proxied_headers = _raw_get(client, stack.edge_url + "/gzip-page", headers)
    assert direct_headers["content-encoding"] == "gzip"
    assert proxied_headers.get("edge-tier") == "lite", "the gzip page was passed through, not adapted"
    assert proxied_headers["content-encoding"] == "gzip"
    assert int(proxied_headers["content-length"]) == len(proxied)
    assert proxied != direct
    page = gzip.decompress(proxied)
    original = gzip.decompress(direct)
    cut = original.rindex(b"</body>")
    assert page.startswith(original[:cut]) and page.endswith(original[cut:])
    assert page[cut:].startswith(b'<p class="edge-switch"')


def test_no_transform_page_is_not_adapted(stack, client):
    direct = client.get(stack.storefront_url + "/no-transform", headers={"ECT": "2g"})
    proxied = client.get(stack.edge_url + "/no-transform", headers={"ECT": "2g"})
    assert direct.status_code == proxied.status_code == 200
    assert proxied.content == direct.content
    assert "edge-tier" not in proxied.headers
    assert proxied.headers.get("etag") == direct.headers.get("etag")


def test_client_no_transform_is_honoured(stack, client):
    direct = client.get(stack.storefront_url + "/")
    proxied = client.get(stack.edge_url + "/", headers={"ECT": "2g", "Cache-Control": "no-transform"})
    assert proxied.status_code == 200
    assert "edge-tier" not in proxied.headers
    assert proxied.content == direct.content


# --- request forwarding via /echo ---------------------------------------------------------------


def _echo_headers(response: httpx.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


ECHO_PATH = "/echo/a%2Fb/caf%C3%A9/q%3Fnot-a-query/pct%252F"
ECHO_QUERY = "x=1&y=%20z"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_reaches_upstream_with_path_and_query_intact(stack, client, method):
    body = os.urandom(MiB) if method in ("POST", "PUT", "PATCH") else b""
    target = f"{ECHO_PATH}?{ECHO_QUERY}"
    direct = client.request(method, stack.storefront_url + target, content=body or None)
    response = client.request(method, stack.edge_url + target, content=body or None)
    assert response.status_code == direct.status_code == 200
    echo, want = response.json(), direct.json()
    assert echo["method"] == method
    # The storefront reports the path as its server decoded it: the same path must arrive through edge
    # (decoded once, not twice: "%252F" stays "%2F"; "%3F" never starts a query).
    assert echo["path"] == want["path"]
    assert echo["path"].endswith("/pct%2F") and "café" in echo["path"]
    assert echo["query"] == want["query"] == ECHO_QUERY
    assert echo["body_bytes"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    if body:
        assert _echo_headers(response)["content-length"] == [str(len(body))]


def test_hop_by_hop_request_headers_do_not_reach_upstream(stack, raw):
    host, port = _host_port(stack.edge_url)
    head = (
        f"GET /echo/hop HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Connection: close, X-Secret-Hop\r\n"
        "X-Secret-Hop: 1\r\n"
        "Keep-Alive: timeout=5\r\n"
        "TE: trailers\r\n"
        "Upgrade: foo\r\n"
        "Proxy-Authorization: x\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "X-End-To-End: kept\r\n\r\n"
    ).encode()
    response = raw(host, port, head)
    assert response.status == 200, response.body[:300]
    seen = {name.lower() for name, _ in json.loads(response.body)["headers"]}
    for hop in ("x-secret-hop", "keep-alive", "te", "upgrade", "proxy-authorization", "proxy-connection"):
        assert hop not in seen, f"{hop} reached the upstream"
    assert "x-end-to-end" in seen


def test_hop_by_hop_with_keep_alive_connection(stack, client):
    response = client.get(
        stack.edge_url + "/echo/hop",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "x",
        },
    )
    assert response.status_code == 200
    seen = _echo_headers(response)
    for hop in ("x-secret-hop", "keep-alive", "te", "proxy-authorization"):
        assert hop not in seen, f"{hop} reached the upstream"
    assert seen.get("connection", ["keep-alive"]) != ["keep-alive, X-Secret-Hop"]


# Hop-by-hop fields no other test sends; each is checked on its own so dropping any one from the set fails.
UNLISTED_HOPS = {"trailer": "X-Checksum", "proxy-authenticate": 'Basic realm="shop"', "upgrade": "h2c"}


@pytest.mark.parametrize("hop", sorted(UNLISTED_HOPS))
def test_trailer_proxy_authenticate_upgrade_do_not_reach_upstream(stack, raw, hop):
    host, port = _host_port(stack.edge_url)
    head = (
        f"GET /echo/hop HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        f"{hop}: {UNLISTED_HOPS[hop]}\r\nX-End-To-End: kept\r\n\r\n"
    ).encode()
    direct = {name for name, _ in json.loads(raw(*_host_port(stack.storefront_url), head).body)["headers"]}
    assert hop in direct, f"the storefront should see {hop} when asked directly: {sorted(direct)}"
    response = raw(host, port, head)
    assert response.status == 200, response.body[:300]
    seen = {name for name, _ in json.loads(response.body)["headers"]}
    assert hop not in seen, f"{hop} reached the upstream"
    assert "x-end-to-end" in seen


@pytest.mark.parametrize("hop", sorted(UNLISTED_HOPS))
def test_trailer_proxy_authenticate_upgrade_do_not_reach_the_client(stack, client, hop):
    params = {hop: UNLISTED_HOPS[hop], "x-end-to-end": "kept"}
    direct = client.get(stack.storefront_url + "/headers/echo", params=params)
    assert direct.headers.get(hop) == UNLISTED_HOPS[hop], "the storefront should send the header"
    proxied = client.get(stack.edge_url + "/headers/echo", params=params)
    assert proxied.status_code == 200
    assert proxied.headers.get("x-end-to-end") == "kept"
    assert hop not in proxied.headers, f"{hop} reached the client"


def test_forwarding_headers(stack, client):
    host, port = _host_port(stack.edge_url)
    seen = _echo_headers(client.get(stack.edge_url + "/echo/fwd"))
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == [f"{host}:{port}"]
    assert seen["via"] == ["1.1 edge"]
    # The client's Host by default: the storefront sees the host the browser used (its Origin checks pass).
    assert seen["host"] == [f"{host}:{port}"]


def test_no_preserve_host_sends_the_upstreams_own_host(stack, start_edge, client):
    edge = start_edge(stack.storefront_url, "--no-preserve-host", name="edge-upstream-host")
    host, port = _host_port(edge.url)
    seen = _echo_headers(client.get(edge.url + "/echo/fwd"))
    sf_host, sf_port = _host_port(stack.storefront_url)
    assert seen["host"] == [f"{sf_host}:{sf_port}"]
    assert seen["x-forwarded-host"] == [f"{host}:{port}"]


def test_via_is_appended_to_an_existing_one(stack, client):
    seen = _echo_headers(client.get(stack.edge_url + "/echo/via", headers={"Via": "1.1 cdn.example"}))
    assert seen["via"] == ["1.1 cdn.example, 1.1 edge"]


def test_x_forwarded_for_is_appended_with_the_peer_address(stack, client):
    seen = _echo_headers(client.get(stack.edge_url + "/echo/fwd", headers={"X-Forwarded-For": "203.0.113.7"}))
    # Regression: uvicorn's proxy-headers middleware once replaced the real peer with the forged hop.
    assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]


def test_client_cannot_set_x_forwarded_proto(stack, client):
    seen = _echo_headers(client.get(stack.edge_url + "/echo/fwd", headers={"X-Forwarded-Proto": "https"}))
    # edge's public port is plain http, whatever the shopper claims.
    assert seen["x-forwarded-proto"] == ["http"]


def test_proxy_adds_no_default_headers(stack, raw):
    host, port = _host_port(stack.edge_url)
    head = f"GET /echo/bare HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    response = raw(host, port, head)
    assert response.status == 200
    seen = {name.lower(): value for name, value in json.loads(response.body)["headers"]}
    # Regression: httpx's client defaults (Accept, Accept-Encoding, User-Agent) once leaked in.
    assert "accept-encoding" not in seen, seen.get("accept-encoding")
    assert "user-agent" not in seen, seen.get("user-agent")
    assert "accept" not in seen, seen.get("accept")


def test_storefront_cookies_do_not_leak_between_shoppers(stack, raw, make_client):
    host, port = _host_port(stack.edge_url)
    with make_client() as shopper_a:
        added = shopper_a.post(stack.edge_url + "/cart", data={"product_id": "3"})
        assert added.status_code == 303
        assert any(c.startswith("cart=") for c in added.headers.get_list("set-cookie"))
    # Shopper B: a first visit, no cookies at all (raw socket, so nothing is added by a client library).
    head = f"GET /echo/leak HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    seen = {name: value for name, value in json.loads(raw(host, port, head).body)["headers"]}
    # Regression: the shared upstream client once kept a cookie jar and replayed shopper A's cookies.
    assert "cookie" not in seen, seen.get("cookie")
    cart = raw(host, port, f"GET /cart HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    direct_host, direct_port = _host_port(stack.storefront_url)
    empty = raw(direct_host, direct_port, f"GET /cart HTTP/1.1\r\nHost: {direct_host}\r\nConnection: close\r\n\r\n".encode())
    heading = re.compile(rb"<h1>Your cart[^<]*</h1>")
    assert heading.search(empty.body) is not None
    assert heading.search(cart.body).group(0) == heading.search(empty.body).group(0)


def test_chunked_request_body_is_forwarded(stack, client):
    payload = [os.urandom(100_000) for _ in range(5)]
    response = client.post(stack.edge_url + "/echo/chunked", content=iter(payload))
    echo = response.json()
    assert echo["body_bytes"] == 500_000
    assert echo["body_sha256"] == hashlib.sha256(b"".join(payload)).hexdigest()


@pytest.mark.parametrize("path", ["/", "/echo/date", "/static/img/logo.png"])
def test_exactly_one_date_header(stack, client, path):
    """Date is a singleton field: a proxied response carries the storefront's, once."""
    assert len(client.get(stack.storefront_url + path).headers.get_list("date")) == 1
    response = client.get(stack.edge_url + path)
    assert response.status_code == 200
    # Regression: uvicorn's Date was once added on top of the storefront's.
    assert len(response.headers.get_list("date")) == 1, response.headers.get_list("date")


def test_client_abandoning_a_download_does_not_hurt_edge(stack, client):
    with client.stream("GET", stack.edge_url + "/download/50.bin") as response:
        assert response.status_code == 200
        received = 0
        for chunk in response.iter_raw(64 * 1024):
            received += len(chunk)
            if received >= 2 * MiB:
                break
    # The connection was dropped mid-body; edge keeps serving, pages and downloads alike.
    assert stack.edge.proc.alive()
    for _ in range(3):
        assert client.get(stack.edge_url + "/", headers={"ECT": "2g"}).headers["edge-tier"] == "lite"
    assert _stream_sha256(client, stack.edge_url + "/download/1.bin")[2] == MiB


def test_multiple_set_cookie_and_response_hop_by_hop(stack, client):
    direct = client.get(stack.storefront_url + "/headers/multi")
    proxied = client.get(stack.edge_url + "/headers/multi")
    assert proxied.status_code == 200
    cookies = proxied.headers.get_list("set-cookie")
    assert len(cookies) == 2 and len(set(cookies)) == 2, cookies
    assert cookies == direct.headers.get_list("set-cookie")
    assert proxied.headers["x-upstream"] == "yes"
    assert direct.headers.get("x-drop-me") == "1", "the demo route should send X-Drop-Me"
    assert "x-drop-me" not in proxied.headers


@pytest.mark.parametrize("code", [404, 500, 503])
def test_upstream_error_statuses_pass_through(stack, client, code):
    direct = client.get(stack.storefront_url + f"/status/{code}")
    proxied = client.get(stack.edge_url + f"/status/{code}", headers={"ECT": "2g"})
    assert proxied.status_code == direct.status_code == code
    assert proxied.content == direct.content
    assert "edge-tier" not in proxied.headers


def test_page_over_the_rewrite_cap_streams_through_unmodified(stack, tight_edge, client):
    edge = tight_edge  # --max-rewrite-bytes 50000
    direct = client.get(stack.storefront_url + "/")
    assert len(direct.content) > 50_000
    response = client.get(edge.url + "/", headers={"ECT": "2g"})
    assert response.status_code == 200
    assert "edge-tier" not in response.headers
    assert response.content == direct.content
    assert response.headers["etag"] == direct.headers["etag"]
    small = client.get(edge.url + "/cart", headers={"ECT": "2g"})
    assert small.headers["edge-tier"] == "lite"
