"""AdaptiveMiddleware in-process, around a plain ASGI storefront (no proxy involved)."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edge import AdaptError, AdaptiveMiddleware, Policy, Settings

POLICY = Policy.from_toml('[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n')
PAGE = (
    '<!doctype html><html><body><div data-edge-widget="grid">grid</div>'
    '<div data-edge-widget="ads">ads</div></body></html>'
)


async def home(request):
    return HTMLResponse(PAGE, headers={"etag": '"v1"', "cache-control": "public, max-age=60, s-maxage=600", "vary": "Accept-Encoding"})


async def streamed(request):
    async def chunks():
        for _ in range(100):
            yield b"<p>" + b"x" * 1000 + b"</p>"

    return StreamingResponse(chunks(), media_type="text/html")


async def raw_html(request):
    headers = dict(request.query_params)
    body = gzip.compress(PAGE.encode()) if headers.get("content-encoding") == "gzip" else PAGE.encode()
    return Response(body, media_type="text/html", headers=headers)


STOREFRONT = Starlette(
    routes=[
        Route("/", home, methods=["GET", "HEAD", "POST"]),
        Route("/api", lambda r: JSONResponse({"a": 1})),
        Route("/missing", lambda r: HTMLResponse(PAGE, status_code=404)),
        Route("/streamed", streamed),
        Route("/raw", raw_html),
        Route("/__edge/anything", lambda r: HTMLResponse(PAGE)),
    ]
)


class ExplodingModel:
    source = "rules"

    def predict(self, x):
        raise RuntimeError("model broke")

    def learn(self, x, degraded):
        return None


def fetch(app, path="/", method="GET", headers=None):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            # identity unless a test asks otherwise: most tests look at the raw bytes
            return await client.request(method, path, headers={"Accept-Encoding": "identity", **(headers or {})})

    return asyncio.run(go())


def edge(**kw):
    settings = kw.pop("settings", Settings(fail_mode="closed"))
    return AdaptiveMiddleware(STOREFRONT, policy=POLICY, settings=settings, **kw)


def test_2g_gets_lite_4g_gets_full_unknown_gets_full(metric):
    before = metric("edge_requests_total", tier="lite", source="rules")
    lite = fetch(edge(), headers={"ECT": "2g"})
    assert lite.headers["edge-tier"] == "lite"
    assert "ads" not in lite.text and "grid" in lite.text and "Full page" in lite.text
    assert metric("edge_requests_total", tier="lite", source="rules") == before + 1

    full = fetch(edge(), headers={"ECT": "4g", "RTT": "50", "Downlink": "10"})
    assert full.headers["edge-tier"] == "full"
    assert full.text.replace(full.text[full.text.index('<p class="edge-switch"') : full.text.index("</body>")], "") == PAGE

    unknown = fetch(edge())
    assert unknown.headers["edge-tier"] == "full"
    assert 'edge;desc="full/none/unknown"' in unknown.headers["server-timing"]


class FixedModel:
    """A model that answers ``p`` and says ``source`` decided (any champion the challenger can elect)."""

    def __init__(self, source, p):
        self.source, self.p = source, p

    def predict(self, x):
        return self.p

    def learn(self, x, degraded):
        return None


def test_every_candidate_the_champion_challenger_can_elect_serves_and_is_counted(metric):
    # Regression: last_request as champion made every page a 500 (no metric series for its source).
    from edge.core import metrics
    from edge.learning.model import CANDIDATES

    assert set(CANDIDATES) == set(metrics.MODELS) and set(CANDIDATES) <= set(metrics.SOURCES)
    for source in CANDIDATES:
        for p, tier in ((0.9, "lite"), (0.1, "full")):
            before = metric("edge_requests_total", tier=tier, source=source)
            r = fetch(edge(model=FixedModel(source, p)))
            assert (r.status_code, r.headers["edge-tier"]) == (200, tier), source
            assert metric("edge_requests_total", tier=tier, source=source) == before + 1


def test_adapted_headers_are_safe_for_caches():
    r = fetch(edge(), headers={"ECT": "2g"})
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["cache-control"] == "private, max-age=60"
    assert r.headers["etag"] == 'W/"v1-lite"'
    vary = [v.strip() for v in r.headers["vary"].split(",")]
    assert vary[0] == "Accept-Encoding" and "ECT" in vary and "Save-Data" in vary
    assert "ECT" in r.headers["accept-ch"]
    timing = r.headers["server-timing"]
    for entry in ("upstream;dur=", "model;dur=", "rewrite;dur=", 'edge;desc="lite/rules/predicted"'):
        assert entry in timing


def test_full_tier_keeps_the_upstream_cache_policy_but_weakens_the_etag():
    r = fetch(edge(), headers={"ECT": "4g"})
    assert r.headers["cache-control"] == "public, max-age=60, s-maxage=600"
    assert r.headers["etag"] == 'W/"v1"'


@pytest.mark.parametrize(
    ("path", "method", "headers"),
    [
        ("/api", "GET", {}),  # JSON: the layout rules come with the policy-language issue
        ("/missing", "GET", {}),  # not a 200
        ("/", "HEAD", {}),
        ("/", "POST", {}),
        ("/raw?cache-control=no-transform", "GET", {}),
        ("/", "GET", {"Cache-Control": "no-transform"}),
    ],
)
def test_responses_edge_must_not_touch_pass_through_unchanged(path, method, headers):
    direct = fetch(STOREFRONT, path, method, headers={"ECT": "2g", **headers})
    through = fetch(edge(), path, method, headers={"ECT": "2g", **headers})
    assert through.status_code == direct.status_code
    assert through.content == direct.content
    assert "edge-tier" not in through.headers


def test_pages_over_the_size_cap_stream_through_unmodified():
    small_cap = Settings(fail_mode="closed", max_rewrite_bytes=10_000)
    direct = fetch(STOREFRONT, "/streamed")
    through = fetch(edge(settings=small_cap), "/streamed", headers={"ECT": "2g"})
    assert through.content == direct.content and len(through.content) == 100 * 1007
    declared = fetch(edge(settings=Settings(fail_mode="closed", max_rewrite_bytes=10)), "/", headers={"ECT": "2g"})
    assert declared.text == PAGE


def test_preference_cookie_and_save_data_override_the_prediction():
    r = fetch(edge(), headers={"ECT": "slow-2g", "Cookie": "a=b; edge_tier=full"})
    assert r.headers["edge-tier"] == "full" and 'full/override/preference' in r.headers["server-timing"]
    r = fetch(edge(), headers={"ECT": "4g", "Save-Data": "on"})
    assert r.headers["edge-tier"] == "lite"


def test_model_failure_fails_open_and_is_counted(metric):
    before = metric("edge_fail_open_total", stage="predict")
    r = fetch(edge(model=ExplodingModel(), settings=Settings(fail_mode="open")), headers={"ECT": "2g"})
    assert r.status_code == 200 and r.headers["edge-tier"] == "full" and "ads" in r.text
    assert metric("edge_fail_open_total", stage="predict") == before + 1


def test_model_failure_raises_in_strict_mode():
    with pytest.raises(AdaptError, match="predict"):
        fetch(edge(model=ExplodingModel()), headers={"ECT": "2g"})


def test_rewrite_failure_serves_the_original_bytes_and_is_counted(metric, monkeypatch):
    app = edge(settings=Settings(fail_mode="open"))

    class Broken:
        def rewrite(self, body, tier, link):
            raise ValueError("rewriter broke")

    app._compiled = (app.policy, Broken())
    before = metric("edge_fail_open_total", stage="rewrite")
    r = fetch(app, headers={"ECT": "2g"})
    direct = fetch(STOREFRONT)
    assert r.content == direct.content and r.headers["etag"] == '"v1"'
    assert metric("edge_fail_open_total", stage="rewrite") == before + 1


def test_bytes_saved_are_counted(metric):
    up = metric("edge_upstream_bytes_total", tier="lite")
    served = metric("edge_served_bytes_total", tier="lite")
    r = fetch(edge(), headers={"ECT": "2g"})
    assert metric("edge_upstream_bytes_total", tier="lite") - up == len(PAGE)
    assert metric("edge_served_bytes_total", tier="lite") - served == len(r.content)


def test_signed_app_reports_feed_the_cell_table_and_the_next_request_on_that_cell(metric):
    app = edge()
    before = metric("edge_labels_total", source="app", label="degraded")
    token = fetch(app, headers={"Edge-Cell": 'id="cell-9"'}).headers["edge-token"]
    for _ in range(10):
        # Each response's token comes back with the measurement of that response's download.
        report = f'token="{token}", ms=8000, bytes=40000'
        token = fetch(app, headers={"Edge-Cell": 'id="cell-9"', "Edge-Last-Request": report}).headers["edge-token"]
    assert metric("edge_labels_total", source="app", label="degraded") == before + 10
    # A different client on the same cell, with no measurement of its own, inherits the cell's congestion.
    r = fetch(app, headers={"Edge-Cell": 'id="cell-9", radio=lte'})
    assert r.headers["edge-tier"] == "lite"
    assert len(app.towers) == 1


def test_unsigned_app_reports_are_signals_but_never_labels_or_cell_statistics(metric):
    app = edge()
    before = metric("edge_labels_total", source="app", label="degraded")
    r = fetch(app, headers={"Edge-Cell": 'id="cell-7"', "Edge-Last-Request": "ms=8000, bytes=40000"})
    assert r.headers["edge-tier"] == "minimal"  # 40 kbit/s: this request's own signal, slow-2g
    assert len(app.towers) == 0
    assert metric("edge_labels_total", source="app", label="degraded") == before


def test_replayed_or_forged_app_tokens_are_refused_and_counted(metric):
    app = edge()
    token = fetch(app).headers["edge-token"]
    report = {"Edge-Last-Request": f'token="{token}", ms=8000, bytes=40000'}
    replayed, forged = metric("edge_feedback_rejected_total", reason="replayed"), metric("edge_feedback_rejected_total", reason="forged")
    assert fetch(app, headers=report).status_code == 200
    assert fetch(app, headers=report).status_code == 200  # the page is still served
    assert metric("edge_feedback_rejected_total", reason="replayed") == replayed + 1
    other = edge()  # another key
    assert fetch(other, headers={"Edge-Last-Request": f'token="{fetch(other).headers["edge-token"][:-2]}AA", ms=1, bytes=1'}).status_code == 200
    assert metric("edge_feedback_rejected_total", reason="forged") == forged + 1


def test_json_responses_carry_a_token_and_pass_through():
    r = fetch(edge(), "/api", headers={"ECT": "2g"})
    assert r.json() == {"a": 1}
    assert "edge-token" in r.headers and "edge-tier" not in r.headers


def test_html_pages_carry_the_beacon_with_their_token():
    r = fetch(edge(), headers={"ECT": "2g"})
    token = r.headers["edge-token"]
    assert f't:"{token}"' in r.text
    assert "/__edge/beacon" in r.text and "sendBeacon" in r.text


def test_edge_owns_its_path_prefix_even_in_process():
    assert fetch(STOREFRONT, "/__edge/anything").status_code == 200
    assert fetch(edge(), "/__edge/anything").status_code == 404
    switched = fetch(edge(), "/__edge/tier/full?next=/search%3Fq%3Dtea")
    assert switched.status_code == 303 and switched.headers["location"] == "/search?q=tea"
    assert "edge_tier=full" in switched.headers["set-cookie"]
    assert fetch(edge(), "/__edge/tier/bogus").status_code == 404
    assert fetch(edge(), "/__edge/tier/full?next=//evil.example/").headers["location"] == "/"


@pytest.mark.parametrize("upstream_coding", ["gzip", "identity"])
@pytest.mark.parametrize(("accept", "served_coding"), [("br, gzip", "br"), ("gzip;q=1, zstd;q=0.5", "gzip"), ("zstd", "zstd"), ("identity", None)])
def test_compressed_pages_are_decoded_rewritten_and_encoded_for_the_client(upstream_coding, accept, served_coding):
    from edge.transport.encoding import decode

    path = "/raw?content-encoding=gzip" if upstream_coding == "gzip" else "/raw"

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge()), base_url="http://shop") as client:
            async with client.stream("GET", path, headers={"ECT": "2g", "Accept-Encoding": accept}) as r:
                raw = b"".join([chunk async for chunk in r.aiter_raw()])
                return r, raw

    r, raw = asyncio.run(go())
    assert r.headers["edge-tier"] == "lite"
    assert r.headers.get("content-encoding") == served_coding
    assert int(r.headers["content-length"]) == len(raw)
    page = decode(raw, served_coding or "identity", 10**6)
    assert b"grid" in page and b"ads</div>" not in page
    assert "Accept-Encoding" in r.headers["vary"]


def test_compression_bombs_pass_through_unmodified_without_expanding():
    bomb = gzip.compress(b"<html><body>" + b" " * 50_000_000 + b"</body></html>")
    shop = Starlette(routes=[Route("/", lambda r: Response(bomb, media_type="text/html", headers={"content-encoding": "gzip"}))])
    app = AdaptiveMiddleware(shop, policy=POLICY, settings=Settings(fail_mode="closed", max_rewrite_bytes=1_000_000))

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            async with client.stream("GET", "/", headers={"ECT": "2g", "Accept-Encoding": "gzip"}) as r:
                return r, b"".join([chunk async for chunk in r.aiter_raw()])

    r, raw = asyncio.run(go())
    assert raw == bomb and r.headers["content-encoding"] == "gzip"
    assert "edge-tier" not in r.headers


def test_undecodable_bodies_fail_open(metric):
    broken = Starlette(routes=[Route("/", lambda r: Response(b"\x1f\x8bnot gzip", media_type="text/html", headers={"content-encoding": "gzip"}))])
    app = AdaptiveMiddleware(broken, policy=POLICY, settings=Settings(fail_mode="open"))
    before = metric("edge_fail_open_total", stage="decode")

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            async with client.stream("GET", "/", headers={"ECT": "2g"}) as r:
                return b"".join([chunk async for chunk in r.aiter_raw()])

    assert asyncio.run(go()) == b"\x1f\x8bnot gzip"
    assert metric("edge_fail_open_total", stage="decode") == before + 1


class ConditionalStorefront:
    """Answers 304 when If-None-Match names its ETag "v1" (weak comparison), else the page."""

    def __init__(self):
        self.seen = []

    async def __call__(self, scope, receive, send):
        inm = dict(scope["headers"]).get(b"if-none-match")
        self.seen.append(inm)
        if inm is not None and any(t.strip().removeprefix(b"W/") == b'"v1"' for t in inm.split(b",")):
            await HTMLResponse(status_code=304, headers={"etag": '"v1"'}, content=None)(scope, receive, send)
        else:
            await HTMLResponse(PAGE, headers={"etag": '"v1"'})(scope, receive, send)


def test_conditional_requests_never_get_a_304_for_another_tiers_page():
    shop = ConditionalStorefront()
    app = AdaptiveMiddleware(shop, policy=POLICY, settings=Settings(fail_mode="closed"))
    full = fetch(app, headers={"ECT": "4g"})
    lite = fetch(app, headers={"ECT": "2g"})
    assert (full.headers["etag"], lite.headers["etag"]) == ('W/"v1"', 'W/"v1-lite"')
    # A 2G shopper holding the full page's validator must get the lite page, not a 304.
    r = fetch(app, headers={"ECT": "2g", "If-None-Match": full.headers["etag"]})
    assert r.status_code == 200 and r.headers["edge-tier"] == "lite"
    assert shop.seen[-1] is None  # the full page's validator was not forwarded
    # Holding the lite page's own validator: a 304 naming the lite variant.
    r = fetch(app, headers={"ECT": "2g", "If-None-Match": lite.headers["etag"]})
    assert r.status_code == 304 and r.headers["etag"] == 'W/"v1-lite"' and r.headers["edge-tier"] == "lite"
    assert shop.seen[-1] == b'"v1"'
    # And the full tier revalidates its own.
    r = fetch(app, headers={"ECT": "4g", "If-None-Match": full.headers["etag"]})
    assert r.status_code == 304 and r.headers["etag"] == 'W/"v1"'


def test_holdback_clients_always_get_the_full_page_and_are_counted_apart(metric):
    from edge.pipeline.policy import holdback_draw

    policy = Policy.from_toml('[overrides]\nholdback = 0.5\n[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n')
    app = AdaptiveMiddleware(STOREFRONT, policy=policy, settings=Settings(fail_mode="closed"))
    # The draw is stable per client address (httpx's ASGI transport uses 127.0.0.1) and User-Agent.
    held = next(f"ua-{i}" for i in range(100) if holdback_draw(f"127.0.0.1 ua-{i}") < 0.5)
    served = next(f"ua-{i}" for i in range(100) if holdback_draw(f"127.0.0.1 ua-{i}") >= 0.5)
    before = metric("edge_holdback_request_duration_seconds_count")
    for _ in range(3):
        r = fetch(app, headers={"ECT": "slow-2g", "User-Agent": held})
        assert r.headers["edge-tier"] == "full" and "full/holdback/holdback" in r.headers["server-timing"]
    assert metric("edge_holdback_request_duration_seconds_count") == before + 3
    assert fetch(app, headers={"ECT": "slow-2g", "User-Agent": served}).headers["edge-tier"] == "minimal"
    # The shopper's own choice still beats the holdback.
    assert fetch(app, headers={"ECT": "4g", "User-Agent": held, "Cookie": "edge_tier=lite"}).headers["edge-tier"] == "lite"


def _decide_order(path, headers=None):
    """What happened, in order: decide calls and the storefront's steps, for one request through edge."""
    events = []

    async def storefront(scope, receive, send):
        events.append("storefront asked")
        await asyncio.sleep(0.01)  # the storefront at work: the loop runs other callbacks meanwhile
        events.append("storefront answers")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html"), (b"content-length", str(len(PAGE)).encode())]})
        await send({"type": "http.response.body", "body": PAGE.encode()})

    mw = AdaptiveMiddleware(storefront, policy=POLICY, settings=Settings(fail_mode="open"))
    real = mw.decide

    def counting(scope, now):
        events.append("decide")
        return real(scope, now)

    mw.decide = counting
    response = fetch(mw, path, headers={"ECT": "2g", **(headers or {})})
    return events, response


