"""One command: demo storefront + edge + a headless Locust run of the phone profiles, then a report.

    .venv/bin/python loadtests/report.py --users 50 --duration 2m            # local runner
    .venv/bin/python loadtests/report.py --users 50 --duration 2m --workers 2  # master + 2 worker processes
    .venv/bin/python loadtests/report.py --profiles regular2g,4g --no-compare-full -u 20 -t 30s

It starts ``edge storefront`` and ``edge serve`` as subprocesses on free loopback ports,
runs ``locust --headless -u N -r R -t DURATION --csv … --html …`` with
``loadtests/locustfile.py`` (``--compare-full`` by default: each profile also runs forced to
the full page, in the same run), and prints per profile: page-complete time (page + images)
p50/p95 as edge served it and forced full, bytes per page, the lite share after the warm-up,
and edge's rolling ROC-AUC (``edge_model_roc_auc`` on the admin ``/metrics``; "n/a" if absent).
Locust's CSV and HTML reports and the run summary go to ``loadtests/results/`` (git-ignored).

With ``--workers N`` the master binds to loopback only and N ``locust --worker`` processes
connect to it (Locust's own ``--processes`` binds the master to every interface).
The helpers (:func:`start_stack`, :func:`run_locust`, :func:`load_summary`) are what
``tests/loadtests`` uses.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
LOCUSTFILE = HERE / "locustfile.py"
_BIN = Path(sys.executable).parent
EDGE_BIN = str(_BIN / "edge") if (_BIN / "edge").exists() else (shutil.which("edge") or "edge")
LOCUST_BIN = str(_BIN / "locust") if (_BIN / "locust").exists() else (shutil.which("locust") or "locust")
sys.path.insert(0, str(HERE))
from profiles import PROFILES  # noqa: E402

__all__ = ["Stack", "start_stack", "run_locust", "load_summary", "tier_shares", "client_rows", "CLIENTS", "main"]

#: Who the phones are, as the summary records them: Chromium (client hints), the two browsers that
#: send none (Safari, Firefox) and the app (Edge-Cell, Edge-Last-Request).
CLIENTS = ("chromium", "safari", "firefox", "app")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in [k for k in env if k.startswith("EDGE_")]:
        del env[key]  # flags only: the stack must not pick up a developer's EDGE_* settings
    return env


@dataclass
class Stack:
    """A running storefront + edge pair (and their logs)."""

    url: str
    admin_url: str
    storefront_url: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def log_tail(self, limit: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-limit:]}" for p in self.logs if p.exists())

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.admin_url}/metrics", timeout=5) as response:
            return response.read().decode()


def _wait(url: str, procs: list[subprocess.Popen], deadline: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        try:
            with opener.open(url, timeout=1) as response:
                if response.status < 300:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def start_stack(log_dir: Path, host: str = "127.0.0.1", edge_flags: tuple[str, ...] = ()) -> Stack:
    """``edge storefront`` and ``edge serve`` on free ports of ``host``; ready when this returns."""
    log_dir.mkdir(parents=True, exist_ok=True)
    sf_port, port, admin_port = free_port(host), free_port(host), free_port(host)
    stack = Stack(f"http://{host}:{port}", f"http://{host}:{admin_port}", f"http://{host}:{sf_port}")
    commands = {
        "storefront": ["storefront", "--host", host, "--port", str(sf_port), "--log-level", "warning"],
        "edge": ["serve", "--upstream", stack.storefront_url, "--host", host, "--port", str(port), "--admin-host", host,
                 "--admin-port", str(admin_port), "--log-level", "warning", "--read-timeout", "10", *edge_flags],
    }
    try:
        for name, args in commands.items():
            log = log_dir / f"{name}.log"
            with open(log, "wb") as out:
                stack.procs.append(subprocess.Popen([EDGE_BIN, *args], stdout=out, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, cwd=ROOT, env=_clean_env()))
            stack.logs.append(log)
            ready = f"{stack.storefront_url}/" if name == "storefront" else f"{stack.admin_url}/readyz"
            _wait(ready, stack.procs, time.monotonic() + 30)
    except BaseException:
        stack.stop()
        raise
    return stack


def run_locust(host_url: str, prefix: Path, *, users: int, spawn_rate: float, duration: str, profiles: str = "all",
               compare_full: bool = True, workers: int = 0, warmup: float = 10.0, extra: tuple[str, ...] = (),
               bind_host: str = "127.0.0.1", worker_wrapper: tuple[str, ...] = ()) -> int:
    """Run Locust headless; CSV at ``prefix_*.csv``, HTML at ``prefix.html``, summary at ``prefix_summary.json``.

    ``workers`` > 0: one master (bound to ``bind_host``) and that many worker processes, each
    started under ``worker_wrapper`` (``netns.sh`` passes ``ip netns exec NS``). Returns Locust's exit code.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    common = ["-f", str(LOCUSTFILE)]
    options = [
        "--host", host_url, "--headless", "-u", str(users), "-r", str(spawn_rate), "-t", duration,
        "--csv", str(prefix), "--html", f"{prefix}.html", "--summary-json", f"{prefix}_summary.json",
        "--profiles", profiles, "--warmup", str(warmup), "--stop-timeout", "0", "--only-summary",
        *(["--compare-full"] if compare_full else []), *extra,
    ]
    env = _clean_env()
    if not workers:
        return subprocess.run([LOCUST_BIN, *common, *options], cwd=ROOT, env=env).returncode
    port = free_port(bind_host)
    master = subprocess.Popen([LOCUST_BIN, *common, *options, "--master", "--expect-workers", str(workers),
                               "--master-bind-host", bind_host, "--master-bind-port", str(port)], cwd=ROOT, env=env)
    procs = [
        subprocess.Popen([*worker_wrapper, LOCUST_BIN, *common, "--worker", "--master-host", bind_host,
                          "--master-port", str(port), *extra], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        return master.wait()
    finally:
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(5)


def load_summary(prefix: Path) -> dict:
    return json.loads(Path(f"{prefix}_summary.json").read_text())


def tier_shares(summary: dict, phase: str = "steady", variant: str = "edge") -> dict[str, dict]:
    """Per profile (and per client, ``profile/safari`` …): responses seen and the share served lite or minimal."""
    out: dict[str, dict] = {}
    for key, n in summary["counts"].items():
        parts = key.split("|")
        if parts[0] != "tier" or parts[2] != variant or parts[4] != phase:
            continue
        _, profile, _, kind, _, tier = parts
        if tier == "holdback":
            continue  # the control group always gets the full page; not part of the share
        for group in (profile, f"{profile}/{kind}"):
            row = out.setdefault(group, {"total": 0, "lite": 0})
            row["total"] += n
            row["lite"] += n if tier in ("lite", "minimal") else 0
    for row in out.values():
        row["share"] = row["lite"] / row["total"] if row["total"] else None
    return out


def client_rows(summary: dict, variant: str = "edge") -> list[dict]:
    """Per profile and client (:data:`CLIENTS`): page views, page-complete p50/p95 (ms, every phase, the app's
    native home screen left out) and the share served lite or minimal after the warm-up."""
    shares = tier_shares(summary, variant=variant)
    rows = []
    for name in summary["meta"]["profiles"]:
        pages = [r for r in summary["pages"].get(f"{name}|{variant}", []) if r[4] != "app-home"]
        for client in CLIENTS:
            ms = [r[0] for r in pages if r[5] == client]
            share = shares.get(f"{name}/{client}", {})
            if not ms and not share:
                continue
            rows.append({"profile": name, "client": client, "pages": len(ms), "p50_ms": _pct(ms, 50), "p95_ms": _pct(ms, 95),
                         "steady": share.get("total", 0), "lite_share": share.get("share")})
    return rows


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _fmt_s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}s"


def roc_auc(metrics_text: str) -> str:
    found = re.findall(r'^edge_model_roc_auc\{model="([^"]+)"\} (\S+)$', metrics_text, re.M)
    return ", ".join(f"{m}={float(v):.3f}" for m, v in found) if found else "n/a"


def _counter(metrics_text: str, name: str) -> dict[str, float]:
    return {labels: float(v) for labels, v in re.findall(rf"^{name}\{{(.*?)\}} (\S+)$", metrics_text, re.M) if float(v)}


def render(summary: dict, metrics_text: str | None, prefix: Path) -> str:
    pages = summary["pages"]
    shares = tier_shares(summary)
    lines = [
        f"{'profile':<13}{'pages':>6}  {'edge p50':>8} {'p95':>6}  {'full p50':>8} {'p95':>6}  {'KB/page edge':>12} {'full':>6}  {'lite share':>10}  expect",
    ]
    for name in summary["meta"]["profiles"]:
        edge = [r for r in pages.get(f"{name}|edge", []) if r[4] != "app-home"]
        full = [r for r in pages.get(f"{name}|full", []) if r[4] != "app-home"]
        e_ms, f_ms = [r[0] for r in edge], [r[0] for r in full]
        e_kb = sum(r[1] for r in edge) / len(edge) / 1024 if edge else None
        f_kb = sum(r[1] for r in full) / len(full) / 1024 if full else None
        share = shares.get(name, {}).get("share")
        lines.append(
            f"{name:<13}{len(edge):>6}  {_fmt_s(_pct(e_ms, 50)):>8} {_fmt_s(_pct(e_ms, 95)):>6}  "
            f"{_fmt_s(_pct(f_ms, 50)):>8} {_fmt_s(_pct(f_ms, 95)):>6}  "
            f"{'-' if e_kb is None else f'{e_kb:.0f}':>12} {'-' if f_kb is None else f'{f_kb:.0f}':>6}  "
            f"{'-' if share is None else f'{share:.0%}':>10}  {PROFILES[name].expect or 'any'}"
        )
    lines.append("page-complete = HTML + its images, from navigation start; 'full' = same profile with cookie edge_tier=full")
    lines.append("lite share = lite or minimal pages after the warm-up")
    lines.append("")
    lines.append("by client (safari and firefox send no client hints; chromium sends ECT/RTT/Downlink; app: Edge-Cell, Edge-Last-Request):")
    lines.append(f"{'profile':<13}{'client':<9}{'pages':>6}  {'edge p50':>8} {'p95':>6}  {'lite share':>10} {'(of)':>5}")
    for r in client_rows(summary):
        share = r["lite_share"]
        lines.append(
            f"{r['profile']:<13}{r['client']:<9}{r['pages']:>6}  {_fmt_s(r['p50_ms']):>8} {_fmt_s(r['p95_ms']):>6}  "
            f"{'-' if share is None else f'{share:.0%}':>10} {r['steady']:>5}"
        )
    counts = summary["counts"]
    beacon = {k.split("|", 1)[1]: v for k, v in counts.items() if k.startswith("beacon|")}
    tokens = {k.split("|", 2)[2]: v for k, v in counts.items() if k.startswith("token|")}
    lines.append(f"beacons: {beacon or 'none'}   app tokens: {tokens or 'none'}")
    if metrics_text is not None:
        lines.append(f"edge_model_roc_auc: {roc_auc(metrics_text)}")
        lines.append(f"edge_labels_total: {_counter(metrics_text, 'edge_labels_total') or 'none'}")
        lines.append(f"edge_requests_total: {_counter(metrics_text, 'edge_requests_total')}")
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        with failures.open() as f:
            rows = list(csv.DictReader(f))
        lines.append("failures: " + ("none" if not rows else ""))
        lines += [f"  {r['Occurrences']:>5}  {r['Method']} {r['Name']}: {r['Error']}" for r in rows]
    lines.append(f"reports: {prefix}_stats.csv, {prefix}.html, {prefix}_summary.json")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-u", "--users", type=int, default=50)
    parser.add_argument("-r", "--spawn-rate", type=float, default=10)
    parser.add_argument("-t", "--duration", default="2m")
    parser.add_argument("--profiles", default="all", help=f"comma list of {', '.join(PROFILES)} (default all)")
    parser.add_argument("--no-compare-full", action="store_true", help="skip the forced-full twin of each profile")
    parser.add_argument("--workers", type=int, default=0, help="distributed: a master and this many worker processes")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--hintless-share", type=float, default=None,
                        help="share of browser users that are Safari/Firefox, sending no client hints (locustfile default 0.35)")
    parser.add_argument("--name", default=None, help="results file prefix (default: run-<timestamp>)")
    # Used by netns.sh: edge and the master on the host end of a veth, workers inside a namespace.
    parser.add_argument("--bind-host", default="127.0.0.1", help="address for storefront, edge and the master")
    parser.add_argument("--worker-netns", default=None, help="run each worker under 'ip netns exec NAME'")
    parser.add_argument("--kernel-shaping", action="store_true", help="bandwidth shaped by tc: clients only add RTT")
    parser.add_argument("--source-map", default="", help="profile=ip,... local address per profile")
    args = parser.parse_args(argv)
    extra = (*(["--kernel-shaping"] if args.kernel_shaping else []), *(["--source-map", args.source_map] if args.source_map else []),
             *(["--hintless-share", str(args.hintless_share)] if args.hintless_share is not None else []))
    wrapper = ("ip", "netns", "exec", args.worker_netns) if args.worker_netns else ()
    prefix = RESULTS / (args.name or time.strftime("run-%Y%m%d-%H%M%S"))
    stack = start_stack(RESULTS / "logs", host=args.bind_host)
    try:
        print(f"edge {stack.url} → storefront {stack.storefront_url}; admin {stack.admin_url}", flush=True)
        rc = run_locust(stack.url, prefix, users=args.users, spawn_rate=args.spawn_rate, duration=args.duration,
                        profiles=args.profiles, compare_full=not args.no_compare_full, workers=args.workers,
                        warmup=args.warmup, extra=extra, bind_host=args.bind_host, worker_wrapper=wrapper)
        try:
            metrics_text = stack.metrics()
        except OSError:
            metrics_text = None
    finally:
        stack.stop()
    summary = load_summary(prefix)
    mode = f"distributed: 1 master + {args.workers} workers" if args.workers else "local runner"
    print(f"\n== edge load report: {args.users} users, {args.duration}, {mode}, locust exit {rc} ==")
    print(render(summary, metrics_text, prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
