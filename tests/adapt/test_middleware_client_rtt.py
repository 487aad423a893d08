"""AdaptiveMiddleware reads the server-side round trip from the scope extension, or from a trusted balancer's header."""

from __future__ import annotations

import time

from starlette.applications import Starlette

from edge import AdaptiveMiddleware, Policy, Settings
from edge.adapt.responder import Responder
from edge.pipeline.client_rtt import SCOPE_EXTENSION

POLICY = Policy.from_toml('[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n')
SAFARI = b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"


def _middleware(**settings: str) -> AdaptiveMiddleware:
    return AdaptiveMiddleware(Starlette(), policy=POLICY, settings=Settings(fail_mode="closed", model="rules", **settings))


def _scope(extension: dict | None, *headers: tuple[bytes, bytes], client: str = "203.0.113.9") -> dict:
    scope = {
        "type": "http", "method": "GET", "path": "/", "client": (client, 50000),
        "headers": [(b"host", b"shop"), (b"user-agent", SAFARI), *headers],
    }  # fmt: skip
    if extension is not None:
        scope["extensions"] = {SCOPE_EXTENSION: extension}
    return scope


def test_direct_a_slow_socket_serves_a_hintless_safari_lite() -> None:
    verdict = _middleware().decide(_scope({"peer": "203.0.113.9", "rtt_ms": 412.0, "rttvar_ms": 40.0, "min_rtt_ms": 400.0}), time.time())
    assert verdict.features["tcp_rtt_ms"] == 412.0 and verdict.features["tcp_min_rtt_ms"] == 400.0
    assert "rtt_ms" not in verdict.features  # Safari sent no RTT hint: the server's figure is its own key
    assert verdict.decision.tier == "lite"


def test_direct_a_fast_socket_is_a_feature_but_no_evidence() -> None:
    verdict = _middleware().decide(_scope({"peer": "203.0.113.9", "rtt_ms": 0.04}), time.time())
    assert verdict.features["tcp_rtt_ms"] == 0.04
    assert verdict.decision.tier == "full" and verdict.decision.source == "none"


def test_direct_ignores_the_header_anyone_could_send() -> None:
    verdict = _middleware(forwarded_allow_ips="*").decide(_scope({"peer": "203.0.113.9"}, (b"x-client-rtt", b"900000")), time.time())
    assert "tcp_rtt_ms" not in verdict.features


def test_behind_proxy_believes_only_the_trusted_balancer(metric) -> None:
    edge = _middleware(client_socket="behind-proxy", forwarded_allow_ips="10.0.0.0/8", client_rtt_header="X-Shopper-RTT")
    # The balancer's own socket figures are not the shopper's: never used.
    trusted = edge.decide(_scope({"peer": "10.1.2.3", "rtt_ms": 0.2}, (b"x-shopper-rtt", b"412000"), client="198.51.100.7"), time.time())
    assert trusted.features["tcp_rtt_ms"] == 412.0 and "tcp_min_rtt_ms" not in trusted.features
    assert trusted.decision.tier == "lite"

    before = metric("edge_client_rtt_missing_total", reason="header_untrusted")
    forged = edge.decide(_scope({"peer": "203.0.113.9"}, (b"x-shopper-rtt", b"412000")), time.time())
    assert "tcp_rtt_ms" not in forged.features and forged.decision.tier == "full"
    assert metric("edge_client_rtt_missing_total", reason="header_untrusted") == before + 1

    before = metric("edge_client_rtt_missing_total", reason="header_malformed")
    garbled = edge.decide(_scope({"peer": "10.1.2.3"}, (b"x-shopper-rtt", b"412ms")), time.time())
    assert "tcp_rtt_ms" not in garbled.features and garbled.decision.tier == "full"
    assert metric("edge_client_rtt_missing_total", reason="header_malformed") == before + 1


def test_a_server_without_the_hook_gives_no_figures_and_no_error() -> None:
    verdict = _middleware().decide(_scope(None), time.time())
    assert not any(key.startswith("tcp_") for key in verdict.features)
    verdict = _middleware().decide(_scope({"peer": None, "rtt_ms": "fast"}), time.time())  # a foreign server's junk
    assert not any(key.startswith("tcp_") for key in verdict.features)


def test_behind_proxy_without_trusted_addresses_says_so_at_start(caplog) -> None:
    with caplog.at_level("WARNING", logger="edge.adapt"):
        _middleware(client_socket="behind-proxy")
    assert any("EDGE_FORWARDED_ALLOW_IPS is empty" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="edge.adapt"):
        _middleware(client_socket="behind-proxy", forwarded_allow_ips="10.0.0.1")
    assert not any("EDGE_FORWARDED_ALLOW_IPS is empty" in r.getMessage() for r in caplog.records)


def test_the_queue_wait_is_server_time_in_the_token_and_no_feature() -> None:
    """``queued_ms`` (edge's own queue, edge.pipeline.client_rtt) goes into the token's server time ``u``, never
    into the features; a scope without it, or with a foreign server's junk in it, issues the storefront's time."""
    edge = _middleware()
    figures = {"peer": "203.0.113.9", "rtt_ms": 412.0, "rttvar_ms": 40.0}
    tokens = {}
    for name, extension in [
        ("waited", {**figures, "queued_ms": 640.0}),
        ("prompt", figures),
        ("junk", {**figures, "queued_ms": "640"}),
        ("no hook", None),
    ]:
        responder = Responder(edge, _scope(extension), _no_send)
        responder.verdict = edge.decide(responder.scope, time.time())
        responder.upstream_s = 0.0125
        payload = edge.feedback.signer.verify(responder._issue(responder.verdict, "full"), time.time())
        tokens[name] = payload
    assert tokens["waited"]["u"] == 652.5  # 640 ms unread in the socket + 12.5 ms of storefront
    assert tokens["prompt"]["u"] == tokens["junk"]["u"] == tokens["no hook"]["u"] == 12.5
    assert tokens["waited"]["x"] == tokens["prompt"]["x"] and not any("queue" in key for key in tokens["waited"]["x"])


async def _no_send(message: dict) -> None:
    raise AssertionError("nothing is sent")