def test_a_page_is_decided_while_the_storefront_works_and_only_once():
    events, response = _decide_order("/shop/tea")
    assert events == ["storefront asked", "decide", "storefront answers"]
    assert response.headers["edge-tier"] == "lite"


@pytest.mark.parametrize(("path", "headers"), [("/static/app.JS", {}), ("/img/1", {"Sec-Fetch-Dest": "image"})])
def test_an_asset_request_is_decided_only_when_its_answer_is_html(path, headers):
    events, response = _decide_order(path, headers)
    assert events == ["storefront asked", "storefront answers", "decide"]
    assert response.headers["edge-tier"] == "lite"


@pytest.mark.parametrize("cache_bytes", [8 * 1024 * 1024, 0])
def test_a_page_served_again_reuses_its_layout_unless_the_cache_is_off(cache_bytes):
    from prometheus_client import REGISTRY

    def hits():
        return REGISTRY.get_sample_value("edge_rewrite_cache_total", {"result": "hit"})

    mw = edge(settings=Settings(fail_mode="closed", rewrite_cache_bytes=cache_bytes))
    before = hits()
    first, second = (fetch(mw, "/", headers={"ECT": "2g"}) for _ in range(2))
    assert first.headers["edge-tier"] == second.headers["edge-tier"] == "lite"
    assert b"ads" not in second.content and b"grid" in second.content
    # The same layout, each with its own token.
    assert first.headers["edge-token"] != second.headers["edge-token"]
    assert first.content.replace(first.headers["edge-token"].encode(), b"") == second.content.replace(second.headers["edge-token"].encode(), b"")
    assert hits() - before == (1 if cache_bytes else 0)


