"""Per-request model cost on replayed feature dicts: predict, learn, predict+learn (µs, median and p90).

    .venv/bin/python loadtests/bench_model.py [FILES...] [--think-time 0] [--limit 20000] [--json out.json]

The feature dicts and labels are the ones :func:`edge.offline.replay.replay` feeds the model
(same features, same order: a recording model stands in for the learner), so the
figures are for real requests. Each candidate estimator (:data:`edge.learning.model.ESTIMATORS`)
then runs predict-then-learn over the stream, timed per call with ``perf_counter_ns``;
so does :class:`edge.learning.model.ChampionChallenger` (its ``learn`` predicts with both models,
updates the rolling evaluation and ADWIN, then learns). Defaults to the G-NetTrack traces
in ../shared/data and the stream framing (the most requests).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from edge.learning.model import ESTIMATORS, ChampionChallenger, RiverModel
from edge.offline.replay import replay

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gnettrack-5g-video"


class _Recorder:
    source = "model"
    estimator = "recorder"

    def __init__(self) -> None:
        self.stream: list[tuple[dict, bool]] = []

    def predict(self, x):
        return None

    def learn(self, x, degraded):
        self.stream.append((x, degraded))


def replayed_stream(files: list[Path], think_time: tuple[float, float]) -> list[tuple[dict, bool]]:
    recorder = _Recorder()
    replay(files, think_time=think_time, model_factory=lambda: recorder, bootstrap=0)
    return recorder.stream


def _stats(ns: list[int]) -> dict[str, float]:
    q = statistics.quantiles(ns, n=10)
    return {"median_us": round(statistics.median(ns) / 1000, 2), "p90_us": round(q[-1] / 1000, 2)}


def bench(model, stream) -> dict[str, dict[str, float]]:
    clock = time.perf_counter_ns
    predict_ns, learn_ns, both_ns = [], [], []
    for x, y in stream:
        t0 = clock()
        model.predict(x)
        t1 = clock()
        model.learn(x, y)
        t2 = clock()
        predict_ns.append(t1 - t0)
        learn_ns.append(t2 - t1)
        both_ns.append(t2 - t0)
    return {"predict": _stats(predict_ns), "learn": _stats(learn_ns), "predict+learn": _stats(both_ns)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--think-time", default="0", help="0 (stream, default) or LO,HI (page views)")
    parser.add_argument("--limit", type=int, default=20_000, help="requests per candidate (default 20000)")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    files = args.files or sorted(DATA.glob("*.csv.gz"))
    lo, _, hi = args.think_time.partition(",")
    think = (float(lo), float(hi or lo))
    stream = replayed_stream(files, think)[: args.limit]
    print(f"{len(stream)} replayed requests from {len(files)} files (think time {args.think_time})")
    results: dict[str, dict] = {}
    candidates = [(name, lambda name=name: RiverModel(name)) for name in args.estimators.split(",")]
    candidates.append(("champion/challenger (logreg)", lambda: ChampionChallenger(export_metrics=True)))
    print(f"{'':30}{'predict':>16}{'learn':>16}{'predict+learn':>16}   (median / p90 µs)")
    for name, factory in candidates:
        figures = bench(factory(), stream)
        results[name] = figures
        cells = "".join(f"{f['median_us']:>9.1f} /{f['p90_us']:>5.0f}" for f in figures.values())
        print(f"{name:30}{cells}")
    if args.json:
        args.json.write_text(json.dumps({"requests": len(stream), "results": results}, indent=2))


if __name__ == "__main__":
    main()
