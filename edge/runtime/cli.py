"""The ``edge`` command line. Every ``serve`` flag is also an ``EDGE_*`` environment variable.

    edge serve --upstream http://127.0.0.1:8081 --port 8080 --admin-port 9090 --policy policies/shop.toml
    edge demo                       # the demo storefront with edge in front; prints URLs and curl lines
    edge storefront --port 8081     # the demo storefront alone
    edge policy check FILE...       # validate policy files (exit 1 with file, key and problem)
    edge preview URL                # each tier of a page in headless Chromium on 2G, 3G and 4G: preview.png, report.html
    edge learner --state redis://…   # a fleet's learner: one model from every sidecar's labels (docs/operations.md)
    edge replay TRACES...           # replay cellular traces (G-NetTrack, Norway, Mahimahi, per-second logs) through the model; prequential evaluation
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import click

from edge.core.errors import PolicyError, SettingsError
from edge.core.settings import ClientSocket, CpuPolicy, FailMode, LogLevel, ModelName, Settings, UpstreamTransport

if TYPE_CHECKING:
    from edge.pipeline.policy import Policy
    from edge.runtime.app import Edge

__all__ = ["main"]

EXIT_BAD_CONFIG = 2
#: The learner's admin port unless told otherwise (a sidecar's is 9090).
LEARNER_ADMIN_PORT = 9102


def _settings(**flags: Any) -> Settings:
    try:
        return Settings.from_env(None, **{k: v for k, v in flags.items() if v is not None})
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _build(settings: Settings) -> Edge:
    from edge.runtime.app import build_edge

    try:
        return build_edge(settings)
    except PolicyError as exc:
        click.echo(f"edge: invalid policy: {exc}", err=True)
        sys.exit(EXIT_BAD_CONFIG)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class _Commands(click.Group):
    """The edge command group; ``replay`` and ``preview`` are loaded on first use (the model's numeric stack, the browser driver)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "replay", "preview"])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "replay":
            from edge.offline.replay import replay_command

            return replay_command
        if name == "preview":
            from edge.preview.command import preview_command

            return preview_command
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """edge: adaptive mobile page serving in front of a storefront."""


_state_options = [
    click.option("--state", help="A fleet's Redis: redis://[:password@]host:port/db or rediss://…; unset = learn alone.  [env EDGE_STATE]"),
    click.option("--state-prefix", help="Prefix of every Redis key (one Redis, several shops).  [env EDGE_STATE_PREFIX; default edge:]"),
    click.option("--state-outbox-max", type=int, help="Labels kept while Redis is slow or down.  [env EDGE_STATE_OUTBOX_MAX; default 10000]"),
    click.option("--state-stream-max", type=int, help="Entries kept in the fleet's label stream.  [env EDGE_STATE_STREAM_MAX; default 100000]"),
]

_serve_options = [
    click.option("--upstream", help="Storefront base URL.  [env EDGE_UPSTREAM; default http://127.0.0.1:8081]"),
    click.option("--host", help="Public listen address.  [env EDGE_HOST; default 127.0.0.1]"),
    click.option("--port", type=int, help="Public port.  [env EDGE_PORT; default 8080]"),
    click.option("--admin-host", help="Admin listen address.  [env EDGE_ADMIN_HOST; default 127.0.0.1]"),
    click.option("--admin-port", type=int, help="Admin port: /metrics /healthz /readyz.  [env EDGE_ADMIN_PORT; default 9090]"),
    click.option("--policy", type=click.Path(path_type=Path), help="Policy file.  [env EDGE_POLICY; default policies/demo.toml]"),
    click.option("--connect-timeout", type=float, help="Seconds to connect upstream.  [env EDGE_CONNECT_TIMEOUT; default 2]"),
    click.option("--read-timeout", type=float, help="Seconds to wait for upstream (504 after).  [env EDGE_READ_TIMEOUT; default 15]"),
    click.option("--forwarded-allow-ips", help="Trust X-Forwarded-* from these load balancers.  [env EDGE_FORWARDED_ALLOW_IPS; default none]"),
    click.option("--client-socket", type=click.Choice(get_args(ClientSocket)), help="direct: read the shopper's RTT from the socket (TCP_INFO); behind-proxy: from --client-rtt-header, sent by a trusted balancer.  [env EDGE_CLIENT_SOCKET; default direct]"),
    click.option("--client-rtt-header", help="Header a trusted balancer puts the shopper's RTT in, microseconds (nginx $tcpinfo_rtt).  [env EDGE_CLIENT_RTT_HEADER; default X-Client-RTT]"),
    click.option("--upstream-transport", type=click.Choice(get_args(UpstreamTransport)), help="What carries httpx's requests upstream.  [env EDGE_UPSTREAM_TRANSPORT; default http1]"),
    click.option("--preserve-host/--no-preserve-host", default=None, help="Forward the client's Host (default) or send the upstream's own.  [env EDGE_PRESERVE_HOST; default on]"),
    click.option("--max-rewrite-bytes", type=int, help="Larger pages stream through unmodified.  [env EDGE_MAX_REWRITE_BYTES]"),
    click.option("--rewrite-cache-bytes", type=int, help="Layouts kept for pages served again byte for byte; 0 = off.  [env EDGE_REWRITE_CACHE_BYTES; default 8 MiB]"),
    click.option("--graceful-timeout", type=float, help="Seconds SIGTERM waits for in-flight requests.  [env EDGE_GRACEFUL_TIMEOUT; default 20]"),
    click.option("--admin-token", help="Bearer token for admin POST endpoints.  [env EDGE_ADMIN_TOKEN; default none]"),
    click.option("--model", type=click.Choice(get_args(ModelName)), help="Who predicts: auto = rules until the River model earns trust.  [env EDGE_MODEL; default auto]"),
    click.option("--checkpoint", help="Model checkpoint file (restored at start, written periodically and at exit).  [env EDGE_CHECKPOINT]"),
    click.option("--tier-margin", type=float, help="Log-odds p must clear a threshold by to switch a client's tier; 0 = off.  [env EDGE_TIER_MARGIN; default 0.5]"),
    click.option("--tier-dwell-s", type=float, help="Seconds after which a client's tier is chosen afresh; 0 = off.  [env EDGE_TIER_DWELL_S; default 600]"),
    click.option("--max-cells", type=int, help="Cells remembered in the per-cell statistics.  [env EDGE_MAX_CELLS; default 50000]"),
    click.option("--max-replay-entries", type=int, help="Feedback nonces remembered against replays.  [env EDGE_MAX_REPLAY_ENTRIES; default 100000]"),
    click.option("--pool-size", type=int, help="Connections kept to the storefront.  [env EDGE_POOL_SIZE; default 256]"),
    click.option("--pool-timeout", type=float, help="Seconds a request waits for a free upstream connection (503 after).  [env EDGE_POOL_TIMEOUT; default 10]"),
    click.option("--header-timeout", type=float, help="Seconds for a request head to arrive (408 after).  [env EDGE_HEADER_TIMEOUT; default 20]"),
    click.option("--keepalive-timeout", type=float, help="Idle seconds between requests on a connection.  [env EDGE_KEEPALIVE_TIMEOUT; default 15]"),
    click.option("--body-timeout", type=float, help="Longest pause in a request body (408 after).  [env EDGE_BODY_TIMEOUT; default 30]"),
    click.option("--max-connections", type=int, help="Client connections per process.  [env EDGE_MAX_CONNECTIONS; default 4096]"),
    click.option("--max-request-line", type=int, help="Longest request line (414 after).  [env EDGE_MAX_REQUEST_LINE; default 8192]"),
    click.option("--max-header-bytes", type=int, help="Longest request header field (431 after).  [env EDGE_MAX_HEADER_BYTES; default 16384]"),
    click.option("--max-headers", type=int, help="Most request header fields (431 after).  [env EDGE_MAX_HEADERS; default 100]"),
    click.option("--max-head-bytes", type=int, help="Largest request head (431 after).  [env EDGE_MAX_HEAD_BYTES; default 65536]"),
    click.option("--request-buffer-bytes", type=int, help="Request bodies up to this size are read whole before the storefront is asked.  [env EDGE_REQUEST_BUFFER_BYTES; default 65536]"),
    click.option("--max-streaming-uploads", type=int, help="Larger uploads streamed at once (0: pool size / 4).  [env EDGE_MAX_STREAMING_UPLOADS; default 0]"),
    click.option("--fail-mode", type=click.Choice(get_args(FailMode)), help="open: serve the original on errors.  [env EDGE_FAIL_MODE]"),
    click.option("--log-level", type=click.Choice(get_args(LogLevel)), help="How much edge logs.  [env EDGE_LOG_LEVEL; default info]"),
    click.option("--workers", type=int, help="Worker processes sharing the ports (1: one per sidecar, scale by pods).  [env EDGE_WORKERS; default 1]"),
    click.option("--cpu-policy", type=click.Choice(get_args(CpuPolicy)), help="batch: Linux SCHED_BATCH for edge's processes, for CPUs shared with the storefront.  [env EDGE_CPU_POLICY; default normal]"),
    *_state_options,
]


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` or ``name=VALUE``.

    >>> _without_option(["--port", "1", "--workers", "2", "--workers=3"], "--workers")
    ['--port', '1']
    """
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _with_options(options: list[Callable[..., Any]]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _with_serve_options(func: Callable[..., None]) -> Callable[..., None]:
    return _with_options(_serve_options)(func)


@main.command()
@_with_serve_options
def serve(**flags: Any) -> None:
    """Run edge as a reverse-proxy sidecar in front of --upstream."""
    import os

    from edge.runtime.server import Listener, connection_limits, run
    from edge.runtime.workers import WORKER_INDEX_ENV, supervise, worker_sockets

    settings = _settings(**flags)
    _logging(settings.log_level)
    if settings.cpu_policy != "normal":  # (before the workers start: they inherit it)
        from edge.runtime import cpu_policy

        try:
            cpu_policy.apply(settings.cpu_policy)
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None
        click.echo(f"edge: cpu policy {settings.cpu_policy}", err=True)
    workers = settings.workers
    inherited = worker_sockets()
    if workers > 1 and inherited is None:
        argv = _without_option(sys.argv[2:], "--workers")
        click.echo(f"edge: {workers} workers on http://{settings.host}:{settings.port} (admin {settings.admin_port})", err=True)
        sys.exit(supervise(settings, workers, argv))
    if inherited is not None and settings.checkpoint:
        settings = settings.replace(checkpoint=f"{settings.checkpoint}.{os.environ.get(WORKER_INDEX_ENV, '0')}")
    edge = _build(settings)
    click.echo(f"edge: public http://{settings.host}:{settings.port} → {settings.upstream}; admin http://{settings.admin_host}:{settings.admin_port}/metrics", err=True)
    public_sock, admin_sock = inherited if inherited is not None else (None, None)
    limits = connection_limits(settings)
    run(
        [
            Listener(
                edge.public, settings.host, settings.port, "public",
                forwarded_allow_ips=settings.forwarded_allow_ips, date_header=False, sock=public_sock,
                limits=limits, keepalive_timeout=settings.keepalive_timeout,
                tcp_info=True, queue_only=settings.client_socket != "direct", fast_path=edge.fast_path,
            ),
            Listener(
                edge.admin, settings.admin_host, settings.admin_port, "admin", lifespan="off", sock=admin_sock,
                limits=limits, keepalive_timeout=settings.keepalive_timeout,
            ),
        ],
        log_level=settings.log_level,
        graceful_timeout=settings.graceful_timeout,
    )


@main.command()
@click.option("--admin-host", help="Admin listen address.  [env EDGE_ADMIN_HOST; default 127.0.0.1]")
@click.option("--admin-port", type=int, help="/metrics /healthz /readyz /admin/learner.  [env EDGE_ADMIN_PORT; default 9102]")
@click.option("--model", type=click.Choice(get_args(ModelName)), help="The model it starts from when Redis holds none.  [env EDGE_MODEL; default auto]")
@click.option("--checkpoint", help="Also checkpoint the fleet's model here; restored when Redis holds no model.  [env EDGE_CHECKPOINT]")
@click.option("--publish-interval", type=float, default=1.0, show_default=True, help="Seconds between published model versions (when it learned something).")
@click.option("--log-level", type=click.Choice(get_args(LogLevel)), help="How much it logs.  [env EDGE_LOG_LEVEL; default info]")
@_with_options(_state_options)
def learner(publish_interval: float, **flags: Any) -> None:
    """The fleet's learner: one model from every sidecar's labels, published to Redis (needs --state and EDGE_FEEDBACK_KEY)."""
    import os

    from edge.runtime.learner import build_learner_app
    from edge.runtime.server import Listener, run

    if flags.get("admin_port") is None and "EDGE_ADMIN_PORT" not in os.environ:
        flags["admin_port"] = LEARNER_ADMIN_PORT
    settings = _settings(**flags)
    if not settings.state:
        raise click.UsageError("edge learner needs --state (or EDGE_STATE): the fleet's Redis")
    _logging(settings.log_level)
    app, learner = build_learner_app(settings, publish_s=publish_interval)
    click.echo(f"edge learner {learner.identity}: admin http://{settings.admin_host}:{settings.admin_port}/admin/learner", err=True)
    run([Listener(app, settings.admin_host, settings.admin_port, "learner")], log_level=settings.log_level)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8081, show_default=True)
@click.option("--log-level", default="info", show_default=True)
@click.option("--dynamic", is_flag=True, help="Every page per request: CSRF tokens, script nonces, cart count, recently viewed, time.")
def storefront(host: str, port: int, log_level: str, dynamic: bool) -> None:
    """Run the bundled demo storefront alone."""
    from edge.demo import build_storefront
    from edge.runtime.server import Listener, run

    _logging(log_level)
    run([Listener(build_storefront(dynamic=dynamic), host, port, "storefront")], log_level=log_level)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for all three ports.")
@click.option("--port", type=int, default=8080, show_default=True, help="edge's public port.")
@click.option("--admin-port", type=int, default=9090, show_default=True)
@click.option("--storefront-port", type=int, default=8081, show_default=True)
@click.option("--log-level", default="warning", show_default=True)
def demo(host: str, port: int, admin_port: int, storefront_port: int, log_level: str) -> None:
    """The demo storefront with edge in front of it, on loopback."""
    from edge.demo import build_storefront
    from edge.runtime.server import Listener, run

    settings = _settings(
        upstream=f"http://{host}:{storefront_port}", host=host, port=port, admin_host=host, admin_port=admin_port, log_level=log_level
    )
    _logging(log_level)
    edge = _build(settings)
    base = f"http://{host}:{port}"
    click.echo(
        f"""edge demo
  storefront (direct):  http://{host}:{storefront_port}/
  through edge:         {base}/
  metrics:              http://{host}:{admin_port}/metrics

A shopper on 2G gets the light page:
  curl -s -o /dev/null -D - -H 'ECT: 2g' {base}/ | grep -i -E 'edge-tier|content-length'
A shopper on good 4G gets the full page:
  curl -s -o /dev/null -D - -H 'ECT: 4g' -H 'RTT: 50' -H 'Downlink: 10' {base}/ | grep -i -E 'edge-tier|content-length'
An app on an EDGE cell whose last request took 4 s for 40 KB:
  curl -s -o /dev/null -D - -H 'Edge-Cell: id="404-45-1207-88123", radio=edge' -H 'Edge-Last-Request: ms=4000, bytes=40000' {base}/ | grep -i edge-tier
Each tier side by side, loaded in headless Chromium on Regular 2G, Slow 3G and 4G (writes preview/preview.png, preview/report.html):
  {sys.argv[0]} preview http://{host}:{storefront_port}/ --out preview

Ctrl-C stops it.""",
        err=True,
    )
    run(
        [
            Listener(build_storefront(), host, storefront_port, "storefront"),
            Listener(edge.public, host, port, "public", date_header=False),
            Listener(edge.admin, host, admin_port, "admin", lifespan="off"),
        ],
        log_level=log_level,
    )


@main.group()
def policy() -> None:
    """Work with policy files."""


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--page", "page", metavar="FILE_OR_URL", help="A sample page (HTML or JSON): print what each tier keeps and drops, and its bytes.")
@click.option("--path", "route_path", metavar="/ROUTE", help="Request path the page is served at (picks the route).  [default: the URL's path, else /]")
def policy_check(files: tuple[Path, ...], page: str | None, route_path: str | None) -> None:
    """Validate policy FILES; print each one's routes and widget plan. Exit 1 on any error.

    With --page, also rewrite the sample page at every tier and print what each keeps and drops
    and its bytes (HTML plus referenced images by declared size).
    """
    from edge.pipeline.policy import load_policy

    failed = False
    sample = None
    if page is not None:
        try:
            sample = _sample_page(page)
        except (OSError, ValueError) as exc:
            click.echo(f"error: cannot read page {page}: {exc}", err=True)
            sys.exit(1)
        if route_path is None:
            route_path = sample[3]
    for path in files:
        try:
            compiled = load_policy(path)
        except PolicyError as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
            continue
        routes = ", ".join(f"{r.name} {r.pattern}" for r in compiled.routes[1:]) or "none"
        click.echo(
            f"{path}: ok (policy {compiled.name!r}: lite at p ≥ {compiled.lite_threshold}, minimal at p ≥ {compiled.minimal_threshold};"
            f" holdback {compiled.holdback:g}; routes: {routes})"
        )
        plan = compiled.default if route_path is None else compiled.for_path(route_path)
        for w in sorted(plan.widgets, key=lambda w: -w.priority):
            click.echo(f"  {w.name:<24} priority {w.priority:>3}   lite: {w.actions['lite']:<8} minimal: {w.actions['minimal']}")
        if sample is not None:
            try:
                _print_tiers(compiled, sample, route_path or "/")
            except Exception as exc:  # noqa: BLE001 - any failure on the sample is reported, not raised
                click.echo(f"error: {path}: rewriting {page} failed: {exc}", err=True)
                failed = True
    sys.exit(1 if failed else 0)


def _sample_page(page: str) -> tuple[bytes, str, str | None, str]:
    """(body, kind "html"|"json", charset, path) of a sample page given as a file or an http(s) URL."""
    import re
    from urllib.parse import urlsplit

    if page.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(page, follow_redirects=True, timeout=10.0)
        except httpx.HTTPError as exc:
            raise OSError(str(exc)) from None
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "")
        body, path = response.content, urlsplit(str(response.url)).path or "/"
    else:
        body, content_type, path = Path(page).read_bytes(), "", "/"
    kind = "json" if "json" in content_type or (not content_type and body.lstrip()[:1] in (b"{", b"[")) else "html"
    m = re.search(r"charset=[\"']?([A-Za-z0-9_.:\-]+)", content_type, re.I) or re.search(
        rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_.:\-]+)", body[:4096], re.I
    )
    found: str | bytes | None = None if m is None else m.group(1)
    charset = found.decode("ascii") if isinstance(found, bytes) else found
    return body, kind, charset, path


def _print_tiers(compiled: Policy, sample: tuple[bytes, str, str | None, str], route_path: str) -> None:
    from edge.pipeline.rewrite import HtmlRewriter, JsonRewriter

    body, kind, charset, _ = sample
    route = compiled.for_path(route_path)
    click.echo(f"  page: {len(body):,} B {kind}{f' ({charset})' if charset else ''} at {route_path} → route {route.name!r}")
    if kind == "json":
        json_rewriter = JsonRewriter(compiled)
        for tier in ("full", "lite", "minimal"):
            out = body if tier == "full" else json_rewriter.rewrite(body, tier, route_path)
            click.echo(f"  {tier:<8} {len(out):>10,} B JSON")
        return
    html_rewriter = HtmlRewriter(compiled)
    for tier in ("full", "lite", "minimal"):
        _, report = html_rewriter.rewrite_with_report(body, tier, path=route_path, charset=charset)
        budget = "" if report.budget is None else f"  budget {report.budget:,} B: {'fits' if report.fits else 'OVER'}"
        click.echo(
            f"  {tier:<8} {report.total_bytes:>10,} B = {report.html_bytes:,} B HTML + {report.image_bytes:,} B in {report.images_kept} images{budget}"
        )
        click.echo(f"           kept: {_counted(report.kept) or '-'}")
        if report.dropped:
            click.echo(f"           dropped: {_counted(report.dropped)}")
        if report.collapsed:
            click.echo(f"           collapsed: {_counted(report.collapsed)}")
        for name, n in report.trimmed.items():
            click.echo(f"           trimmed: {name} (-{n} items)")
        if report.images_dropped or report.images_rewritten:
            click.echo(f"           images: {report.images_rewritten} to a variant, {len(report.images_dropped)} dropped over the size cap")
        if report.scripts_deferred or report.scripts_dropped:
            click.echo(f"           scripts: {report.scripts_deferred} deferred, {report.scripts_dropped} dropped")
        if report.budget_dropped:
            click.echo(f"           dropped for the budget: {_counted(report.budget_dropped)}")


def _counted(names: list[str]) -> str:
    """Each widget once, in page order, with how many elements it matched when more than one.

    >>> _counted(["header", "div.tile", "div.tile", "div.tile", "footer"])
    'header, div.tile ×3, footer'
    """
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())


if __name__ == "__main__":  # pragma: no cover
    main()