# --- header names in any case (issue 13 item 2): Django and others send them as written ----------


async def _drive(app, path="/", headers=(), method="GET"):
    """One request straight through ASGI with ``headers`` exactly as given (httpx would lower-case them)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "client": ("127.0.0.1", 5000), "server": ("shop", 80), "headers": list(headers),
    }  # fmt: skip
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start, body


def drive(app, path="/", headers=(), method="GET"):
    return asyncio.run(_drive(app, path, headers, method))


def names(start):
    return [n.decode("latin-1") for n, _ in start["headers"]]


def values(start, name):
    return [v.decode("latin-1") for n, v in start["headers"] if n.lower() == name.encode()]


def raw_app(headers, body=PAGE.encode(), status=200):
    """A storefront that sends ``headers`` exactly as given (names in any case)."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


MIXED_CASE = [
    (b"Content-Type", b"text/html; charset=utf-8"),
    (b"ETag", b'"v1"'),
    (b"Cache-Control", b"public, max-age=60, s-maxage=600"),
    (b"Vary", b"Accept-Encoding"),
    (b"X-Frame-Options", b"DENY"),
]


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "no-length"])
def test_mixed_case_response_header_names_are_read_at_lite(length):
    headers = MIXED_CASE + ([(b"Content-Length", str(len(PAGE)).encode())] if length else [])
    start, body = drive(edge_around(raw_app(headers)), headers=[(b"ect", b"2g"), (b"accept-encoding", b"identity")])
    assert values(start, "edge-tier") == ["lite"]
    assert b"ads</div>" not in body and b"grid" in body and b"Full page" in body
    # Each header edge recomputes appears once, whatever case the storefront wrote it in.
    assert values(start, "content-length") == [str(len(body))]
    assert values(start, "cache-control") == ["private, max-age=60"]
    assert values(start, "etag") == ['W/"v1-lite"']
    assert len(values(start, "vary")) == 1 and values(start, "vary")[0].startswith("Accept-Encoding, User-Agent")
    assert values(start, "content-type") == ["text/html; charset=utf-8"] and values(start, "x-frame-options") == ["DENY"]


