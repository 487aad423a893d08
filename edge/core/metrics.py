"""Every Prometheus metric edge exports, declared once.

Labels are small fixed sets (tier, decision source, stage, error kind): never a
cell id, URL or User-Agent, so a flood of random clients cannot grow the series.

Request and upstream durations use buckets from 5 ms to 30 s: one histogram must
place both a 20 ms page on 4G and a 10 s page on a congested 2G cell. Rewrite
time is CPU work measured in fractions of a millisecond, so its buckets start lower.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable
from functools import partial

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from edge.core import metric_values
from edge.core.sidecar_process import SidecarProcessCollector
from edge.core.tiers import TIERS

metric_values.install()  # before any metric is made: no getpid system call per increment with --workers N
# One process: edge_process_context_switches_total beside prometheus-client's own process_* (with
# --workers N, registry() adds the whole sidecar's, both).
SidecarProcessCollector(None, registry=REGISTRY, standard=False)

__all__ = [
    "adding",
    "counting",
    "observing",
    "TIERS",
    "SOURCES",
    "STAGES",
    "UPSTREAM_ERROR_KINDS",
    "REQUESTS",
    "REQUEST_DURATION",
    "UPSTREAM_DURATION",
    "REWRITE_DURATION",
    "UPSTREAM_BYTES",
    "SERVED_BYTES",
    "REWRITE_CACHE",
    "FAIL_OPEN",
    "UNCLASSIFIED",
    "UNCLASSIFIED_REASONS",
    "UPSTREAM_ERRORS",
    "PREFERENCE_SWITCHES",
    "TIER_REFUSALS",
    "TABLE_SIZE",
    "LABELS",
    "FEEDBACK_REJECTED",
    "UNTRUSTED_LABELS",
    "MODEL_ROC_AUC",
    "MODEL_LOG_LOSS",
    "MODEL_CHAMPION",
    "MODEL_DRIFTS",
    "CHECKPOINTS",
    "POLICY_RELOADS",
    "PROXIED",
    "CLIENT_REJECTED",
    "CLIENT_RTT_MISSING",
    "REQUEST_QUEUE",
    "HOLDBACK_LABELS",
    "HOLDBACK_DURATION",
    "registry",
]

#: Who decided the tier: the rule baseline, the learned model, a policy override (preference cookie,
#: Save-Data), the holdback control group (always full), or nobody (unknown → full).
SOURCES = ("rules", "model", "last_request", "client_average", "cell_share", "stacker", "override", "holdback", "none")
STAGES = ("signals", "predict", "decide", "decode", "rewrite", "respond")
UPSTREAM_ERROR_KINDS = ("connect", "timeout", "pool", "protocol", "read", "other")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
REWRITE_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def registry() -> CollectorRegistry:
    """The registry to expose on /metrics.

    One process: the default registry. Several workers (``PROMETHEUS_MULTIPROC_DIR`` set by
    ``edge serve --workers N``): a fresh registry per scrape that sums every worker's samples.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        SidecarProcessCollector(_sidecar_root(), registry=collected)  # (the workers' files hold no process_*)
        return collected
    return REGISTRY


#: Set by ``edge serve --workers N``'s supervisor in each worker (edge.runtime.workers.WORKER_INDEX_ENV).
_WORKER_INDEX_ENV = "EDGE_WORKER_INDEX"


def _sidecar_root() -> int:
    """The process whose tree is this sidecar: a worker's supervisor (its parent, while it lives), else
    this process (``PROMETHEUS_MULTIPROC_DIR`` set for one process)."""
    parent = os.getppid()
    return parent if os.environ.get(_WORKER_INDEX_ENV) is not None and parent > 1 else os.getpid()


