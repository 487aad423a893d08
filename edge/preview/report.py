"""What ``edge preview`` shows: the terminal table, the side-by-side sheet (rendered to PNG) and the HTML report.

Everything here is rendering of a finished :class:`Preview`; nothing is measured. The sheet is HTML
that Chromium itself turns into ``preview.png`` (no imaging library needed): one column per tier,
the first screen on top and the whole page below it, every whole page drawn to the same scale so
their lengths compare.

    >>> load = Load(bytes=102_936, requests=14, fcp_ms=540.0, lcp_ms=612.5, load_ms=543.6)
    >>> _cell(load)
    '102,936 B  14 req  FCP 540 ms  LCP 612 ms  load 544 ms'
    >>> _cell(Load(bytes=0, requests=1, fcp_ms=None, lcp_ms=None, load_ms=None, error="no load event within 5 s"))
    'FAILED: no load event within 5 s (0 B, 1 req so far)'
    >>> _brief(load)
    '102.9 kB, 14 requests, load 0.54 s'
    >>> sheet_width(3)
    816
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from typing import Any

from edge.core.networks import Profile
from edge.pipeline.rewrite import RewriteReport
from edge.preview.measure import PHONE, Load
from edge.preview.tiers import Variant

__all__ = ["Preview", "fates", "html_report", "json_report", "sheet_html", "sheet_width", "table"]

#: The sheet's geometry, in CSS pixels: a column per tier, the first screen drawn this wide.
COLUMN_PX = 240
GAP_PX = 24
#: The longest whole page is drawn this tall; the others to the same scale.
WHOLE_PAGE_PX = 800


@dataclass
class Preview:
    """One run of ``edge preview``: the page, its tiers, each tier's loads per network and screenshots."""

    url: str
    policy: str
    profiles: list[Profile]
    variants: list[Variant] = field(default_factory=list)
    loads: dict[tuple[str, str], Load] = field(default_factory=dict)  # (tier, profile name) → Load
    shots: dict[str, tuple[bytes, bytes] | str] = field(default_factory=dict)  # tier → (first screen, whole page) or error
    error: str | None = None  # the page itself could not be previewed

    @property
    def failures(self) -> list[str]:
        """Every cell that failed, as "tier on network: why"; the page's own error first."""
        out = [self.error] if self.error else []
        out += [f"{v.tier}: {v.error}" for v in self.variants if v.error]
        titles = {p.name: p.title for p in self.profiles}
        out += [f"{tier} on {titles.get(name, name)}: {load.error}" for (tier, name), load in self.loads.items() if load.error]
        out += [f"{tier} screenshots: {shot}" for tier, shot in self.shots.items() if isinstance(shot, str)]
        return out


def _counted(names: list[str]) -> str:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())


def fates(report: RewriteReport | None) -> dict[str, str]:
    """The widgets a tier kept, collapsed, trimmed and dropped (budget cuts included), each listed once."""
    if report is None:
        return {}
    out = {"kept": _counted(report.kept), "collapsed": _counted(report.collapsed), "dropped": _counted(report.dropped + report.budget_dropped)}
    out["trimmed"] = ", ".join(f"{name} (−{n} items)" for name, n in report.trimmed.items())
    return {k: v for k, v in out.items() if v}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _cell(load: Load | None) -> str:
    if load is None:
        return "not loaded"
    if load.error:
        return f"FAILED: {load.error} ({load.bytes:,} B, {load.requests} req so far)"
    return f"{load.bytes:,} B  {load.requests} req  FCP {_ms(load.fcp_ms)}  LCP {_ms(load.lcp_ms)}  load {_ms(load.load_ms)}"


def _brief(load: Load | None) -> str:
    """A sheet's one-line figure: ``102.9 kB, 14 requests, load 0.54 s``."""
    if load is None or load.error:
        return "failed" if load is None else f"failed: {load.error}"
    seconds = "–" if load.load_ms is None else f"{load.load_ms / 1000:.2f} s"
    return f"{load.bytes / 1000:,.1f} kB, {load.requests} requests, load {seconds}"


def table(preview: Preview) -> str:
    """The terminal's summary: one line per network and tier."""
    if preview.error:
        return f"error: {preview.error}"
    width = max(len(p.title) for p in preview.profiles)
    lines = [f"{'network':<{width}}  {'tier':<8} {'bytes':>11} {'requests':>8} {'FCP ms':>8} {'LCP ms':>8} {'load ms':>9}"]
    for profile in preview.profiles:
        for i, variant in enumerate(preview.variants):
            label = profile.title if i == 0 else ""
            load = preview.loads.get((variant.tier, profile.name))
            if variant.error or load is None or load.error:
                why = variant.error or (load.error if load else "not loaded")
                lines.append(f"{label:<{width}}  {variant.tier:<8} FAILED: {why}")
                continue
            lines.append(
                f"{label:<{width}}  {variant.tier:<8} {load.bytes:>11,} {load.requests:>8} {_num(load.fcp_ms):>8} {_num(load.lcp_ms):>8} {_num(load.load_ms):>9}"
            )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def json_report(preview: Preview) -> dict[str, Any]:
    """The figures as data (``report.json``): per tier, its widgets and its loads per network."""
    return {
        "url": preview.url,
        "policy": preview.policy,
        "error": preview.error,
        "profiles": [{"name": p.name, "title": p.title, "rtt_ms": p.rtt_ms, "downlink_kbps": p.downlink_kbps, "uplink_kbps": p.uplink_kbps} for p in preview.profiles],
        "columns": [v.tier for v in preview.variants],
        "tiers": {
            v.tier: {
                "html_bytes": len(v.body),
                "error": v.error,
                "widgets": fates(v.report),
                "screenshot_error": preview.shots.get(v.tier) if isinstance(preview.shots.get(v.tier), str) else None,
                "loads": {p.name: (lambda ld: ld.as_dict() if ld else None)(preview.loads.get((v.tier, p.name))) for p in preview.profiles},
            }
            for v in preview.variants
        },
    }


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def sheet_width(columns: int) -> int:
    """The sheet's width in pixels for ``columns`` tiers (the PNG is exactly this wide)."""
    return columns * COLUMN_PX + (columns + 1) * GAP_PX