def test_mixed_case_response_header_names_are_read_on_the_streamed_full_tier():
    headers = MIXED_CASE + [(b"Content-Length", str(len(PAGE)).encode())]
    start, body = drive(edge_around(raw_app(headers)), headers=[(b"ect", b"4g"), (b"rtt", b"50"), (b"downlink", b"10")])
    assert values(start, "edge-tier") == ["full"]
    assert values(start, "content-length") == [str(len(body))] and b"Light page" in body
    assert values(start, "cache-control") == ["public, max-age=60, s-maxage=600"] and values(start, "etag") == ['W/"v1"']


def test_mixed_case_content_encoding_is_decoded():
    headers = [(b"Content-Type", b"text/html"), (b"Content-Encoding", b"gzip")]
    start, body = drive(edge_around(raw_app(headers, gzip.compress(PAGE.encode()))), headers=[(b"ect", b"2g"), (b"accept-encoding", b"identity")])
    assert values(start, "edge-tier") == ["lite"] and values(start, "content-encoding") == []
    assert b"grid" in body and b"ads</div>" not in body


def test_mixed_case_304_names_the_tier_variant():
    async def shop(scope, receive, send):
        await send({"type": "http.response.start", "status": 304, "headers": [(b"ETag", b'"v1"'), (b"Vary", b"Accept-Encoding")]})
        await send({"type": "http.response.body", "body": b""})

    start, _ = drive(edge_around(shop), headers=[(b"ect", b"2g"), (b"if-none-match", b'W/"v1-lite"')])
    assert start["status"] == 304 and values(start, "etag") == ['W/"v1-lite"'] and values(start, "edge-tier") == ["lite"]
    assert len(values(start, "vary")) == 1