REQUESTS = Counter(
    "edge_requests_total",
    "Pages edge decided a tier for, by tier served and decision source.",
    ["tier", "source"],
)
REQUEST_DURATION = Histogram(
    "edge_request_duration_seconds",
    "Time from request to the last body byte handed to the server, by tier.",
    ["tier"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "edge_upstream_duration_seconds",
    "Time until the storefront's response headers arrived.",
    buckets=LATENCY_BUCKETS,
)
REWRITE_DURATION = Histogram(
    "edge_rewrite_duration_seconds",
    "CPU time spent rewriting one body (link splice at full, rewrite at lite/minimal).",
    ["tier"],
    buckets=REWRITE_BUCKETS,
)
UPSTREAM_BYTES = Counter(
    "edge_upstream_bytes_total",
    "Body bytes received from the storefront for pages edge decided on, by tier served.",
    ["tier"],
)
SERVED_BYTES = Counter(
    "edge_served_bytes_total",
    "Body bytes sent to shoppers for pages edge decided on, by tier served.",
    ["tier"],
)
REWRITE_CACHE = Counter(
    "edge_rewrite_cache_total",
    "Lite/minimal layouts looked up in the rewrite cache, by result (hit: the page came back byte for byte).",
    ["result"],
)
FAIL_OPEN = Counter(
    "edge_fail_open_total",
    "Adaptations that failed and served the original response instead, by stage.",
    ["stage"],
)
UNCLASSIFIED_REASONS = ("no-content-type", "bad-length", "coding")
UNCLASSIFIED = Counter(
    "edge_unclassified_responses_total",
    "200 responses to GETs edge could not classify or read and passed through unadapted, by reason.",
    ["reason"],
)
UPSTREAM_ERRORS = Counter(
    "edge_upstream_errors_total",
    "Requests the storefront could not answer (502/504 served), by kind.",
    ["kind"],
)
PREFERENCE_SWITCHES = Counter(
    "edge_preference_switches_total",
    "Shoppers who followed the 'full page' or 'light page' link, by tier asked for.",
    ["tier"],
)
TIER_REFUSALS = Counter(
    "edge_tier_refusals_total",
    "Shoppers who left the tier edge served them by the switch link ('Full page' on lite/minimal, "
    "'Light page' on full), by policy, route of the page and tier refused.",
    ["policy", "route", "tier"],
)
# Learning (edge.learning.feedback, edge.learning.model): labels in, feedback refused, model health.
LABEL_SOURCES = ("beacon", "app")
REJECT_REASONS = ("malformed", "oversized", "forged", "expired", "replayed", "overloaded", "throttled")
#: Why a label's claims contradict what edge observed (edge.learning.feedback): such labels serve their own client only.
UNTRUSTED_REASONS = ("too-slow-for-the-clock", "estimate")
#: Every candidate the champion/challenger scores (edge.learning.model.CANDIDATES; a test ties the two).
MODELS = ("model", "rules", "last_request", "client_average", "cell_share", "stacker")

LABELS = Counter(
    "edge_labels_total",
    "Labels learned from feedback, by source and label.",
    ["source", "label"],
)
UNTRUSTED_LABELS = Counter(
    "edge_labels_untrusted_total",
    "Labels whose claims contradict what edge observed (never shown to other clients), by reason.",
    ["reason"],
)
FEEDBACK_REJECTED = Counter(
    "edge_feedback_rejected_total",
    "Feedback refused before it reached the model, by reason.",
    ["reason"],
)
# Gauges in multiprocess mode (several workers): model gauges per live worker (a pid label), table
# sizes summed over live workers. In one process these modes change nothing.
MODEL_ROC_AUC = Gauge(
    "edge_model_roc_auc",
    "Rolling ROC-AUC on the latest labels (predict, then learn), by model.",
    ["model"],
    multiprocess_mode="liveall",
)
MODEL_LOG_LOSS = Gauge(
    "edge_model_log_loss",
    "Rolling log-loss on the latest labels, by model.",
    ["model"],
    multiprocess_mode="liveall",
)
MODEL_CHAMPION = Gauge(
    "edge_model_champion",
    "1 for the model whose predictions decide tiers now, 0 for the other.",
    ["model"],
    multiprocess_mode="liveall",
)
MODEL_DRIFTS = Counter(
    "edge_model_drift_detections_total",
    "Concept drifts detected in the learned model's errors (ADWIN).",
)
CHECKPOINTS = Counter(
    "edge_model_checkpoints_total",
    "Model checkpoints written or loaded, by result.",
    ["result"],
)
POLICY_RELOADS = Counter(
    "edge_policy_reloads_total",
    "Policy reloads, by result (a failed reload keeps the old policy in force).",
    ["result"],
)

PROXIED = Counter(
    "edge_proxied_requests_total",
    "Requests proxied to the storefront, by status class of the response served (502/504: edge's own).",
    ["code"],
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
FAST_PATH = Counter(
    "edge_fast_path_pages_total",
    "Pages served by the fast path (edge.runtime.fast_path: full-tier splices and pages laid out for lite or minimal), without the ASGI layers; also in edge_requests_total.",
)

# Client connections and requests refused by the limits of edge.runtime.protocol and edge.transport.proxy, by reason.
CLIENT_REJECT_REASONS = (
    "malformed",
    "head_too_large",
    "header_too_large",
    "too_many_headers",
    "uri_too_long",
    "bad_host",
    "framing_too_large",
    "header_timeout",
    "body_timeout",
    "connection_limit",
    "evicted_idle",
    "upload_limit",
    "incomplete_body",
)
CLIENT_REJECTED = Counter(
    "edge_client_rejected_total",
    "Client connections or requests refused or closed by edge's limits, by reason.",
    ["reason"],
)

# The server-side round trip (edge.pipeline.client_rtt): why a request went without it, when that is worth
# knowing (getsockopt failing on a live connection; behind a proxy, a header missing, from an untrusted peer,
# or malformed). The request is served as if the figures were absent.
CLIENT_RTT_MISSING = Counter(
    "edge_client_rtt_missing_total",
    "Requests whose server-side round trip was unavailable, by reason.",
    ["reason"],
)
# Edge's own queue (edge.runtime.protocol, direct client sockets): how long requests sat in the kernel's receive
# buffer before edge's event loop read them (TCP_INFO's last_data_recv when a head is complete). Only waits > 0
# are added, so an idle sidecar pays nothing; rate() of it is the mean number of requests waiting.
REQUEST_QUEUE = Counter(
    "edge_request_queue_seconds",
    "Seconds requests waited in the kernel's socket buffer before edge read them (direct client sockets only).",
)

# The holdback (a control group that always gets the full page), reported apart so a dashboard can
# compare it with the adapted traffic.
HOLDBACK_LABELS = Counter(
    "edge_holdback_labels_total",
    "Labels from holdback pages (always full), by label.",
    ["label"],
)
HOLDBACK_DURATION = Histogram(
    "edge_holdback_request_duration_seconds",
    "Request duration of holdback pages (always full).",
    buckets=LATENCY_BUCKETS,
)

TABLE_SIZE = Gauge(
    "edge_table_entries",
    "Entries held in a bounded in-memory table, by table.",
    ["table"],
    multiprocess_mode="livesum",
)

# Pre-create every label combination so dashboards see zeros, not gaps (labels are small, known sets).
for _tier in TIERS:
    REWRITE_DURATION.labels(_tier)
    REQUEST_DURATION.labels(_tier)
    UPSTREAM_BYTES.labels(_tier)
    SERVED_BYTES.labels(_tier)
    PREFERENCE_SWITCHES.labels(_tier)
    for _source in SOURCES:
        REQUESTS.labels(_tier, _source)
for _result in ("hit", "miss"):
    REWRITE_CACHE.labels(_result)
for _stage in STAGES:
    FAIL_OPEN.labels(_stage)
for _reason in UNCLASSIFIED_REASONS:
    UNCLASSIFIED.labels(_reason)
for _kind in UPSTREAM_ERROR_KINDS:
    UPSTREAM_ERRORS.labels(_kind)
for _source in LABEL_SOURCES:
    for _label in ("degraded", "ok"):
        LABELS.labels(_source, _label)
for _reason in REJECT_REASONS:
    FEEDBACK_REJECTED.labels(_reason)
for _reason in UNTRUSTED_REASONS:
    UNTRUSTED_LABELS.labels(_reason)
for _model in MODELS:
    MODEL_CHAMPION.labels(_model)
    # NaN until the first labels are scored: the series exist (dashboards show "no data yet", not gaps).
    MODEL_ROC_AUC.labels(_model).set(float("nan"))
    MODEL_LOG_LOSS.labels(_model).set(float("nan"))
for _result in ("written", "loaded", "failed"):
    CHECKPOINTS.labels(_result)
for _result in ("success", "failure"):
    POLICY_RELOADS.labels(_result)
for _label in ("degraded", "ok"):
    HOLDBACK_LABELS.labels(_label)
for _code in STATUS_CLASSES:
    PROXIED.labels(_code)
for _reason in CLIENT_REJECT_REASONS:
    CLIENT_REJECTED.labels(_reason)
for _table in ("cells", "replay_guard"):
    TABLE_SIZE.labels(_table).set(0)


# --- the per-request path's increments ------------------------------------------------------------
# A counter's ``inc`` checks the amount and the exemplar and a histogram's ``observe`` walks its buckets
# in Python, three to five calls a time; a request makes a dozen. These bind, once, what they end in.


def counting(counter: Counter) -> Callable[[], None]:
    """``counter.inc()`` for a counter child (or a counter without labels), as one call: its value's own
    ``inc(1)`` (the same sample and lock; in multiprocess mode its mmap'd value).

    >>> c = Counter("edge_doctest_counting", "d", registry=CollectorRegistry())
    >>> inc = counting(c); inc(); inc()
    >>> c._value.get()
    2.0
    """
    inc = getattr(getattr(counter, "_value", None), "inc", None)
    return partial(inc, 1) if callable(inc) else counter.inc


def adding(counter: Counter) -> Callable[[float], None]:
    """``counter.inc(amount)`` as one call (:func:`counting`'s, for amounts the caller knows are not negative)."""
    inc = getattr(getattr(counter, "_value", None), "inc", None)
    return inc if callable(inc) else counter.inc


def observing(histogram: Histogram) -> Callable[[float], None]:
    """``histogram.observe`` for a histogram child (or one without labels): its sum and the first bucket
    whose bound is not below the amount, each one ``inc`` (what ``observe`` does, without its loop).

    >>> h = Histogram("edge_doctest_observing", "d", buckets=(0.1, 1.0), registry=CollectorRegistry())
    >>> observe = observing(h); observe(0.1); observe(0.5); observe(7.0)
    >>> [b.get() for b in h._buckets], h._sum.get()
    ([1.0, 1.0, 1.0], 7.6)
    """
    try:
        add_sum = histogram._sum.inc
        buckets = [bucket.inc for bucket in histogram._buckets]
        bounds = list(histogram._upper_bounds)
    except AttributeError:  # (a prometheus_client whose histograms keep their values otherwise)
        return histogram.observe

    def observe(amount: float) -> None:
        add_sum(amount)
        i = bisect_left(bounds, amount)
        if i < len(buckets) and amount == amount:  # (NaN is in no bucket, as with observe)
            buckets[i](1)

    return observe
