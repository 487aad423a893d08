"""The signed tier cookie (edge.adapt.tier_cookie) and the middleware keeping a client's tier with it."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from edge import AdaptiveMiddleware, Policy, Settings
from edge.adapt.tier_cookie import TIER_COOKIE, TierCookie
from edge.learning.feedback import Measurement
from edge.learning.tokens import TokenSigner
from edge.pipeline.policy.stability import LastTier

KEY = b"k" * 32


@pytest.fixture
def cookies() -> TierCookie:
    return TierCookie(TokenSigner([KEY]), dwell_s=600.0)


def test_round_trip_with_an_unconfirmed_crossing(cookies: TierCookie) -> None:
    value = cookies.issue(LastTier("lite", 1000.0, "full"))
    assert cookies.read(value, 1001.0) == LastTier("lite", 1000.0, "full")


def test_expired_after_the_dwell_time(cookies: TierCookie) -> None:
    value = cookies.issue(LastTier("minimal", 1000.0))
    assert cookies.read(value, 1599.0) == LastTier("minimal", 1000.0)
    assert cookies.read(value, 1600.0) is None
    assert cookies.read(value, 99_999.0) is None


def test_a_cookie_from_the_future_is_refused(cookies: TierCookie) -> None:
    assert cookies.read(cookies.issue(LastTier("lite", 5000.0)), 1000.0) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-5] + ("A" if v[-5] != "A" else "B") + v[-4:],  # the MAC (not its last character: 2 of its bits are padding)
        lambda v: "x" + v[1:],  # the payload
        lambda v: v.split(".")[0],  # no MAC
        lambda v: v + v,
        lambda v: "",
        lambda v: "not a cookie at all \x00\xff",
        lambda v: "." * 3000,
    ],
)
def test_tampered_or_malformed_values_read_as_absent(cookies: TierCookie, tamper) -> None:  # noqa: ANN001
    assert cookies.read(tamper(cookies.issue(LastTier("lite", 1000.0))), 1001.0) is None


def test_another_key_or_another_purpose_is_refused(cookies: TierCookie) -> None:
    other = TierCookie(TokenSigner([b"o" * 32]), dwell_s=600.0)
    assert cookies.read(other.issue(LastTier("lite", 1000.0)), 1001.0) is None
    signer = TokenSigner([KEY])
    assert cookies.read(signer.sign({"d": "lite"}, 1000.0), 1001.0) is None  # a feedback token ("t")
    assert cookies.read(signer.sign({"d": "lite"}, 1000.0, purpose=b"m"), 1001.0) is None  # the measurement cookie


def test_a_signed_payload_naming_no_tier_is_ignored(cookies: TierCookie) -> None:
    signer = TokenSigner([KEY])
    assert cookies.read(signer.sign({"d": "huge"}, 1000.0, purpose=b"s"), 1001.0) is None
    assert cookies.read(signer.sign({"d": "lite", "p": 7}, 1000.0, purpose=b"s"), 1001.0) is None


def test_rotation_keeps_the_previous_keys_cookies_valid() -> None:
    old = TierCookie(TokenSigner([b"o" * 32]), dwell_s=600.0)
    rotated = TierCookie(TokenSigner([KEY, b"o" * 32]), dwell_s=600.0)
    assert rotated.read(old.issue(LastTier("lite", 1000.0)), 1001.0) == LastTier("lite", 1000.0)


# ------------------------------------------------------------------ in the middleware


class QueuedModel:
    """Predicts the next p of a list (a stand-in for the model: this tests the middleware's use of the cookie)."""

    source = "rules"

    def __init__(self) -> None:
        self.ps: list[float] = []

    def predict(self, x):  # noqa: ANN001, ANN201
        return self.ps.pop(0)

    def learn(self, x, degraded):  # noqa: ANN001, ANN201
        return None


PAGE = '<!doctype html><html><body><div data-edge-widget="ads">ads</div></body></html>'
STOREFRONT = Starlette(routes=[Route("/", lambda r: HTMLResponse(PAGE, headers={"cache-control": "public, max-age=60"}))])
POLICY = Policy.from_toml('[overrides]\nholdback = 0.0\n[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n')


def edge(model: QueuedModel, **settings: object) -> AdaptiveMiddleware:
    return AdaptiveMiddleware(
        STOREFRONT, policy=POLICY, model=model, settings=Settings(fail_mode="closed", feedback_key="x" * 32, **settings)
    )


def get(app: AdaptiveMiddleware, cookie: str | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            headers = {"Accept-Encoding": "identity", **({"Cookie": cookie} if cookie else {})}
            return await client.get("/", headers=headers)

    return asyncio.run(go())


def browse(app: AdaptiveMiddleware, model: QueuedModel, ps: list[float]) -> tuple[list[str], int]:
    """A browser that keeps edge's tier cookie: the tiers it gets, and how many Set-Cookies it saw."""
    jar: str | None = None
    tiers, sets = [], 0
    for p in ps:
        model.ps.append(p)
        response = get(app, f"{TIER_COOKIE}={jar}" if jar else None)
        tiers.append(response.headers["edge-tier"])
        for value in response.headers.get_list("set-cookie"):
            if value.startswith(TIER_COOKIE + "="):
                jar = value.split(";", 1)[0].split("=", 1)[1]
                sets += 1
                assert "private" in response.headers["cache-control"]
    return tiers, sets


def test_a_client_with_the_cookie_keeps_its_tier_through_noise() -> None:
    rng = random.Random(3)
    ps = [min(max(rng.gauss(0.5, 0.05), 0.0), 1.0) for _ in range(20)]
    model = QueuedModel()
    tiers, sets = browse(edge(model), model, ps)
    plain = ["lite" if p >= 0.5 else "full" for p in ps]
    assert sum(a != b for a, b in zip(tiers, tiers[1:], strict=False)) <= 1
    assert sum(a != b for a, b in zip(plain, plain[1:], strict=False)) >= 5  # what the thresholds alone would do
    assert sets <= 3  # the first page, and an unconfirmed crossing remembered and forgotten at most


def test_a_real_change_switches_and_the_rule_can_be_turned_off() -> None:
    model = QueuedModel()
    tiers, _ = browse(edge(model), model, [0.88, 0.88, 0.1, 0.1, 0.55, 0.88])
    assert tiers == ["lite", "lite", "full", "full", "full", "lite"]
    model = QueuedModel()
    tiers, sets = browse(edge(model, tier_margin=0), model, [0.45, 0.55, 0.45])
    assert tiers == ["full", "lite", "full"] and sets == 0


def test_a_fast_first_page_sets_no_cookie_and_stays_public() -> None:
    model = QueuedModel()
    model.ps.append(0.1)
    response = get(edge(model))
    assert response.headers["edge-tier"] == "full"
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "public, max-age=60"


@pytest.mark.parametrize("value", ["garbage", "a.b", "x" * 5000, '"quoted"', "%00%ff"])
def test_a_forged_cookie_is_ignored_not_an_error(value: str) -> None:
    model = QueuedModel()
    model.ps.append(0.55)
    response = get(edge(model), f"{TIER_COOKIE}={value}")
    assert response.status_code == 200 and response.headers["edge-tier"] == "lite"


def test_a_measurement_cookie_value_does_not_pass_as_a_tier_cookie() -> None:
    model = QueuedModel()
    app = edge(model)
    measured = app.feedback.measurement_cookie(Measurement(kbps=100.0, rtt_ms=900.0), None, 1e10)
    model.ps.append(0.45)
    assert get(app, f"{TIER_COOKIE}={measured}").headers["edge-tier"] == "full"