def test_pass_through_responses_keep_their_header_names_as_written():
    headers = [(b"Content-Type", b"image/png"), (b"Content-Length", b"3"), (b"X-Custom", b"1")]
    start, body = drive(edge_around(raw_app(headers, b"png")), headers=[(b"ect", b"2g")])
    assert start["headers"] == headers and body == b"png"
    start, body = drive(edge_around(raw_app([(b"Content-Type", b"application/json")], b"{}")), headers=[(b"ect", b"2g")])
    assert names(start)[0] == "Content-Type" and values(start, "edge-token") and body == b"{}"


@pytest.mark.parametrize(
    ("request_headers", "tier"),
    [
        ([(b"ECT", b"2g")], "lite"),
        ([(b"ECT", b"slow-2g"), (b"Cookie", b"a=b; edge_tier=full")], "full"),
        ([(b"ECT", b"4g"), (b"Save-Data", b"on")], "lite"),
        ([(b"Edge-Last-Request", b"ms=8000, bytes=40000")], "minimal"),
        ([(b"ECT", b"2g"), (b"Cache-Control", b"no-transform")], None),
        ([(b"ECT", b"2g"), (b"Sec-Fetch-Dest", b"document")], "lite"),
    ],
)
def test_mixed_case_request_header_names_are_read(request_headers, tier):
    start, body = drive(edge_around(STOREFRONT_RAW), headers=[(b"Accept-Encoding", b"identity"), *request_headers])
    assert values(start, "edge-tier") == ([tier] if tier else [])
    if tier is None:
        assert body == PAGE.encode()


