"""Feedback: signed tokens, the beacon, the app's report, and labels for the model.

The page carries its own training example (see ``docs/feedback.md``): edge
signs the request's features and decision into a compact token; the browser's
beacon (or the app's next request) brings it back with a measurement of the
network; edge checks the signature, age and uniqueness, turns the measurement
into a label (:class:`~edge.pipeline.labels.LabelRule`) and the model learns. Nothing is
remembered per request, so any worker or replica can learn from any token.

Forged, expired, replayed, oversized or malformed feedback is refused with a
4xx, counted in ``edge_feedback_rejected_total{reason}``, and never reaches the
model. The replay guard is bounded: when full of unexpired nonces it refuses
new feedback (``overloaded``) rather than forget, so a flood cannot grow memory
or wash out the guard.

A genuine token proves only that someone fetched a page, so the loop also limits
what any one sender can teach (docs/feedback.md, "Threat model"): each label is
attributed to the client that sent it (:mod:`edge.learning.trust`), which has a label
budget (over it: ``throttled``, 429, checked before the replay guard remembers
anything, so a flood from a few addresses cannot fill the guard); a label whose
claims contradict what edge observed (a download longer than the time between
serving the page and receiving the beacon) is *untrusted*: it serves its own
client but is never shown to others through the cell statistics and counts
against the champion election; under ``edge serve --workers N`` the workers share
one replay table (:class:`SharedReplayGuard`), so a token is one label at most.

The tokens and replay guards are :mod:`edge.learning.tokens` (importable from here as well);
this module measures beacons and app reports and turns them into labels (:class:`Feedback`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from edge.core import metrics
from edge.learning.model import NetworkModel
from edge.learning.shared_label import SharedLabel
from edge.learning.tokens import MAX_TOKEN_BYTES as MAX_TOKEN_BYTES
from edge.learning.tokens import REJECT_STATUS, FeedbackRejected, ReplayGuard, SharedReplayGuard, TokenSigner, shared_guard_for_workers
from edge.learning.tokens import SHARED_GUARD_FILE as SHARED_GUARD_FILE
from edge.learning.trust import LabelBudget, client_group
from edge.pipeline.labels import LabelRule
from edge.pipeline.signals import app_throughput
from edge.pipeline.towers import TowerTable

# The token names stay importable from here (and checkpoints pickled before edge.learning.tokens existed name
# edge.learning.feedback.ReplayGuard).
__all__ = [
    "TokenSigner",
    "ReplayGuard",
    "SharedReplayGuard",
    "shared_guard_for_workers",
    "FeedbackRejected",
    "Measurement",
    "Feedback",
    "measure_beacon",
    "client_average",
    "BEACON_PATH",
    "MEASUREMENT_COOKIE",
    "MEASUREMENT_MAX_AGE_S",
    "MAX_BEACON_BYTES",
    "REJECT_STATUS",
    "LabelSink",
]

BEACON_PATH = "/__edge/beacon"
#: The signed cookie holding a browser's last measured throughput and RTT (set by the beacon).
MEASUREMENT_COOKIE = "edge_m"
#: A last measurement older than this says little about the network now.
MEASUREMENT_MAX_AGE_S = 1800.0
MAX_BEACON_BYTES = 8 * 1024
MAX_RESOURCES = 30
#: Below this many bytes a transfer says more about round trips than throughput.
MIN_THROUGHPUT_BYTES = 16 * 1024
#: Timings past ten minutes after navigation start are not a page load.
MAX_TIMING_MS = 600_000.0

#: A beacon's download may end this long (s) after the time edge saw between serving its page and
#: receiving it, before its claims count as contradicting what edge observed (clock steps, rounding).
PLAUSIBILITY_SLACK_S = 1.0


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the network did for one page view: throughput (kbit/s) and RTT (ms), either may be unknown."""

    kbps: float | None
    rtt_ms: float | None


def _finite(value: Any, lo: float = 0.0, hi: float = MAX_TIMING_MS) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise FeedbackRejected("malformed")
    return float(value)


