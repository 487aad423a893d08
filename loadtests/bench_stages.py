"""Per-stage cost of edge's adaptive step, in-process, on the demo home page.

    .venv/bin/python loadtests/bench_stages.py [--repeat 2000] [--json out.json]

Stages (each timed alone, median and p90 in microseconds, in one run):
signals (headers → Signals), features, model predict and learn (the default
``auto`` model, after it has learned from replayed-like traffic; its learn
includes the prequential evaluation — both models predict first, the River
model from the same EdgeFeatures pass it then learns from
(``RiverModel.predict_then_learn``) — so the River model's own learn, ``RiverModel.learn``
(River's scaler and logistic regression, as one flat learner: ``edge.learning.model.linear``), is
shown apart), model predict with the River model in force (below), decide (the
policy), token sign and verify, rewrite (full: link+beacon splice, buffered
and streamed in 64 KB chunks as the proxy does; lite and minimal: lol_html, no rewrite cache; lite
with the proxy's rewrite cache on the same page again, a hit, and on the dynamic storefront's page,
different on every call as real shops' pages are: ``edge.demo.dynamic``), and the whole step
(signals → … → rewrite → token) at lite. Timings are per call on this machine; compare them with each other, not
with another day's run. The last row, ``reference (fixed loop)``, runs no edge code (a fixed pure-Python
loop): rows divided by it compare across machines and runs better than the raw figures do.

``model predict`` is the ``auto`` model as its 3000 labels leave it: a fixed candidate in force, which its labels
(slow iff the last throughput is under 700 kbit/s) elect — the last request's throughput (the header line names it) —
a p that costs ~1 µs, calibration included. ``model predict
(River in force)`` is the same ``ChampionChallenger.predict`` with the River model in force, as on the video traces:
a second ``auto`` model taught 3000 labels of the same traffic labelled by the radio's RSRP instead (slow iff under
−100 dBm), which the rules cannot rank and the River model can, so that it wins the election by the model's own
switching rule (``ChampionChallenger.learn``; nothing is forced). Its cost is the River model's predict of ``x``
(its layout of inputs compiled, ``edge.learning.model.unrolled_predict``), the support check and the calibration.

The same stages under pytest-benchmark (its statistics, ``--benchmark-compare``)::

    .venv/bin/python -m pytest tests/loadtests/test_stage_benchmarks.py --benchmark-max-time=1
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time

from edge.core.settings import DEFAULT_POLICY
from edge.learning.feedback import TokenSigner
from edge.learning.model import MODELS
from edge.pipeline.features import to_features
from edge.pipeline.policy import load_policy
from edge.pipeline.rewrite import HtmlRewriter, RewriteCache, StreamSplicer, beacon_script, switch_link
from edge.pipeline.signals import read_signals
from edge.pipeline.towers import TowerTable

HEADERS = {
    "user-agent": "Mozilla/5.0 (Linux; Android 10; SM-A105F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "sec-ch-ua-mobile": "?1",
    "device-memory": "2",
    "ect": "3g",
    "rtt": "450",
    "downlink": "0.6",
    "edge-cell": 'id="404-45-1207-88123", radio=lte, rsrp=-101, rsrq=-14, sinr=3, cqi=7, speed=22',
    "edge-last-request": 'ms=840, ttfb=300, bytes=51200, cell="404-45-1207-88120"',
}


def timed(fn, repeat: int) -> list[float]:
    for _ in range(min(200, repeat)):
        fn()
    out = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - started) / 1000)
    return out


def reference_loop() -> int:
    """A fixed pure-Python workload, no edge code: the machine's own speed, for reading the other rows against."""
    total = 0
    for i in range(1000):
        total += i * i % 7
    return total


def demo_page() -> bytes:
    import asyncio

    import httpx

    from edge.demo import build_storefront

    async def get() -> bytes:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_storefront()), base_url="http://shop") as c:
            return (await c.get("/")).content

    return asyncio.run(get())


def dynamic_pages(page: bytes, n: int = 64) -> list[bytes]:
    """``n`` renderings of the demo page by the dynamic storefront (``edge storefront --dynamic``), all different."""
    from edge.demo.dynamic import personalize

    return [personalize(page, "3.4", "7.9.12") for _ in range(n)]


def streamed_splice(chunks: list[bytes], snippet: bytes) -> bytes:
    """The full tier's hot path: the page's chunks through a StreamSplicer."""
    splicer = StreamSplicer(snippet, sum(map(len, chunks)))
    return b"".join([splicer.feed(c) for c in chunks[:-1]] + [splicer.finish(chunks[-1])])