def test_mixed_case_if_none_match_is_translated_for_the_storefront():
    shop = ConditionalStorefront()
    app = AdaptiveMiddleware(shop, policy=POLICY, settings=Settings(fail_mode="closed"))
    start, _ = drive(app, headers=[(b"ECT", b"2g"), (b"If-None-Match", b'W/"v1-lite"')])
    assert start["status"] == 304 and values(start, "etag") == ['W/"v1-lite"']
    assert shop.seen[-1] == b'"v1"'
    start, _ = drive(app, headers=[(b"ECT", b"2g"), (b"If-None-Match", b'W/"v1"')])  # the full page's: not this tier's
    assert start["status"] == 200 and shop.seen[-1] is None


def test_edge_endpoints_read_request_headers_in_any_case():
    app = edge()
    seen = []

    async def endpoints(scope, receive, send):
        seen.append(scope["headers"])
        await Response(status_code=204)(scope, receive, send)

    app.endpoints = endpoints
    drive(app, "/__edge/beacon", headers=[(b"Cookie", b"edge_m=x")], method="POST")
    assert seen == [[(b"cookie", b"edge_m=x")]]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([(b"X-Only", b"1")], "no-content-type"),
        ([(b"Content-Type", b"text/html"), (b"Content-Length", b"12x")], "bad-length"),
        ([(b"Content-Type", b"text/html"), (b"Content-Encoding", b"compress")], "coding"),
    ],
)
def test_a_response_edge_cannot_classify_passes_through_and_is_counted(metric, headers, reason):
    before = metric("edge_unclassified_responses_total", reason=reason)
    start, body = drive(edge_around(raw_app(headers)), headers=[(b"ect", b"2g")])
    assert start["headers"] == headers and body == PAGE.encode()
    assert metric("edge_unclassified_responses_total", reason=reason) == before + 1