def sheet_html(preview: Preview) -> str:
    """The side-by-side sheet: per tier, its name and figures, the first screen and the whole page (to one scale)."""
    heights = [_png_size(s[1])[1] for s in preview.shots.values() if not isinstance(s, str)]
    scale = min(COLUMN_PX / PHONE["width"], WHOLE_PAGE_PX / max(heights, default=1))
    columns = []
    for variant in preview.variants:
        shot = preview.shots.get(variant.tier)
        figures = "<br>".join(f"{html.escape(p.title)}: {html.escape(_brief(preview.loads.get((variant.tier, p.name))))}" for p in preview.profiles)
        if variant.error or isinstance(shot, str) or shot is None:
            why = variant.error or (shot if isinstance(shot, str) else "no screenshot")
            body = f'<div class="fail">{html.escape(why)}</div>'
        else:
            fold, whole = shot
            body = (
                f'<img class="fold" src="{_data_url(fold)}" alt="{variant.tier}: first screen">'
                f'<p class="cap">whole page (to scale)</p>'
                f'<img class="whole" style="width:{PHONE["width"] * scale:.0f}px" src="{_data_url(whole)}" alt="{variant.tier}: whole page">'
            )
        columns.append(f'<section><h2>{variant.tier}</h2><p class="fig">{figures}</p>{body}</section>')
    return f"""<!doctype html><meta charset="utf-8"><style>
body{{margin:0;padding:{GAP_PX}px;padding-right:0;width:{sheet_width(len(preview.variants)) - GAP_PX}px;background:#fff;
font:14px/1.35 system-ui,sans-serif;color:#1d1d1f;display:flex;gap:{GAP_PX}px;align-items:flex-start;box-sizing:border-box}}
section{{width:{COLUMN_PX}px;flex:none}} h2{{margin:0 0 4px;font-size:22px}} .fig{{margin:0 0 8px;color:#444;font-size:13px}}
img{{display:block;border:1px solid #ccc}} .fold{{width:{COLUMN_PX}px}} .cap{{margin:10px 0 4px;color:#666}}
.fail{{padding:12px;border:2px solid #b00020;color:#b00020;font-weight:600}}
</style>{"".join(columns)}"""


def html_report(preview: Preview, sheet_png: bytes | None) -> str:
    """The report that opens offline: the sheet embedded, a table per network, each tier's widgets."""
    esc = html.escape
    parts = [
        f'<!doctype html><meta charset="utf-8"><title>edge preview: {esc(preview.url)}</title>',
        "<style>body{font:15px/1.45 system-ui,sans-serif;margin:2rem;color:#1d1d1f}table{border-collapse:collapse;margin:1rem 0}"
        "td,th{border:1px solid #ccc;padding:.35rem .6rem;text-align:right;vertical-align:top}th:first-child,td:first-child{text-align:left}"
        ".fail{color:#b00020;font-weight:600;text-align:left}img{max-width:100%}</style>",
        f"<h1>edge preview</h1><p><a href=\"{esc(preview.url)}\">{esc(preview.url)}</a> with policy <code>{esc(preview.policy)}</code></p>",
    ]
    if preview.error:
        parts.append(f'<p class="fail">{esc(preview.error)}</p>')
        return "\n".join(parts)
    tiers = [v.tier for v in preview.variants]
    head = "".join(f"<th>{t}</th>" for t in tiers)
    for profile in preview.profiles:
        parts.append(
            f"<h2>{esc(profile.title)}</h2><p>{profile.downlink_kbps:g} kbit/s down, {profile.uplink_kbps:g} kbit/s up, {profile.rtt_ms:g} ms RTT ({esc(profile.source)})</p>"
        )
        rows = []
        for label, pick in (
            ("bytes transferred", lambda ld: f"{ld.bytes:,}"),
            ("requests", lambda ld: str(ld.requests)),
            ("first contentful paint", lambda ld: _ms(ld.fcp_ms)),
            ("largest contentful paint", lambda ld: _ms(ld.lcp_ms)),
            ("load", lambda ld: _ms(ld.load_ms)),
        ):
            cells = []
            for variant in preview.variants:
                load = preview.loads.get((variant.tier, profile.name))
                failed = variant.error or (load.error if load else "not loaded")
                cells.append(f'<td class="fail">{esc(failed)}</td>' if failed else f"<td>{esc(pick(load))}</td>")
            rows.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
        parts.append(f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>")
    parts.append(f"<h2>Widgets</h2><table><tr><th></th>{head}</tr>")
    for fate in ("kept", "collapsed", "trimmed", "dropped"):
        named = "".join(f'<td style="text-align:left">{esc(fates(v.report).get(fate, "–"))}</td>' for v in preview.variants)
        parts.append(f"<tr><th>{fate}</th>{named}</tr>")
    parts.append("</table>")
    if sheet_png is not None:
        parts.append(f'<h2>Each tier on a phone</h2><img src="{_data_url(sheet_png)}" alt="each tier side by side">')
    parts.append(f"<details><summary>figures as JSON</summary><pre>{esc(json.dumps(json_report(preview), indent=1))}</pre></details>")
    return "\n".join(parts)
