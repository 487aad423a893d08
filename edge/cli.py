"""The ``edge`` command line. Every ``serve`` flag is also an ``EDGE_*`` environment variable.

    edge serve --upstream http://127.0.0.1:8081 --port 8080 --admin-port 9090 --policy policies/shop.toml
    edge demo                       # the demo storefront with edge in front; prints URLs and curl lines
    edge storefront --port 8081     # the demo storefront alone
    edge policy check FILE...       # validate policy files (exit 1 with file, key and problem)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from edge.errors import PolicyError, SettingsError
from edge.settings import Settings

__all__ = ["main"]

EXIT_BAD_CONFIG = 2


def _settings(**flags: object) -> Settings:
    try:
        return Settings.from_env(**{k: v for k, v in flags.items() if v is not None})
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _build(settings: Settings):  # noqa: ANN202
    from edge.app import build_edge

    try:
        return build_edge(settings)
    except PolicyError as exc:
        click.echo(f"edge: invalid policy: {exc}", err=True)
        sys.exit(EXIT_BAD_CONFIG)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """edge: adaptive mobile page serving in front of a storefront."""


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
    click.option("--upstream-transport", type=click.Choice(["aiohttp", "httpx"]), help="What carries httpx's requests upstream.  [env EDGE_UPSTREAM_TRANSPORT; default aiohttp]"),
    click.option("--preserve-host/--no-preserve-host", default=None, help="Forward the client's Host.  [env EDGE_PRESERVE_HOST]"),
    click.option("--max-rewrite-bytes", type=int, help="Larger pages stream through unmodified.  [env EDGE_MAX_REWRITE_BYTES]"),
    click.option("--fail-mode", type=click.Choice(["open", "closed"]), help="open: serve the original on errors.  [env EDGE_FAIL_MODE]"),
    click.option("--log-level", help="debug, info, warning, error.  [env EDGE_LOG_LEVEL; default info]"),
]


def _with_serve_options(func):  # noqa: ANN001, ANN202
    for option in reversed(_serve_options):
        func = option(func)
    return func


@main.command()
@_with_serve_options
def serve(**flags: object) -> None:
    """Run edge as a reverse-proxy sidecar in front of --upstream."""
    from edge.server import Listener, run

    settings = _settings(**flags)
    _logging(settings.log_level)
    edge = _build(settings)
    click.echo(f"edge: public http://{settings.host}:{settings.port} → {settings.upstream}; admin http://{settings.admin_host}:{settings.admin_port}/metrics", err=True)
    run(
        [
            Listener(
                edge.public, settings.host, settings.port, "public",
                forwarded_allow_ips=settings.forwarded_allow_ips, date_header=False,
            ),
            Listener(edge.admin, settings.admin_host, settings.admin_port, "admin", lifespan="off"),
        ],
        log_level=settings.log_level,
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8081, show_default=True)
@click.option("--log-level", default="info", show_default=True)
def storefront(host: str, port: int, log_level: str) -> None:
    """Run the bundled demo storefront alone."""
    from edge.demo import build_storefront
    from edge.server import Listener, run

    _logging(log_level)
    run([Listener(build_storefront(), host, port, "storefront")], log_level=log_level)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for all three ports.")
@click.option("--port", type=int, default=8080, show_default=True, help="edge's public port.")
@click.option("--admin-port", type=int, default=9090, show_default=True)
@click.option("--storefront-port", type=int, default=8081, show_default=True)
@click.option("--log-level", default="warning", show_default=True)
def demo(host: str, port: int, admin_port: int, storefront_port: int, log_level: str) -> None:
    """The demo storefront with edge in front of it, on loopback."""
    from edge.demo import build_storefront
    from edge.server import Listener, run

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
def policy_check(files: tuple[Path, ...]) -> None:
    """Validate policy FILES; print each one's tiers and widget plan. Exit 1 on the first error."""
    from edge.policy import load_policy

    failed = False
    for path in files:
        try:
            compiled = load_policy(path)
        except PolicyError as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
            continue
        click.echo(f"{path}: ok (policy {compiled.name!r}: lite at p ≥ {compiled.lite_threshold}, minimal at p ≥ {compiled.minimal_threshold})")
        for rule in sorted(compiled.widgets, key=lambda r: -r.priority):
            target = rule.widget or rule.selector
            click.echo(f"  {target:<24} priority {rule.priority:>3}   lite: {rule.action('lite'):<5} minimal: {rule.action('minimal')}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
