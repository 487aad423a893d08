"""Train a River-model prior (:mod:`edge.learning.prior`) on public trace sets: the model card's command.

It replays the traces as :mod:`edge.offline.replay` does (page views with seeds 0–3, and the stream
framing), collects every labelled request's features as they were at request time, shuffles them
(seeded) and lets a fresh River model learn them in that order, ``--epochs`` times::

    python -m edge.offline.train_prior --out edge/learning/priors/public-traces.json --set 'TRACES*' ...
"""

from __future__ import annotations

import datetime as _dt
import random
import sys
from pathlib import Path
from typing import Any

import orjson

from edge.learning.prior import export_prior


class _Collect:
    """A replay 'model' that only records the labelled examples it is taught (features at request time)."""

    source = "collect"

    def __init__(self, sink: list[tuple[dict, bool]]) -> None:
        self.sink = sink

    def predict(self, x: dict) -> None:
        return None

    def learn(self, x: dict, degraded: bool) -> None:
        self.sink.append((x, bool(degraded)))


def collect_examples(paths: list[Path], seeds: tuple[int, ...] = (0, 1, 2, 3), stream: bool = True) -> list[tuple[dict, bool]]:
    """Every labelled request of a replay of ``paths`` (page views for each seed, then the stream framing)."""
    from edge.learning.model import NullModel
    from edge.offline.replay import replay

    examples: list[tuple[dict, bool]] = []
    framings = [((10.0, 60.0), s) for s in seeds] + ([((0.0, 0.0), 0)] if stream else [])
    for think, seed in framings:
        replay(
            paths,
            think_time=think,
            seed=seed,
            model_factory=lambda: _Collect(examples),
            deployed_factory=NullModel,
            bootstrap=0,
            prior=None,
        )
    return examples


def train_prior(
    sets: list[list[Path]], *, epochs: int = 1, seed: int = 0, per_set: int = 60_000
) -> tuple[Any, dict[str, Any]]:
    """A River model trained on the pooled, shuffled examples of each trace set (at most ``per_set`` of each)."""
    from edge.learning.model import RiverModel

    rng = random.Random(seed)
    pooled: list[tuple[dict, bool]] = []
    for paths in sets:
        examples = collect_examples(paths)
        if len(examples) > per_set:  # no set outweighs the others by its size alone
            examples = rng.sample(examples, per_set)
        pooled += examples
    model = RiverModel("logreg")
    for _ in range(epochs):
        rng.shuffle(pooled)
        for x, y in pooled:
            model.learn(x, y)
    return model, {"labels": len(pooled) * epochs, "positives": sum(y for _, y in pooled) * epochs}


def main(argv: list[str] | None = None) -> None:
    import argparse
    import glob

    import river

    parser = argparse.ArgumentParser(prog="python -m edge.offline.train_prior", description="Train a River-model prior on trace sets.")
    parser.add_argument("--out", required=True, help="the prior JSON file to write")
    parser.add_argument(
        "--set", action="append", required=True, metavar="GLOB", help="one trace set (a quoted glob); repeat for several"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-set", type=int, default=60_000, help="at most this many examples of each set")
    args = parser.parse_args(argv)
    sets = []
    for pattern in args.set:
        files = sorted(Path(p) for p in glob.glob(pattern))
        if not files:
            parser.error(f"no file matches {pattern!r}")
        sets.append(files)
    model, counts = train_prior(sets, epochs=args.epochs, seed=args.seed, per_set=args.per_set)
    meta = {
        "river": ".".join(river.__version__.split(".")[:2]),
        "trained_on": args.set,
        "files": sum(len(s) for s in sets),
        "command": "python -m edge.offline.train_prior " + " ".join(
            [f"--set '{p}'" for p in args.set] + [f"--epochs {args.epochs}", f"--seed {args.seed}", f"--per-set {args.per_set}"]
        ),
        "date": _dt.date.today().isoformat(),
        **counts,
    }
    doc = export_prior(model, meta)
    Path(args.out).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}: {len(doc['weights'])} weights, {counts['labels']} labels ({counts['positives']} degraded)")


if __name__ == "__main__":
    main(sys.argv[1:])
