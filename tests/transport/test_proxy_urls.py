"""ReverseProxy._url: the upstream URL of a request target, built once and reused (a unit test)."""

from __future__ import annotations

import httpx

from edge.core.settings import Settings
from edge.transport import proxy as proxy_module
from edge.transport.proxy import ReverseProxy


def scope(path: bytes, query: bytes = b"") -> dict:
    return {"type": "http", "method": "GET", "path": path.decode(), "raw_path": path, "query_string": query, "headers": []}


def test_the_url_is_the_upstreams_with_the_target_and_is_reused():
    proxy = ReverseProxy(Settings(upstream="http://shop.internal:8081/"))
    url = proxy._url(scope(b"/search", b"q=caf%C3%A9&x=1"))
    assert url == httpx.URL("http://shop.internal:8081/search?q=caf%C3%A9&x=1")
    assert url.raw_path == b"/search?q=caf%C3%A9&x=1" and url.host == "shop.internal" and url.port == 8081
    assert proxy._url(scope(b"/search", b"q=caf%C3%A9&x=1")) is url  # not built again
    assert proxy._url(scope(b"/search", b"q=tea")) != url and proxy._url(scope(b"/")) == httpx.URL("http://shop.internal:8081/")


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(proxy_module, "_URL_MEMO_SIZE", 10)
    proxy = ReverseProxy(Settings())
    for i in range(35):
        assert proxy._url(scope(b"/p/%d" % i)).raw_path == b"/p/%d" % i
        assert len(proxy._urls) <= 10
    long_path = b"/" + b"a" * 600
    assert proxy._url(scope(long_path)).raw_path == long_path and long_path not in proxy._urls