def test_responses_edge_chooses_not_to_adapt_are_not_counted_as_unclassified(metric):
    total = lambda: sum(metric("edge_unclassified_responses_total", reason=r) for r in ("no-content-type", "bad-length", "coding"))  # noqa: E731
    before = total()
    fetch(edge(), "/missing", headers={"ECT": "2g"})  # a 404
    drive(edge_around(raw_app([(b"Content-Type", b"image/png")], b"png")), headers=[(b"ect", b"2g")])
    drive(edge_around(raw_app([], b"")), method="HEAD")
    assert total() == before


STOREFRONT_RAW = raw_app([(b"Content-Type", b"text/html; charset=utf-8"), (b"Content-Length", str(len(PAGE)).encode())])


def edge_around(app, **kw):
    return AdaptiveMiddleware(app, policy=POLICY, settings=kw.pop("settings", Settings(fail_mode="closed")), **kw)


# --- a real Django application in-process ---------------------------------------------------------


DJANGO_PAGE = (
    "<!doctype html><html><head><title>Django shop</title></head><body>"
    '<div class="row"><div class="col-md-8" data-edge-widget="grid">grid</div>'
    '<div class="col-md-4" data-edge-widget="ads">ads</div></div></body></html>'
)


@pytest.fixture
def django_app():
    """Django's own ASGI handler around a two-view shop, with its stock HTTP middleware.

    Django sends response header names as written (``Content-Type``, ``ETag``, ``Content-Length``).
    Settings are configured here unless something else in this process already did (then the shop's
    URLs and middleware are put in place with ``override_settings``).
    """
    django = pytest.importorskip("django")
    import os
    import sys
    import types

    from django.conf import settings

    if not settings.configured and "DJANGO_SETTINGS_MODULE" not in os.environ:
        settings.configure(SECRET_KEY="edge-tests", DEBUG=False, USE_TZ=True, INSTALLED_APPS=[], DATABASES={})
    django.setup(set_prefix=False)
    from django.core.handlers.asgi import ASGIHandler
    from django.http import HttpResponse
    from django.test.utils import override_settings
    from django.urls import path

    async def home(request):
        return HttpResponse(DJANGO_PAGE, headers={"Cache-Control": "public, max-age=60"})

    async def untyped(request):
        response = HttpResponse(DJANGO_PAGE)
        del response["Content-Type"]
        return response

    urls = types.ModuleType("edge_test_django_urls")
    urls.urlpatterns = [path("", home), path("untyped", untyped)]
    sys.modules[urls.__name__] = urls
    middleware = [
        "django.middleware.gzip.GZipMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.http.ConditionalGetMiddleware",
    ]
    try:
        with override_settings(ROOT_URLCONF=urls.__name__, ALLOWED_HOSTS=["*"], MIDDLEWARE=middleware, APPEND_SLASH=False):
            yield ASGIHandler()
    finally:
        sys.modules.pop(urls.__name__, None)