def stage_cases(state: dict[str, object] | None = None) -> tuple[str, dict[str, object]]:
    """(a one-line description, {stage name: a no-argument callable}) on the demo home page.

    Shared by this script and ``tests/loadtests/test_stage_benchmarks.py`` (pytest-benchmark).
    ``state``, if given, receives the ``model`` and the features ``x`` the model stages use,
    so that a test can see what learning did.
    """
    page = demo_page()
    policy = load_policy(DEFAULT_POLICY)
    rewriter = HtmlRewriter(policy)
    cached = HtmlRewriter(policy, RewriteCache(8 << 20))  # as the proxy has it (EDGE_REWRITE_CACHE_BYTES' default)
    dynamic = HtmlRewriter(policy, RewriteCache(8 << 20))
    fresh = itertools.cycle(dynamic_pages(page))
    towers = TowerTable()
    rng = random.Random(0)
    model = MODELS["auto"]()
    signals = read_signals(HEADERS)
    x = to_features(signals, towers.lookup("404-45-1207-88123", 0.0))
    # Teach the model first: predict/learn costs are those of a model that has seen traffic.
    for _ in range(3000):
        xi = dict(x, last_kbps=rng.lognormvariate(7, 1.2), rsrp=rng.uniform(-120, -80))
        model.learn(xi, xi["last_kbps"] < 700)
    signer = TokenSigner([b"k" * 32])
    issued = time.time()
    token = signer.sign({"x": x, "d": "lite", "s": "model", "p": 0.7, "u": 12.0}, now=issued)
    snippet = switch_link("full", "/", "Full page") + beacon_script(token)
    chunks = [page[i : i + 64 * 1024] for i in range(0, len(page), 64 * 1024)]
    # The same traffic labelled by RSRP: the River model is elected champion (module docstring).
    in_force = MODELS["auto"]()
    for _ in range(3000):
        xi = dict(x, last_kbps=rng.lognormvariate(7, 1.2), rsrp=rng.uniform(-120, -80))
        in_force.learn(xi, xi["rsrp"] < -100.0)
    if state is not None:
        state.update(model=model, x=x, river_in_force=in_force)

    def whole() -> bytes:
        s = read_signals(HEADERS)
        xx = to_features(s, towers.lookup("404-45-1207-88123", time.time()))
        p = model.predict(xx)
        d = policy.decide(p, source=model.source, path="/")
        t = signer.sign({"x": xx, "d": d.tier, "s": d.source, "p": p, "u": 12.0}, now=time.time())
        return rewriter.rewrite(page, "lite", switch_link("full", "/", "Full page") + beacon_script(t), path="/")

    cases = {
        "signals": lambda: read_signals(HEADERS),
        "features": lambda: to_features(signals, None),
        "model predict": lambda: model.predict(x),
        "model predict (River in force)": lambda: in_force.predict(x),
        "model learn (+ eval)": lambda: model.learn(x, True),
        "river predict alone": lambda: model.model.predict(x),
        "river learn alone": lambda: model.model.learn(x, True),
        "decide (policy)": lambda: policy.decide(0.7, source="model", path="/"),
        "token sign": lambda: signer.sign({"x": x, "d": "lite", "s": "model", "p": 0.7, "u": 12.0}, now=time.time()),
        # Verified as a beacon a second after the page: the cases may run long after they were built
        # (the test suite builds them at collection), and a token is only good for the signer's TTL.
        "token verify": lambda: signer.verify(token, now=issued + 1.0),
        "rewrite full (splice)": lambda: rewriter.rewrite(page, "full", snippet, path="/"),
        "full splice, streamed": lambda: streamed_splice(chunks, snippet),
        "rewrite lite": lambda: rewriter.rewrite(page, "lite", snippet, path="/"),
        "lite, cache hit": lambda: cached.rewrite(page, "lite", snippet, path="/"),
        "lite, dynamic page": lambda: dynamic.rewrite(next(fresh), "lite", snippet, path="/"),
        "rewrite minimal": lambda: rewriter.rewrite(page, "minimal", snippet, path="/"),
        "whole step at lite": whole,
    }
    description = f"demo home page {len(page):,} bytes; model {type(model).__name__} ({model.source} in force; the second: {in_force.source})"
    return description, cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--json")
    args = parser.parse_args()

    description, cases = stage_cases()
    report = {}
    print(f"{description}; repeat {args.repeat}")
    print(f"{'stage':<32}{'median µs':>11}{'p90 µs':>10}")
    # The reference row runs no edge code (not a stage: stage_cases leaves it out).
    for name, fn in [*cases.items(), ("reference (fixed loop)", reference_loop)]:
        samples = timed(fn, args.repeat)
        median, p90 = statistics.median(samples), statistics.quantiles(samples, n=10)[-1]
        report[name] = {"median_us": median, "p90_us": p90}
        print(f"{name:<32}{median:>11.1f}{p90:>10.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
