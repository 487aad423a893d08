"""Signed tokens, the beacon, and labels: each rejection reason, and learning from what comes back."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from edge import AdaptiveMiddleware, Policy, Settings
from edge.learning.feedback import Feedback, FeedbackRejected, Measurement, ReplayGuard, TokenSigner, measure_beacon
from edge.learning.model import RuleModel
from edge.pipeline.labels import LabelRule
from edge.pipeline.towers import TowerTable

KEY, OLD_KEY = b"k" * 32, b"o" * 32


class RecordingModel(RuleModel):
    def __init__(self):
        self.seen = []

    def learn(self, x, degraded):
        self.seen.append((x, degraded))


def make_feedback(**kw):
    model = RecordingModel()
    fb = Feedback(TokenSigner([KEY], ttl_s=600), model, TowerTable(), LabelRule(), **kw)
    return fb, model


def beacon_body(token, nav=(0, 400, 2400, 100_000), res=(), c=None):
    body = {"t": token, "nav": list(nav), "res": [list(r) for r in res]}
    if c is not None:
        body["c"] = c
    return orjson.dumps(body)


def test_tokens_round_trip_and_rotate_keys():
    old = TokenSigner([OLD_KEY]).sign({"d": "lite"}, now=100.0)
    rotated = TokenSigner([KEY, OLD_KEY])
    assert rotated.verify(old, now=101.0)["d"] == "lite"
    with pytest.raises(FeedbackRejected, match="forged"):
        TokenSigner([KEY]).verify(old, now=101.0)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not a token", "malformed"),
        ("!!!.???", "malformed"),
        ("x" * 5000, "malformed"),
        (TokenSigner([b"z" * 32]).sign({}, now=100.0), "forged"),
        (TokenSigner([KEY]).sign({}, now=100.0 - 601), "expired"),
        (TokenSigner([KEY]).sign({}, now=100.0 + 3600), "expired"),  # from the future
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token, reason):
    with pytest.raises(FeedbackRejected) as info:
        TokenSigner([KEY], ttl_s=600).verify(token, now=100.0)
    assert info.value.reason == reason


def test_tampering_with_the_payload_is_forgery():
    token = TokenSigner([KEY]).sign({"x": {"ect": "4g"}}, now=100.0)
    body, mac = token.split(".")
    tampered = orjson.dumps({**orjson.loads(__import__("base64").urlsafe_b64decode(body + "==")), "x": {"ect": "2g"}})
    forged = __import__("base64").urlsafe_b64encode(tampered).rstrip(b"=").decode() + "." + mac
    with pytest.raises(FeedbackRejected, match="forged"):
        TokenSigner([KEY]).verify(forged, now=100.0)


def test_cookie_tokens_and_feedback_tokens_are_not_interchangeable():
    signer = TokenSigner([KEY])
    cookie = signer.sign({"k": 100.0}, now=100.0, purpose=b"m")
    with pytest.raises(FeedbackRejected, match="forged"):
        signer.verify(cookie, now=100.0)


def test_measurement_from_beacon_timings():
    # 100 KB document from 400 to 2400 ms, RTT = 400 − 0 − 100 ms server time.
    m = measure_beacon({"nav": [0, 400, 2400, 100_000]}, server_ms=100.0)
    assert m == Measurement(kbps=400.0, rtt_ms=300.0)
    # Parallel image downloads share the link: the union of intervals, not the sum.
    m = measure_beacon({"nav": [0, 100, 200, 10_000], "res": [[200, 1200, 50_000], [200, 1200, 50_000]]}, server_ms=0.0)
    assert m.kbps == pytest.approx(110_000 * 8 / 1100)
    # Too few bytes for throughput; still an RTT.
    assert measure_beacon({"nav": [0, 1500, 1510, 2000]}, server_ms=10.0) == Measurement(None, 1490.0)
    # No timings at all: Chromium's own estimate.
    assert measure_beacon({"c": ["2g", 1800, 0.05]}, server_ms=0.0) == Measurement(50.0, 1800.0)


@pytest.mark.parametrize(
    "beacon",
    [
        {"nav": [0, 1]},
        {"nav": [0, 500, 100, 1000]},  # ends before it starts
        {"nav": [0, "400", 800, 1000]},
        {"nav": [0, float("inf"), 800, 1000]},
        {"nav": [0, 400, 800, -5]},
        {"res": "lots"},
        {"res": [[1, 2]]},
        {"res": [[0, 1, 1]] * 101},
    ],
)
def test_malformed_timings_are_refused(beacon):
    with pytest.raises(FeedbackRejected, match="malformed"):
        measure_beacon(beacon, server_ms=0.0)


def test_beacon_labels_the_tokens_features_and_feeds_the_cell(metric):
    fb, model = make_feedback()
    token = fb.issue({"ect": "3g"}, "lite", "rules", 0.7, 100.0, "cell-1", now=1000.0)
    before = metric("edge_labels_total", source="beacon", label="degraded")
    payload, m, label = fb.beacon(beacon_body(token), now=1001.0)
    assert label is True and model.seen == [({"ect": "3g"}, True)]
    # The beacon came from an unknown address ("?"): its own view of the cell has the sample, nobody else's.
    assert fb.towers.lookup("cell-1", now=1001.0, client="?").degraded_share == 1.0
    assert fb.towers.lookup("cell-1", now=1001.0, client="203.0.113.1") is None
    assert metric("edge_labels_total", source="beacon", label="degraded") == before + 1


def test_each_rejection_reason_is_counted_and_never_reaches_the_model(metric):
    fb, model = make_feedback(guard=ReplayGuard(max_entries=1, window_s=600))
    good = fb.issue({}, "full", "none", None, 1.0, None, now=1000.0)
    cases = [
        (b"x" * 9000, "oversized"),
        (b"{not json", "malformed"),
        (b'{"t": 5}', "malformed"),
        (beacon_body(TokenSigner([b"q" * 32]).sign({}, now=1000.0)), "forged"),
        (beacon_body(fb.issue({}, "full", "none", None, 1.0, None, now=0.0)), "expired"),
    ]
    for body, reason in cases:
        before = metric("edge_feedback_rejected_total", reason=reason)
        with pytest.raises(FeedbackRejected, match=reason):
            fb.beacon(body, now=1000.0)
        assert metric("edge_feedback_rejected_total", reason=reason) == before + 1
    fb.beacon(beacon_body(good), now=1000.0)
    with pytest.raises(FeedbackRejected, match="replayed"):
        fb.beacon(beacon_body(good), now=1000.0)
    another = fb.issue({}, "full", "none", None, 1.0, None, now=1000.0)
    with pytest.raises(FeedbackRejected, match="overloaded"):  # the guard is full of unexpired nonces
        fb.beacon(beacon_body(another), now=1000.0)
    assert len(model.seen) == 1


def test_replay_guard_stays_bounded_under_a_flood():
    guard = ReplayGuard(max_entries=1000, window_s=60)
    for i in range(100_000):
        guard.admit(i, issued=i / 100, now=i / 100)
    assert len(guard) <= 1000


# In-process: the middleware around a storefront, a page, its beacon, and the next page view.

PAGE = '<html><body><div data-edge-widget="ads">ads</div><p>shop</p></body></html>'
STOREFRONT = Starlette(routes=[Route("/", lambda r: HTMLResponse(PAGE))])


def run(app, requests):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            return [await client.request(m, u, **kw) for m, u, kw in requests]

    return asyncio.run(go())


def test_a_slow_beacon_makes_the_next_page_view_lite():
    app = AdaptiveMiddleware(
        STOREFRONT,
        policy=Policy.from_toml('[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n'),
        settings=Settings(fail_mode="closed", feedback_key="s" * 32),
    )

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            first = await client.get("/")
            token = first.headers["edge-token"]
            # 100 KB in 2 s: 400 kbit/s, a 2G-like load.
            accepted = await client.post("/__edge/beacon", content=beacon_body(token), headers={"content-type": "text/plain"})
            again = await client.post("/__edge/beacon", content=beacon_body(token))
            forged = await client.post("/__edge/beacon", content=beacon_body(token[:-3] + "AAA"))
            huge = await client.post("/__edge/beacon", content=b"x" * 100_000)
            second = await client.get("/")  # the client now carries the signed measurement cookie
            return first, accepted, again, forged, huge, second

    first, accepted, again, forged, huge, second = asyncio.run(go())
    assert first.headers["edge-tier"] == "full"
    assert accepted.status_code == 204 and "edge_m=" in accepted.headers["set-cookie"]
    assert (again.status_code, forged.status_code, huge.status_code) == (409, 403, 413)
    assert second.headers["edge-tier"] == "lite"
    assert "ads" not in second.text


def test_measurement_cookie_keeps_the_last_throughput_and_the_clients_average():
    fb, _ = make_feedback()
    first = fb.read_measurement_cookie(fb.measurement_cookie(Measurement(400.0, 300.0), "c1", now=100.0), 101.0, 1800)
    assert (first["k"], first["kt"], first["a"], first["r"], first["c"]) == (400.0, 100.0, 400.0, 300.0, "c1")
    # A light page's beacon measured only its round trip: the throughput (and its time) carry over.
    second = fb.read_measurement_cookie(fb.measurement_cookie(Measurement(None, 120.0), None, 200.0, first), 201.0, 1800)
    assert (second["k"], second["kt"], second["a"], second["r"]) == (400.0, 100.0, 400.0, 120.0)
    # A new throughput moves the average geometrically (weight 0.3 for the newest).
    third = fb.read_measurement_cookie(fb.measurement_cookie(Measurement(4000.0, None), None, 300.0, second), 301.0, 1800)
    assert third["k"] == 4000.0 and third["a"] == pytest.approx(798.1, abs=0.1)
    # Older than the cookie's age limit: gone.
    assert fb.read_measurement_cookie(fb.measurement_cookie(Measurement(1.0, None), None, 0.0), 5000.0, 1800) is None


# The threat model (docs/feedback.md): budgets, plausibility, the workers' shared replay table.


def test_a_client_over_its_budget_is_throttled_before_the_guard_remembers_anything(metric):
    from edge.learning.trust import LabelBudget

    fb, model = make_feedback()
    fb.budget = LabelBudget(client_burst=3, client_rate=0.0, network_burst=100, network_rate=0.0)
    tokens = [fb.issue({"ect": "3g"}, "lite", "rules", 0.7, 100.0, None, now=1000.0) for _ in range(5)]
    statuses = []
    for token in tokens:
        try:
            fb.beacon(beacon_body(token), now=1003.0, client="198.51.100.9")
            statuses.append("ok")
        except FeedbackRejected as exc:
            statuses.append(exc.reason)
    assert statuses == ["ok", "ok", "ok", "throttled", "throttled"]
    assert len(fb.guard) == 3 and len(model.seen) == 3
    # Another client is not affected; a replay of an accepted token is a replay, not a throttle.
    fb.beacon(beacon_body(tokens[3]), now=1003.0, client="203.0.113.5")
    with pytest.raises(FeedbackRejected, match="replayed"):
        fb.beacon(beacon_body(tokens[0]), now=1003.0, client="198.51.100.9")


def test_ipv6_clients_share_a_budget_by_64():
    from edge.learning.trust import LabelBudget

    budget = LabelBudget(client_burst=2, client_rate=0.0, network_burst=100, network_rate=0.0)
    assert budget.take("2001:db8:1:2::1", 0.0) and budget.take("2001:db8:1:2:ffff::9", 0.0)
    assert not budget.take("2001:db8:1:2:1234::1", 0.0)
    assert budget.take("2001:db8:1:3::1", 0.0)


def test_label_budgets_stay_bounded_under_a_flood_of_addresses():
    from edge.learning.trust import LabelBudget

    budget = LabelBudget(max_keys=1000)
    for i in range(50_000):
        budget.take(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", now=float(i))
    assert len(budget.clients) == 1000 and len(budget.networks) <= 1000


def test_a_beacon_claiming_a_download_longer_than_edge_saw_is_untrusted(metric):
    fb, model = make_feedback()
    token = fb.issue({"ect": "3g"}, "lite", "rules", 0.7, 100.0, "cell-1", now=1000.0)
    before = metric("edge_labels_untrusted_total", reason="too-slow-for-the-clock")
    # 2 s of download (400 → 2400 ms), received 0.2 s after edge sent the page: impossible.
    _, _, label = fb.beacon(beacon_body(token), now=1000.2, client="198.51.100.9")
    assert label is True and model.seen  # it is still its own client's measurement
    assert metric("edge_labels_untrusted_total", reason="too-slow-for-the-clock") == before + 1
    assert fb.towers.lookup("cell-1", now=1000.2, client="198.51.100.9") is not None
    fb.towers.min_clients = 0
    assert fb.towers.lookup("cell-1", now=1000.2, client="203.0.113.1") is None  # never shown to others
    # Received after the download could have ended: trusted.
    token = fb.issue({"ect": "3g"}, "lite", "rules", 0.7, 100.0, "cell-2", now=1000.0)
    fb.beacon(beacon_body(token), now=1002.5, client="198.51.100.9")
    assert fb.towers.lookup("cell-2", now=1002.5, client="203.0.113.1") is not None


@pytest.mark.parametrize(
    ("report", "server_ms", "expected"),
    [
        # ttfb 1,600 ms on a page the storefront took 1,500 ms to make: a 100 ms round trip, 64 KB in 200 ms.
        ({"ms": 1800.0, "size": 65536.0, "ttfb_ms": 1600.0}, 1500.0, False),
        # The same report for a page made in 10 ms: a 1.6 s round trip.
        ({"ms": 1800.0, "size": 65536.0, "ttfb_ms": 1600.0}, 10.0, True),
        # No ttfb: 1.8 s for 8 KB stands for the round trips, less the 1,500 ms the storefront took: 300 ms, no label.
        ({"ms": 1800.0, "size": 8192.0, "ttfb_ms": None}, 1500.0, None),
        ({"ms": 1800.0, "size": 8192.0, "ttfb_ms": None}, 10.0, True),
        # No ttfb, 200 KB: its throughput is over the time the network had it, 2,000 - 1,500 ms (3,277 kbit/s).
        ({"ms": 2000.0, "size": 204800.0, "ttfb_ms": None}, 1500.0, False),
        ({"ms": 2000.0, "size": 204800.0, "ttfb_ms": None}, 10.0, True),  # (823 kbit/s... and a 2 s round trip)
    ],
    ids=["ttfb-slow-storefront", "ttfb-slow-network", "no-ttfb-slow-storefront", "no-ttfb-slow-network", "large-slow-storefront", "large-slow-network"],
)
def test_an_app_report_takes_the_server_time_off_as_the_beacon_does(report, server_ms, expected):
    """The token's server time (the storefront's, and edge's queue) is not the network's: a slow storefront page
    reported by an app is no slow network, as for a browser's beacon."""
    fb, model = make_feedback()
    token = fb.issue({"ect": "4g"}, "full", "rules", 0.1, server_ms, None, now=1000.0)
    label = fb.app_report(token, report["ms"], report["size"], now=1005.0, ttfb_ms=report["ttfb_ms"], client="198.51.100.7")
    assert label is expected
    assert model.seen == ([] if expected is None else [({"ect": "4g"}, expected)])