def test_django_pages_are_adapted_in_process(django_app, metric):
    direct = fetch(django_app, headers={"ECT": "2g"})
    assert any(n == b"Content-Type" for n, _ in direct.headers.raw)  # as Django writes it
    app = AdaptiveMiddleware(django_app, policy=POLICY, settings=Settings(fail_mode="closed"))

    lite = fetch(app, headers={"ECT": "2g"})
    assert lite.status_code == 200 and lite.headers["edge-tier"] == "lite"
    assert "ads</div>" not in lite.text and "grid" in lite.text and "Full page" in lite.text
    assert int(lite.headers["content-length"]) == len(lite.content)
    assert lite.headers["cache-control"] == "private, max-age=60"
    assert lite.headers["etag"].startswith('W/"') and lite.headers["etag"].endswith('-lite"')
    assert lite.headers["content-type"] == "text/html; charset=utf-8"

    full = fetch(app, headers={"ECT": "4g", "RTT": "50", "Downlink": "10"})
    assert full.headers["edge-tier"] == "full" and "Light page" in full.text
    assert int(full.headers["content-length"]) == len(full.content)

    # Django's GZipMiddleware compresses for a client that accepts gzip: edge decodes, rewrites, re-encodes.
    zipped = fetch(app, headers={"ECT": "2g", "Accept-Encoding": "gzip"})
    assert zipped.headers["edge-tier"] == "lite" and zipped.headers["content-encoding"] == "gzip"
    assert "ads</div>" not in zipped.text and "grid" in zipped.text

    # ConditionalGetMiddleware answers the lite page's own validator with a 304 for the lite variant.
    again = fetch(app, headers={"ECT": "2g", "If-None-Match": lite.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == lite.headers["etag"] and again.headers["edge-tier"] == "lite"

    # A 200 with no Content-Type: edge cannot tell what it is; it passes and is counted.
    before = metric("edge_unclassified_responses_total", reason="no-content-type")
    untyped = fetch(app, "/untyped", headers={"ECT": "2g"})
    assert untyped.content == DJANGO_PAGE.encode() and "edge-tier" not in untyped.headers
    assert metric("edge_unclassified_responses_total", reason="no-content-type") == before + 1
