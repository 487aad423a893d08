"""Rewrite cost per page on the demo home page: every policy action, lite and minimal, against pass-through.

    .venv/bin/python loadtests/bench_rewrite.py [--repeat 200] [--json out.json]

All in one run, on the same page (the demo storefront's ``/``, ~135 KB):

- floors: a plain copy of the page, and lol_html with no handlers (pass-through:
  tokenize and copy every byte);
- the full tier's byte splice (no parse);
- one case per action, alone (``policies/demo.toml`` would mix them): drop,
  collapse, trim, image variant, lazy + srcset, image size cap, script defer,
  script drop, and the byte budget (which also measures: every widget and
  image is marked, then cut);
- the demo policy at lite and minimal (``rewrite``), and measured
  (``rewrite_with_report``, what ``edge policy check`` runs);
- the JSON layout rewrite of ``/api/layout/home`` at lite;
- selectolax/Lexbor doing the lite drops, for comparison with lol_html.

Reports the median and p90 per page in milliseconds and the ratio to the
pass-through, and whether each candidate keeps the bytes it did not touch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx
import orjson
from selectolax.lexbor import LexborHTMLParser

from edge.core.settings import DEFAULT_POLICY
from edge.demo import build_storefront
from edge.demo.layout import home_layout
from edge.pipeline.policy import Policy, load_policy
from edge.pipeline.rewrite import HtmlRewriter, JsonRewriter, splice_before_body_end, switch_link


def demo_page(path: str = "/") -> bytes:
    async def get() -> bytes:
        transport = httpx.ASGITransport(app=build_storefront())
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            return (await client.get(path)).content

    return asyncio.run(get())


def selectolax_rewrite(body: bytes, selectors: tuple[str, ...], link: bytes) -> bytes:
    tree = LexborHTMLParser(body)
    for css in selectors:
        for node in tree.css(css):
            node.decompose()
    if tree.body is not None:
        tree.body.insert_child(LexborHTMLParser(link).body.child)
    return tree.html.encode()


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm up
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


#: One policy per action, each alone, on the demo home page's markup.
ACTIONS = {
    "drop": '[[widgets]]\nwidget = "reviews"\npriority = 1\nlite = "drop"',
    "collapse": '[[widgets]]\nwidget = "reviews"\npriority = 1\nlite = "collapse"\nurl = "/fragments/reviews"',
    "trim": '[[widgets]]\nwidget = "reviews"\npriority = 1\nlite = "trim"\nkeep = 3\nitem = "article"',
    "image variant": "[[images]]\nsrc = '^(/static/img/.+\\.png)$'\nvariant = '\\1?w=48'",
    "image lazy+srcset": "[[images]]\nlazy = true\ndrop_srcset = true",
    "image size cap": "[[images]]\nmax_bytes = 40000",
    "script defer": '[[scripts]]\nselector = "script"\nlite = "defer"',
    "script drop": '[[scripts]]\nselector = "script"\nlite = "drop"',
    "budget": '[budget]\nlite = 200000\n' + "".join(
        f'[[widgets]]\nwidget = "{w}"\npriority = {p}\n'
        for w, p in (("header", 100), ("search", 95), ("product-grid", 90), ("cart", 90), ("footer", 60), ("reviews", 40),
                     ("recommendations", 30), ("carousel", 20), ("video", 10), ("chat", 5), ("ads", 1))
    ),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    page = demo_page()
    policy = load_policy(DEFAULT_POLICY)
    rewriter = HtmlRewriter(policy)
    drops = policy.drop_selectors("lite", "/")
    link = switch_link("full", "/", "Full page")
    layout = orjson.dumps(home_layout())
    json_rewriter = JsonRewriter(policy)

    cases = {
        "copy (floor)": lambda: bytes(bytearray(page)),
        "lol_html pass-through": lambda: _roundtrip_lol(page),
        "full: byte splice": lambda: splice_before_body_end(page, link),
    }
    for name, text in ACTIONS.items():
        one = HtmlRewriter(Policy.from_toml(text, name))
        cases[f"action: {name}"] = lambda one=one: one.rewrite(page, "lite", link, charset="utf-8")
    for tier in ("lite", "minimal"):
        cases[f"demo policy {tier}"] = lambda tier=tier: rewriter.rewrite(page, tier, link, path="/", charset="utf-8")
        cases[f"demo policy {tier}, report"] = lambda tier=tier: rewriter.rewrite_with_report(page, tier, link, path="/", charset="utf-8")
    cases["json layout lite"] = lambda: json_rewriter.rewrite(layout, "lite", "/api/layout/home")
    cases["lite drops: selectolax"] = lambda: selectolax_rewrite(page, drops, link)

    results = {name: timed(fn, args.repeat) for name, fn in cases.items()}
    base = statistics.median(results["lol_html pass-through"])
    sizes = {tier: len(rewriter.rewrite(page, tier, link, path="/", charset="utf-8")) for tier in ("lite", "minimal")}
    fidelity = {
        "lol_html": _roundtrip_lol(page) == page,
        "selectolax": LexborHTMLParser(page).html.encode() == page,
    }
    print(
        f"demo home page: {len(page):,} B; demo policy output: lite {sizes['lite']:,} B, minimal {sizes['minimal']:,} B;"
        f" JSON layout {len(layout):,} B → {len(json_rewriter.rewrite(layout, 'lite', '/api/layout/home')):,} B; repeat {args.repeat}"
    )
    print(f"{'case':<30}{'median ms':>11}{'p90 ms':>9}{'× pass-through':>16}")
    report = {"page_bytes": len(page), "repeat": args.repeat, "cases": {}, "byte_exact_roundtrip": fidelity}
    for name, samples in results.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:<30}{median:>11.3f}{p90:>9.3f}{median / base:>16.2f}")
        report["cases"][name] = {"median_ms": median, "p90_ms": p90, "ratio_to_passthrough": median / base}
    print(f"byte-exact round trip (parse → serialize, nothing dropped): {fidelity}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


def _roundtrip_lol(page: bytes) -> bytes:
    from lolhtml import HTMLRewriter

    out = bytearray()
    rewriter = HTMLRewriter(out.extend)
    rewriter.write(page)
    rewriter.end()
    return bytes(out)


if __name__ == "__main__":
    main()
