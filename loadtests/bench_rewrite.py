"""Rewrite cost per page: lol_html (edge's choice) against selectolax/Lexbor, on the demo home page.

    .venv/bin/python loadtests/bench_rewrite.py [--repeat 200] [--json out.json]

Both candidates do the same job: drop the lite tier's widgets, append the
switch link to <body>, produce bytes. Also timed: the full tier's byte splice
and a plain copy of the page (the floor). Reports the median and p90 per page
in milliseconds, as a ratio to lol_html, and whether each candidate keeps the
bytes it did not touch (a parse → serialize round trip with nothing dropped
must give the input back).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx
from selectolax.lexbor import LexborHTMLParser

from edge.demo import build_storefront
from edge.policy import load_policy
from edge.rewrite import HtmlRewriter, splice_before_body_end, switch_link
from edge.settings import DEFAULT_POLICY


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    page = demo_page()
    policy = load_policy(DEFAULT_POLICY)
    rewriter = HtmlRewriter(policy)
    drops = policy.drop_selectors("lite")
    link = switch_link("full", "/", "Full page")

    cases = {
        "copy (floor)": lambda: bytes(bytearray(page)),
        "full: byte splice": lambda: splice_before_body_end(page, link),
        "lite: lol_html": lambda: rewriter.rewrite(page, "lite", link),
        "lite: selectolax": lambda: selectolax_rewrite(page, drops, link),
    }
    results = {name: timed(fn, args.repeat) for name, fn in cases.items()}
    base = statistics.median(results["lite: lol_html"])
    lol_out = rewriter.rewrite(page, "lite", link)
    sel_out = selectolax_rewrite(page, drops, link)
    fidelity = {
        "lol_html": _roundtrip_lol(page) == page,
        "selectolax": LexborHTMLParser(page).html.encode() == page,
    }
    print(f"demo home page: {len(page):,} bytes; lite output: lol_html {len(lol_out):,} B, selectolax {len(sel_out):,} B")
    print(f"{'case':<22}{'median ms':>11}{'p90 ms':>9}{'× lol_html':>12}")
    report = {"page_bytes": len(page), "repeat": args.repeat, "cases": {}, "byte_exact_roundtrip": fidelity}
    for name, samples in results.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:<22}{median:>11.3f}{p90:>9.3f}{median / base:>12.2f}")
        report["cases"][name] = {"median_ms": median, "p90_ms": p90, "ratio_to_lol_html": median / base}
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