def measure_beacon(beacon: dict[str, Any], server_ms: float) -> Measurement:
    """Derive the network's throughput and RTT from a beacon (the rules are in docs/feedback.md).

    >>> m = measure_beacon({"nav": [10, 410, 810, 40_000], "res": [[500, 1300, 40_000]]}, server_ms=100)
    >>> m.rtt_ms, round(m.kbps)    # 80 KB over the union [410, 1300] = 890 ms
    (300.0, 719)
    """
    intervals: list[tuple[float, float]] = []
    total_bytes = 0.0
    rtt = None
    nav = beacon.get("nav")
    if nav is not None:
        if not isinstance(nav, list) or len(nav) != 4:
            raise FeedbackRejected("malformed")
        request_start, response_start, response_end, size = (_finite(v, hi=1e10 if i == 3 else MAX_TIMING_MS) for i, v in enumerate(nav))
        if not request_start <= response_start <= response_end:
            raise FeedbackRejected("malformed")
        if response_start > 0:
            rtt = max(1.0, response_start - request_start - server_ms)
        if size > 0 and response_end > response_start:
            intervals.append((response_start, response_end))
            total_bytes += size
    resources = beacon.get("res") or []
    if not isinstance(resources, list) or len(resources) > 100:
        raise FeedbackRejected("malformed")
    for entry in resources[:MAX_RESOURCES]:
        if not isinstance(entry, list) or len(entry) != 3:
            raise FeedbackRejected("malformed")
        start, end, size = _finite(entry[0]), _finite(entry[1]), _finite(entry[2], hi=1e10)
        if start > 0 and end > start and size > 0:
            intervals.append((start, end))
            total_bytes += size
    kbps = None
    if total_bytes >= MIN_THROUGHPUT_BYTES and intervals:
        kbps = total_bytes * 8.0 / _union_length(intervals)
    if kbps is None and rtt is None:
        # Neither figure measured: fall back to Chromium's estimates (navigator.connection).
        connection = beacon.get("c")
        if isinstance(connection, list) and len(connection) == 3:
            _, est_rtt, est_downlink = connection
            try:
                rtt = _finite(est_rtt) if est_rtt is not None else None
                kbps = _finite(est_downlink, hi=1e6) * 1000.0 if est_downlink is not None else None
            except FeedbackRejected:
                rtt = kbps = None
    return Measurement(kbps, rtt)


def claimed_download_ms(beacon: dict[str, Any]) -> float | None:
    """How long a (well-formed, see :func:`measure_beacon`) beacon says its downloads lasted, from the
    document's first byte to the last byte of anything it reports; None if it reports no download.

    >>> claimed_download_ms({"nav": [5, 105, 2605, 100_000], "res": [[300, 2900, 9_000]]})
    2795.0
    """
    starts: list[float] = []
    ends: list[float] = []
    nav = beacon.get("nav")
    if isinstance(nav, list) and len(nav) == 4 and nav[2] > nav[1] > 0:
        starts.append(float(nav[1]))
        ends.append(float(nav[2]))
    for entry in (beacon.get("res") or [])[:MAX_RESOURCES]:
        if entry[0] > 0 and entry[1] > entry[0] and entry[2] > 0:
            starts.append(float(entry[0]))
            ends.append(float(entry[1]))
    if not ends:
        return None
    return max(ends) - min(starts)


#: Weight of the newest measurement in a client's throughput history.
CLIENT_AVERAGE_WEIGHT = 0.3


def client_average(previous: float | None, kbps: float) -> float:
    """A client's geometric moving average of measured throughput (the connection-class idea).

    >>> client_average(None, 400.0), round(client_average(400.0, 4000.0))
    (400.0, 798)
    """
    if previous is None or previous <= 0:
        return kbps
    return math.exp(CLIENT_AVERAGE_WEIGHT * math.log(max(kbps, 1.0)) + (1 - CLIENT_AVERAGE_WEIGHT) * math.log(previous))


