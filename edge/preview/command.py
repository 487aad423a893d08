"""``edge preview URL``: each tier of a page, as a shopper on each network would get it.

Fetch the page once, lay it out at every tier with edge's own rewriter, serve each tier from a
loopback :class:`~edge.preview.tiers.TierServer`, load it in headless Chromium under every network
profile (DevTools emulation, figures from :data:`edge.core.networks.PROFILES`), and write to ``--out``:

- ``preview.png``: one column per tier, the first screen and the whole page;
- ``report.html`` (opens offline: images embedded) and ``report.json``: per tier and network,
  bytes transferred, requests, FCP, LCP and load time, and the widgets kept, collapsed and dropped.

    edge preview http://127.0.0.1:8081/ --policy policies/demo.toml --out preview/

A page that cannot be fetched, or a tier that fails to load, is reported (in its cell), never
raised; the exit status is 1 when anything failed.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from edge.core.errors import PolicyError
from edge.core.networks import PROFILES, Profile
from edge.core.settings import DEFAULT_POLICY
from edge.pipeline.policy import Policy, load_policy
from edge.preview.browser import CDPError, Chromium, find_chromium
from edge.preview.measure import measure_load, render_png, screenshots
from edge.preview.report import Preview, html_report, json_report, sheet_html, sheet_width, table
from edge.preview.tiers import PageUnavailable, TierServer, fetch_page, make_variants

__all__ = ["preview_command", "run_preview"]

#: Networks a preview can emulate: the steady ones (a congested cell changes over a minute).
STEADY = [name for name, p in PROFILES.items() if p.period_s is None]
DEFAULT_PROFILES = ("regular2g", "slow3g", "4g")


def run_preview(
    url: str, policy: Policy, policy_name: str, profiles: list[Profile], browser: Chromium, timeout: float,
    progress: Callable[[str], None] = lambda _: None,
) -> Preview:  # fmt: skip
    """Measure every tier of ``url`` on every profile in ``browser``; failures land in the result, never raise."""
    preview = Preview(url, policy_name, profiles)
    progress(f"fetching {url}")
    try:
        page = fetch_page(url, timeout=timeout)
    except PageUnavailable as exc:
        preview.error = str(exc)
        return preview
    preview.variants = make_variants(page, policy)
    steps = len(preview.variants) * (len(profiles) + 1)
    done = 0
    for variant in preview.variants:
        if variant.error:
            done += len(profiles) + 1
            continue
        server = TierServer(page, variant)
        try:
            for profile in profiles:
                done += 1
                progress(f"[{done}/{steps}] {variant.tier} on {profile.title}")
                preview.loads[(variant.tier, profile.name)] = measure_load(browser, server.url, profile, timeout)
            done += 1
            progress(f"[{done}/{steps}] {variant.tier}: screenshots")
            preview.shots[variant.tier] = screenshots(browser, server.url, timeout)
        finally:
            server.close()
    return preview


def write_outputs(preview: Preview, browser: Chromium, out: Path) -> list[Path]:
    """``preview.png`` (when there is a page), ``report.html`` and ``report.json`` in ``out``."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    written = []
    sheet: bytes | None = None
    if preview.variants:
        sheet = render_png(browser, sheet_html(preview), sheet_width(len(preview.variants)))
        (out / "preview.png").write_bytes(sheet)
        written.append(out / "preview.png")
    (out / "report.html").write_text(html_report(preview, sheet), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(json_report(preview), indent=1) + "\n", encoding="utf-8")
    return [*written, out / "report.html", out / "report.json"]


def _progress() -> Callable[[str], None]:
    """A progress line on stderr: rewritten in place on a terminal, one line per step otherwise."""
    tty = sys.stderr.isatty()
    width = [0]

    def show(message: str) -> None:
        if tty:
            click.echo("\r" + message.ljust(width[0]), nl=False, err=True)
            width[0] = len(message)
        else:
            click.echo(message, err=True)

    return show


@click.command("preview")
@click.argument("url")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), default=DEFAULT_POLICY, show_default="the demo's policy", help="Policy file the tiers are made with.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("preview"), show_default=True, help="Directory for preview.png, report.html and report.json.")
@click.option("--profile", "profile_names", type=click.Choice(STEADY), multiple=True, help=f"Network to emulate (repeat for several).  [default: {', '.join(DEFAULT_PROFILES)}]")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds one load may take before its cell says it failed.")
@click.option("--chromium", "chromium_path", metavar="PATH", help="Chromium executable.  [default: chromium on PATH]")
def preview_command(url: str, policy_path: Path, out: Path, profile_names: tuple[str, ...], timeout: float, chromium_path: str | None) -> None:
    """Show each tier of the page at URL (full, lite, minimal) as a shopper on 2G, 3G and 4G would get it.

    Writes OUT/preview.png (one column per tier) and OUT/report.html with, per tier and network,
    bytes, requests, first and largest contentful paint, load time, and the widgets kept and dropped.
    """
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        click.echo(f"error: {exc}", err=True)  # word for word what `edge policy check` says
        sys.exit(1)
    executable = chromium_path or find_chromium()
    if executable is None:
        click.echo("error: chromium not found (Debian package `chromium`; `make system-deps` installs it)", err=True)
        sys.exit(1)
    profiles = [PROFILES[name] for name in (profile_names or DEFAULT_PROFILES)]
    progress = _progress()
    with tempfile.TemporaryDirectory(prefix="edge-preview-") as scratch:
        try:
            browser = Chromium(executable, Path(scratch) / "profile", Path(scratch) / "chromium.log")
        except (CDPError, OSError) as exc:
            click.echo(f"error: cannot start chromium: {exc}", err=True)
            sys.exit(1)
        try:
            result = run_preview(url, policy, str(policy_path), profiles, browser, timeout, progress)
            progress(f"writing {out}/")
            written = write_outputs(result, browser, out)
        finally:
            browser.stop()
    if sys.stderr.isatty():
        click.echo(err=True)
    click.echo(table(result))
    for failure in result.failures:
        click.echo(f"failed: {failure}", err=True)
    click.echo("wrote " + ", ".join(str(p) for p in written))
    sys.exit(1 if result.failures else 0)