def test_workers_share_one_replay_table(tmp_path):
    from edge.learning.feedback import SHARED_GUARD_FILE, SharedReplayGuard, shared_guard_for_workers

    env = {"EDGE_WORKER_INDEX": "0", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert shared_guard_for_workers(100, 600.0, {}) is None
    first, second = shared_guard_for_workers(100, 600.0, env), shared_guard_for_workers(100, 600.0, {**env, "EDGE_WORKER_INDEX": "1"})
    assert (tmp_path / SHARED_GUARD_FILE).exists()
    fb1, _ = make_feedback()
    fb2, _ = make_feedback()
    fb1.shared_guard, fb2.shared_guard = first, second
    fb2.signer = fb1.signer
    token = fb1.issue({"ect": "3g"}, "lite", "rules", 0.7, 100.0, None, now=1000.0)
    fb1.beacon(beacon_body(token), now=1003.0, client="198.51.100.9")
    with pytest.raises(FeedbackRejected, match="replayed"):
        fb2.beacon(beacon_body(token), now=1003.0, client="198.51.100.9")
    # Bounded: a full neighbourhood refuses rather than forgets; expired slots are free again.
    small = SharedReplayGuard(str(tmp_path / "small"), max_entries=16, window_s=10.0)
    results = [small.admit(n, issued=0.0, now=1.0) for n in range(1, 200)]
    assert results.count(True) == small.slots and None in results
    assert small.admit(10_000, issued=20.0, now=20.0) is True
