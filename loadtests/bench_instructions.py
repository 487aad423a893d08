"""Instructions per page: nginx, the Python floor and edge, counted by valgrind, the same on a busy machine.

    .venv/bin/python loadtests/bench_instructions.py [--requests 1000] [--edge NAME=TREE ...] [--dynamic] [--json F]

Wall-clock figures swing by 2–4× from run to run on these shared machines, so a change worth 5 % of
a page cannot be seen in ``bench.py`` or even in ``bench_ab.py``'s alternating rounds. An instruction
count can: each proxy runs under ``valgrind --tool=callgrind`` with instrumentation off while it starts
and warms up (a few hundred pages), then on for ``--requests`` pages from one keep-alive client, then
off, and the count of the pages alone is read from callgrind's dump. The same code on the same pages
gives the same count to within about 1 % from one process to the next (the same tree twice in one run,
500 pages: 574.3 and 570.6 K instructions per page outside copies), whatever else the machine is doing.

The cases: ``nginx`` (``bench.py``'s configuration, one process, ``master_process off``), ``python floor``
(``loadtests/floor_proxy.py``: uvloop and httptools, the splice alone) and ``edge`` (this tree's
``edge serve``, one worker), each in front of the demo storefront (run natively) with 4G hints: edge's
full tier. ``--edge NAME=TREE`` (repeatable) measures other source trees instead of this one, as
``bench_ab.py`` does, for a deterministic A/B of a change. ``--dynamic`` adds ``nginx dynamic`` and
``lite dynamic`` (edge in front of ``edge storefront --dynamic`` with ``ECT: 2g`` and a shopper's cookie).

What the counts are: user-space instructions only (system calls, the kernel's copies and the network
stack are not counted), and ``memcpy``/``memmove`` reported apart: for a large block glibc copies with
``rep movsb``, which valgrind counts once per byte, so that column reads as bytes copied in large
blocks, not as the copy's cost. ``rest`` is everything else: the interpreter, the parsers, the
decision. The ratio to nginx is of ``rest``. Timings are ``bench.py``'s; this is where the CPU goes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (this directory's bench.py: ports, nginx's config, the storefronts' headers)

ROOT = Path(__file__).resolve().parents[1]
#: Pages served before counting: pools, caches, the model's compiled passes, the rewrite template.
WARMUP_PAGES = 300
#: How long a process under valgrind may take to start (edge imports River, Starlette, httpx... ~25 s here).
START_DEADLINE_S = 240.0


@dataclass
class Count:
    case: str
    pages: int
    instructions: int
    copied: int  # memcpy/memmove Ir (bytes, for large blocks)

    @property
    def rest(self) -> int:
        return self.instructions - self.copied


def valgrind(argv: list[str], out_dir: Path, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """``argv`` under callgrind, instrumentation off until asked (valgrind runs it in its own pid). Python runs
    with one hash seed: str and bytes hashes decide where dict and set entries go, and so how many probes each
    lookup makes, which would move a count by a percent or two from one process to the next."""
    popen["env"] = {**(env if env is not None else os.environ), "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/cg.%p.out", *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen,  # type: ignore[arg-type]
    )  # fmt: skip


def pages(port: int, headers: dict[str, str], n: int, expect: bytes | None) -> None:
    """``n`` GET / on one keep-alive connection; each must be a 200 (and hold ``expect``, when given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(n):
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or (expect is not None and expect not in body):
                raise SystemExit(f"bench_instructions: port {port} answered {response.status} without {expect!r}")
    finally:
        conn.close()


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def count(case: str, proc: subprocess.Popen, port: int, headers: dict[str, str], n: int, out_dir: Path, expect: bytes | None) -> Count:
    """Warm up uncounted, then count ``n`` pages: instrumentation on, the pages, off, a dump read back."""
    pages(port, headers, WARMUP_PAGES, expect)
    before = set(out_dir.glob(f"cg.{proc.pid}.out*"))
    control(proc.pid, "--instr=on")
    pages(port, headers, n, expect)
    control(proc.pid, "--instr=off")
    control(proc.pid, "--dump")
    deadline = time.monotonic() + 60
    while True:
        dumps = [p for p in set(out_dir.glob(f"cg.{proc.pid}.out*")) - before if p.stat().st_size > 0]
        if dumps:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_instructions: no callgrind dump for {case}")
        time.sleep(0.2)
    time.sleep(0.5)  # (the dump is written whole before the next poll reads it)
    return Count(case, n, *read_dump(max(dumps, key=lambda p: p.stat().st_mtime)))


_LINE = re.compile(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)$")


def read_dump(path: Path) -> tuple[int, int]:
    """(all instructions, memcpy/memmove instructions) of one callgrind dump, by ``callgrind_annotate``."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", str(path)], capture_output=True, text=True, check=True).stdout
    total = copied = 0
    for line in out.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        ir, where = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in where:
            total = ir
        elif re.search(r":__(memcpy|memmove)\w*", where):
            copied += ir
    if total <= 0:
        raise SystemExit(f"bench_instructions: {path} holds no instructions")
    return total, copied


def first_page(port: int, headers: dict[str, str]) -> str | None:
    """The tier of edge's first page. Under valgrind its first pages translate new code for seconds, which
    can outlast edge's upstream deadlines (a 504): a few tries."""
    for attempt in range(10):
        try:
            return bench.fetch(port, headers)[0]
        except urllib.error.HTTPError as exc:
            if exc.code != 504 or attempt == 9:
                raise
            time.sleep(1.0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="pages counted per case")
    parser.add_argument("--edge", action="append", default=[], metavar="NAME=TREE", help="an edge source tree (repeat); default this one")
    parser.add_argument("--dynamic", action="store_true", help="also nginx and edge (lite) in front of the dynamic storefront")
    parser.add_argument("--json", help="also write the counts here")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("bench_instructions: valgrind is missing (Debian's package valgrind; scripts/system-deps.sh installs it)")
    have_nginx = bench.ensure_tools()
    edges = [spec.split("=", 1) for spec in args.edge] or [["edge", str(ROOT)]]
    tmp = Path(tempfile.mkdtemp(prefix="edge-instr-"))
    shop, dynamic = bench.free_port(), bench.free_port()
    procs = {
        "storefront": subprocess.Popen([*bench.EDGE, "storefront", "--port", str(shop), "--log-level", "warning"]),
        "dynamic storefront": subprocess.Popen([*bench.EDGE, "storefront", "--dynamic", "--port", str(dynamic), "--log-level", "warning"]),
    }
    # (case, process name, port, request headers, bytes every answer holds)
    cases: list[tuple[str, str, int, dict[str, str], bytes | None]] = []
    try:
        bench.wait_ready(f"http://127.0.0.1:{shop}/")
        bench.wait_ready(f"http://127.0.0.1:{dynamic}/")
        fronts = [("nginx", shop, bench.HINTS_4G)] + ([("nginx dynamic", dynamic, bench.DYNAMIC)] if args.dynamic else [])
        for name, upstream, headers in fronts if have_nginx else []:
            prefix = tmp / name.replace(" ", "-")
            prefix.mkdir()
            port = bench.free_port()
            (prefix / "nginx.conf").write_text(bench.NGINX_CONF.format(prefix=prefix, upstream=upstream, port=port))
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            procs[name] = valgrind([nginx, "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-g", "daemon off; master_process off;"], tmp)
            bench.wait_ready(f"http://127.0.0.1:{port}/", START_DEADLINE_S, procs[name])
            cases.append((name, name, port, headers, None))
        port = bench.free_port()
        procs["python floor"] = valgrind([sys.executable, str(Path(__file__).with_name("floor_proxy.py")), str(shop), str(port)], tmp)
        bench.wait_ready(f"http://127.0.0.1:{port}/", START_DEADLINE_S, procs["python floor"])
        cases.append(("python floor", "python floor", port, bench.HINTS_4G, b"/__edge/switch"))
        for name, tree in edges:
            for label, upstream, headers in [(name, shop, bench.HINTS_4G)] + ([(f"lite dynamic ({name})", dynamic, bench.DYNAMIC)] if args.dynamic else []):
                port, admin = bench.free_port(), bench.free_port()
                env = {**os.environ, "EDGE_FEEDBACK_KEY": "bench-key-0123456789abcdef", "PYTHONPATH": tree}
                procs[label] = valgrind(
                    [sys.executable, "-m", "edge.runtime.cli", "serve", "--upstream", f"http://127.0.0.1:{upstream}", "--port", str(port),
                     "--admin-port", str(admin), "--log-level", "warning", "--workers", "1", "--upstream-transport", "http1"],
                    tmp, env=env, cwd=tree,
                )  # fmt: skip
                bench.wait_ready(f"http://127.0.0.1:{admin}/readyz", START_DEADLINE_S, procs[label])
                tier = "full" if headers is bench.HINTS_4G else "lite"
                if first_page(port, headers) != tier:
                    raise SystemExit(f"bench_instructions: {label} does not serve tier {tier}")
                cases.append((label, label, port, headers, b"/__edge/"))
        counts = [count(case, procs[proc], port, headers, args.requests, tmp, expect) for case, proc, port, headers, expect in cases]
        report(counts)
        if args.json:
            rows = [{"case": c.case, "pages": c.pages, "instructions": c.instructions, "copied": c.copied, "rest": c.rest} for c in counts]
            Path(args.json).write_text(json.dumps({"rows": rows}, indent=2))
    finally:
        bench.stop(procs.values())
        shutil.rmtree(tmp, ignore_errors=True)


def report(counts: list[Count]) -> None:
    nginx = {c.case: c for c in counts if c.case.startswith("nginx")}
    print(f"{'case':<24}{'pages':>7}{'K instr/page':>14}{'memcpy K/page':>15}{'rest K/page':>13}{'rest × nginx':>14}")
    for c in counts:
        ref = nginx.get("nginx dynamic" if c.case.startswith(("lite dynamic", "nginx dynamic")) else "nginx")
        ratio = f"{c.rest / ref.rest:.1f}" if ref is not None and ref.rest > 0 else "-"
        print(f"{c.case:<24}{c.pages:>7}{c.instructions / c.pages / 1000:>14.1f}{c.copied / c.pages / 1000:>15.1f}{c.rest / c.pages / 1000:>13.1f}{ratio:>14}")


if __name__ == "__main__":
    main()