def _union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals (parallel downloads share the link).

    >>> _union_length([(0, 10), (5, 15), (20, 30)])
    25.0
    """
    total = 0.0
    spans = sorted(intervals)
    if not spans:
        return 0.0
    current_start, current_end = spans[0]
    for start, end in spans[1:]:
        if start > current_end:
            total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    total += current_end - current_start
    return float(total)


class LabelSink(Protocol):
    """Where a fleet's sidecar sends the labels it accepts (edge.state.fleet.FleetSync)."""

    def submit(self, label: SharedLabel) -> bool:
        """Queue ``label`` for the fleet, never waiting. True: the fleet will learn it (the learner, and
        every sidecar's cell table); False: the fleet is unreachable, learn it here as well."""
        ...


class Feedback:
    """Issues tokens and turns returned feedback into labels for ``model`` and ``towers``.

    With a ``fleet`` (:class:`LabelSink`), an accepted label goes to the fleet instead of being learned
    here: the fleet's replay guard decides whether it is new, the learner learns it, every sidecar's
    cell table takes its observation (docs/operations.md, "A fleet on Redis").
    """

    #: Set by the runtime when a fleet is configured (EDGE_STATE).
    fleet: LabelSink | None = None

    def __init__(
        self,
        signer: TokenSigner,
        model: NetworkModel,
        towers: TowerTable,
        labels: LabelRule,
        guard: ReplayGuard | None = None,
        budget: LabelBudget | None = None,
        shared_guard: SharedReplayGuard | None = None,
    ) -> None:
        self.signer = signer
        self.model = model
        self.towers = towers
        self.labels = labels
        self.guard = guard if guard is not None else ReplayGuard(window_s=signer.ttl_s)
        self.budget = budget if budget is not None else LabelBudget()
        # Under --workers N the sibling workers' table as well (this worker's own guard is checkpointed).
        self.shared_guard = (
            shared_guard if shared_guard is not None else shared_guard_for_workers(self.guard.max_entries, self.guard.window_s)
        )

    def issue(self, x: dict[str, Any], tier: str, source: str, p: float | None, upstream_ms: float, cell_id: str | None, now: float) -> str:
        """The token a served page or app response carries."""
        payload: dict[str, Any] = {"x": x, "d": tier, "s": source, "p": None if p is None else round(p, 4), "u": round(upstream_ms, 1)}
        if cell_id:
            payload["c"] = cell_id
        return self.signer.sign(payload, now)

    def _accept(self, payload: dict[str, Any], client: str | None, now: float) -> None:
        """Admit a verified token's feedback: the sender's budget, then the replay guard(s)."""
        nonce, issued = int(payload.get("n", 0)), float(payload["t"])
        if nonce in self.guard or (self.shared_guard is not None and self.shared_guard.seen(nonce, now)):
            raise FeedbackRejected("replayed")  # a replay costs no budget: the token was learned already
        if not self.budget.take(client, now):
            raise FeedbackRejected("throttled")
        if self.shared_guard is not None:
            shared = self.shared_guard.admit(nonce, issued, now)
            if shared is None:
                raise FeedbackRejected("overloaded")
            if not shared:
                raise FeedbackRejected("replayed")
        admitted = self.guard.admit(nonce, issued, now)
        metrics.TABLE_SIZE.labels("replay_guard").set(len(self.guard))
        if admitted is None:
            raise FeedbackRejected("overloaded")
        if not admitted:
            raise FeedbackRejected("replayed")

    def beacon(self, body: bytes, now: float, client: str | None = None) -> tuple[dict[str, Any], Measurement, bool | None]:
        """Handle a beacon body from ``client`` (its address). Returns (token payload, measurement, label);
        raises FeedbackRejected."""
        try:
            if len(body) > MAX_BEACON_BYTES:
                raise FeedbackRejected("oversized")
            try:
                beacon = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise FeedbackRejected("malformed") from None
            if not isinstance(beacon, dict) or not isinstance(beacon.get("t"), str):
                raise FeedbackRejected("malformed")
            payload = self.signer.verify(beacon["t"], now)  # cheap checks before the guard remembers anything
            measurement = measure_beacon(beacon, server_ms=float(payload.get("u") or 0.0))
            self._accept(payload, client, now)
        except FeedbackRejected as exc:
            metrics.FEEDBACK_REJECTED.labels(exc.reason).inc()
            raise
        untrusted = self._implausible_beacon(beacon, payload, measurement, now)
        return payload, measurement, self._learn(payload, measurement, "beacon", now, client, untrusted)

    def _implausible_beacon(self, beacon: dict[str, Any], payload: dict[str, Any], m: Measurement, now: float) -> str | None:
        """Why a beacon's claims contradict what edge itself observed (None: they do not).

        Edge signed the token when it sent the page, and receives the beacon after the page has
        loaded, so no download the beacon reports can have lasted longer than the time between the
        two (plus :data:`PLAUSIBILITY_SLACK_S`). A measurement made only of ``navigator.connection``
        estimates claims nothing edge can check.
        """
        claimed = claimed_download_ms(beacon)
        if claimed is None:
            return "estimate" if (m.kbps is not None or m.rtt_ms is not None) and not beacon.get("nav") else None
        elapsed_ms = (now - float(payload["t"]) + PLAUSIBILITY_SLACK_S) * 1000.0
        return "too-slow-for-the-clock" if claimed > elapsed_ms else None

    def app_report(
        self, token: str, ms: float, size: float | None, now: float, ttfb_ms: float | None = None, client: str | None = None
    ) -> bool | None:
        """An app's ``Edge-Last-Request`` with a token: learn from what it measured.

        Throughput as :func:`edge.pipeline.signals.app_throughput`; the round trip is the
        time to first byte when reported. Without either, a request slower than
        the RTT threshold is still degraded, and a small response so fast that
        even bytes·8/ms clears the throughput threshold is not; anything else is
        ambiguous and gives no label. As for a beacon, the server time the token carries
        (``u``: the storefront's time and edge's queue) is the server's, not the network's:
        it is taken off the time to first byte, and off ``ms`` where ``ms`` stands for the
        round trips (no ``ttfb``), so a slow storefront page is not a slow network.

        ``client`` (the request's address) is who sent it. With ``ttfb``, the download (``ms − ttfb``)
        cannot have lasted longer than the time since edge sent that response: if it claims to, the
        label is untrusted (see :meth:`beacon`). Without it the request's duration includes its own
        upload, which edge cannot bound.
        """
        try:
            payload = self.signer.verify(token, now)
            self._accept(payload, client, now)
        except FeedbackRejected as exc:
            metrics.FEEDBACK_REJECTED.labels(exc.reason).inc()
            raise
        untrusted = None
        if ttfb_ms is not None and ms - ttfb_ms > (now - float(payload["t"]) + PLAUSIBILITY_SLACK_S) * 1000.0:
            untrusted = "too-slow-for-the-clock"
        server_ms = float(payload.get("u") or 0.0)  # (signed by us: a finite number of ms)
        network_ms = max(1.0, ms - server_ms)  # the request without the server's time: round trips and download
        # With ttfb the download alone is known (no server time in it); without, the whole request stands for it.
        kbps = app_throughput(ms, size, ttfb_ms) if ttfb_ms is not None else app_throughput(network_ms, size, None)
        if kbps is None and size and size * 8.0 / network_ms >= self.labels.threshold_kbps:
            kbps = size * 8.0 / network_ms  # a lower bound, and already fast enough
        if ttfb_ms is not None:
            rtt: float | None = max(1.0, ttfb_ms - server_ms)
        else:
            rtt = network_ms if network_ms > self.labels.rtt_ms else None
        return self._learn(payload, Measurement(kbps, rtt), "app", now, client, untrusted)

    def _learn(
        self, payload: dict[str, Any], m: Measurement, source: str, now: float, client: str | None = None, untrusted: str | None = None
    ) -> bool | None:
        degraded = self.labels.degraded(m.kbps, m.rtt_ms)
        if degraded is None:
            return None
        group = client_group(client)
        if untrusted is not None:
            metrics.UNTRUSTED_LABELS.labels(untrusted).inc()
        x = payload.get("x")
        cell = payload.get("c")
        if self.fleet is not None:
            label = SharedLabel(
                nonce=int(payload.get("n", 0)),
                expires=float(payload["t"]) + self.signer.ttl_s,
                x=x if isinstance(x, dict) else None,
                degraded=degraded,
                client=group,
                trusted=untrusted is None,
                cell=cell if isinstance(cell, str) else None,
                kbps=m.kbps,
                at=now,
            )
            metrics.LABELS.labels(source, "degraded" if degraded else "ok").inc()
            if payload.get("s") == "holdback":
                metrics.HOLDBACK_LABELS.labels("degraded" if degraded else "ok").inc()
            if self.fleet.submit(label):
                return degraded
            self.learn_shared(label)  # the fleet is unreachable: learn here too (the outbox keeps it for later)
            return degraded
        if isinstance(x, dict):
            learn_from = getattr(self.model, "learn_from", None)
            if learn_from is not None:
                learn_from(x, degraded, group, untrusted is None)
            else:
                self.model.learn(x, degraded)
            metrics.LABELS.labels(source, "degraded" if degraded else "ok").inc()
            if payload.get("s") == "holdback":
                metrics.HOLDBACK_LABELS.labels("degraded" if degraded else "ok").inc()
        if isinstance(cell, str):
            self.towers.observe(cell, m.kbps, degraded, now, client=group, shared=untrusted is None)
            metrics.TABLE_SIZE.labels("cells").set(len(self.towers))
        return degraded

    def learn_shared(self, label: SharedLabel) -> None:
        """Learn a fleet label in this process: the model (when it has the features) and the cell table."""
        if label.x is not None:
            learn_from = getattr(self.model, "learn_from", None)
            if learn_from is not None:
                learn_from(label.x, label.degraded, label.client, label.trusted)
            else:
                self.model.learn(label.x, label.degraded)
        self.observe_cell(label)

    def observe_cell(self, label: SharedLabel) -> None:
        """A fleet label's cell observation, in this process's cell table."""
        if label.cell is not None:
            self.towers.observe(label.cell, label.kbps, label.degraded, label.at, client=label.client, shared=label.trusted)
            metrics.TABLE_SIZE.labels("cells").set(len(self.towers))

    # The browser's last measurement, kept in a signed cookie so the next page view can use it.

    def measurement_cookie(self, m: Measurement, cell_id: str | None, now: float, previous: dict[str, Any] | None = None) -> str:
        """The signed last-measurement cookie after measurement ``m``.

        ``previous`` is the cookie's last payload (verified). A measurement without a
        throughput (a light page under 16 KB measures only its round trip) keeps the
        previous throughput and its time, so a lite page's beacon cannot erase what a
        bigger page measured. ``a`` is the client's own history: a geometric moving
        average of its measured throughputs (the connection-class idea), weight 0.3
        for the newest.
        """
        previous = previous or {}
        payload: dict[str, Any] = {}
        if m.kbps is not None:
            payload["k"], payload["kt"] = round(m.kbps, 1), round(now, 1)
            old_avg = previous.get("a")
            payload["a"] = round(client_average(old_avg if isinstance(old_avg, (int, float)) else None, m.kbps), 1)
        else:
            for key in ("k", "kt", "a"):
                if isinstance(previous.get(key), (int, float)):
                    payload[key] = previous[key]
        if m.rtt_ms is not None:
            payload["r"] = round(m.rtt_ms, 1)
        if cell_id:
            payload["c"] = cell_id
        return self.signer.sign(payload, now, purpose=b"m")

    def read_measurement_cookie(self, value: str, now: float, max_age_s: float) -> dict[str, Any] | None:
        """The cookie's payload if genuine and younger than ``max_age_s``; else None (never raises)."""
        try:
            return self.signer.verify(value, now, purpose=b"m", ttl_s=max_age_s)
        except FeedbackRejected:
            return None
