"""Stage 1: read what a request tells us about the shopper's device and network.

:func:`read_signals` turns request headers into a :class:`Signals` record. It
never raises on bad input: a malformed, absurd or oversized header becomes a
missing signal, because a shopper must never get an error page for a header
their phone sent.

Headers read (all optional):

- device: ``User-Agent`` (parsed with the maintained ``ua-parser`` library),
  ``Sec-CH-UA-Mobile``, ``Sec-CH-UA-Model``, ``Sec-CH-UA-Platform``,
  ``Device-Memory``, ``DPR``, ``Viewport-Width`` (and their ``Sec-CH-`` names);
- browser network hints: ``ECT``, ``RTT``, ``Downlink``, ``Save-Data``;
- app headers (RFC 8941 structured-field dictionaries):
  ``Edge-Cell: id="404-45-1207-88123", radio=lte, rsrp=-101, rsrq=-14, sinr=3, cqi=7, speed=22``
  and ``Edge-Last-Request: ms=840, bytes=51200, cell="404-45-1207-88120"``.

Example::

    >>> s = read_signals({"ect": "2g", "edge-cell": 'id="c1", radio=edge, rsrp=-110'})
    >>> s.ect, s.radio, s.rsrp, s.cell_id
    ('2g', 'edge', -110.0, 'c1')
    >>> read_signals({"rtt": "-5", "downlink": "nan"}).rtt_ms is None
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import http_sfv
from ua_parser import parse as parse_user_agent

from edge.pipeline.structured_fields import sf_dictionary

__all__ = [
    "Signals",
    "read_signals",
    "measurement_signals",
    "server_rtt_signals",
    "SIGNAL_HEADERS",
    "ACCEPT_CH",
    "MAX_HEADER_BYTES",
    "RADIO_CLASSES",
]

#: A header longer than this is ignored whole (no parser sees a 10 KB header).
MAX_HEADER_BYTES = 1024
#: Edge-Last-Request carries a feedback token (a few hundred bytes) besides its figures.
MAX_LAST_REQUEST_BYTES = 4096
#: User-Agents are long; past this they are junk or an attack.
MAX_USER_AGENT_BYTES = 1024

#: Every request header edge reads to decide a tier, lower-case (for ``Vary`` and for scanning scopes).
SIGNAL_HEADERS = (
    "user-agent",
    "sec-ch-ua-mobile",
    "sec-ch-ua-model",
    "sec-ch-ua-platform",
    "device-memory",
    "sec-ch-device-memory",
    "dpr",
    "sec-ch-dpr",
    "viewport-width",
    "sec-ch-viewport-width",
    "ect",
    "rtt",
    "downlink",
    "save-data",
    "edge-cell",
    "edge-last-request",
)

#: Client hints edge asks browsers for (sent as ``Accept-CH`` on HTML responses).
ACCEPT_CH = (
    "ECT, RTT, Downlink, Save-Data, Sec-CH-UA-Mobile, Sec-CH-UA-Model, Sec-CH-UA-Platform, "
    "Device-Memory, Sec-CH-Device-Memory, DPR, Sec-CH-DPR, Viewport-Width, Sec-CH-Viewport-Width"
)

ECT_VALUES = ("slow-2g", "2g", "3g", "4g")

#: Radio access technologies, normalised to a small set. 2G: gprs, edge; 3G: umts, hspa; 4G: lte; 5G: nr.
RADIO_CLASSES = ("gprs", "edge", "umts", "hspa", "lte", "nr")
_RADIO_ALIASES = {
    "gsm": "gprs",
    "gprs": "gprs",
    "2g": "edge",
    "edge": "edge",
    "egprs": "edge",
    "cdma": "gprs",
    "1xrtt": "gprs",
    "umts": "umts",
    "3g": "umts",
    "wcdma": "umts",
    "td-scdma": "umts",
    "evdo": "umts",
    "hspa": "hspa",
    "hspa+": "hspa",
    "hsdpa": "hspa",
    "hsupa": "hspa",
    "hspap": "hspa",
    "lte": "lte",
    "4g": "lte",
    "lte-a": "lte",
    "lte_ca": "lte",
    "nr": "nr",
    "5g": "nr",
    "nr-nsa": "nr",
    "nr_nsa": "nr",
}

# Plausible ranges: anything outside is a broken client or a forgery, and becomes missing.
_RANGES = {
    "rtt_ms": (0.0, 60_000.0),
    "downlink_kbps": (0.0, 10_000_000.0),
    "device_memory": (0.0, 1024.0),
    "dpr": (0.1, 10.0),
    "viewport_width": (1.0, 20_000.0),
    "rsrp": (-160.0, -30.0),
    "rsrq": (-40.0, 5.0),
    "sinr": (-30.0, 60.0),
    "cqi": (0.0, 15.0),
    "speed": (0.0, 600.0),
    "last_ms": (1.0, 600_000.0),
    "last_bytes": (0.0, 10_000_000_000.0),
}


@dataclass(slots=True)
class Signals:
    """What one request says about the shopper's device and network. ``None`` means unknown."""

    # Device
    device_class: str | None = None  # phone | tablet | desktop | bot
    os: str | None = None  # android | ios | windows | macos | linux | kaios | other
    browser: str | None = None  # the parser's family, e.g. "Chrome Mobile"
    low_end: bool | None = None
    mobile_hint: bool | None = None
    model_hint: str | None = None
    platform_hint: str | None = None
    device_memory: float | None = None
    dpr: float | None = None
    viewport_width: float | None = None
    # Browser network hints (Chromium's network quality estimator)
    ect: str | None = None
    rtt_ms: float | None = None
    downlink_kbps: float | None = None
    save_data: bool = False
    # Cell tower (app header Edge-Cell)
    cell_id: str | None = None
    radio: str | None = None
    rsrp: float | None = None
    rsrq: float | None = None
    sinr: float | None = None
    cqi: float | None = None
    speed: float | None = None
    # The client's previous request (app header Edge-Last-Request)
    # The client's previous request: from the app header Edge-Last-Request, or from the
    # signed last-measurement cookie a browser's beacon left (edge.learning.feedback).
    last_ms: float | None = None
    last_bytes: float | None = None
    last_kbps: float | None = None  # measured throughput, kbit/s (bytes·8/ms for the app header)
    last_rtt_ms: float | None = None
    last_age_s: float | None = None  # how old that measurement is
    last_cell_id: str | None = None
    last_token: str | None = None  # the feedback token of the app's previous response
    client_kbps_avg: float | None = None  # the client's moving average of measured throughput (cookie)
    # The server's view of this connection (edge.pipeline.client_rtt): the kernel's TCP_INFO when edge ends the
    # shopper's TCP connection, or a trusted balancer's round-trip header (then only tcp_rtt_ms).
    tcp_rtt_ms: float | None = None  # smoothed RTT
    tcp_rttvar_ms: float | None = None
    tcp_min_rtt_ms: float | None = None
    tcp_delivery_kbps: float | None = None  # the kernel's last delivery-rate sample
    tcp_app_limited: float | None = None  # 1.0: that sample was limited by the sender, not the network
    tcp_goodput_kbps: float | None = None  # the connection's average while it had data in flight

    @property
    def tower_switch(self) -> bool | None:
        """True when the client is on another cell than at its previous request."""
        if self.cell_id is None or self.last_cell_id is None:
            return None
        return self.cell_id != self.last_cell_id


def read_signals(headers: Mapping[str, str]) -> Signals:
    """Read :class:`Signals` from lower-case request headers (see the module docstring).

    ``headers`` maps lower-case names to values; only the names in
    :data:`SIGNAL_HEADERS` are looked at.
    """
    key = tuple(map(headers.get, _MEMO_HEADERS))
    known = _memo.get(key)
    if known is not None:
        s = Signals(**known)
    else:
        s = Signals()
        _read_device(s, headers)
        _read_network_hints(s, headers)
        if sum(map(len, filter(None, key))) <= _MEMO_KEY_CHARS:
            if len(_memo) >= _MEMO_ENTRIES:
                _memo.clear()
            _memo[key] = {name: value for name in _MEMO_FIELDS if (value := getattr(s, name)) is not None}
    cell, last = headers.get("edge-cell"), headers.get("edge-last-request")
    if cell is not None:  # (each read is a no-op without its header: not called then)
        _read_cell(s, cell)
    if last is not None:
        _read_last_request(s, last)
    return s


#: The headers the device and network-hint fields come from, and those fields: browsers send a few
#: combinations of User-Agent and hints, so read_signals keeps those fields by the headers' values (a
#: fresh Signals each time), at most _MEMO_ENTRIES of them, then starts afresh; headers whose values
#: add up to more than _MEMO_KEY_CHARS are read every time (so the table stays under ~1 MB).
_MEMO_HEADERS = tuple(name for name in SIGNAL_HEADERS if name not in ("edge-cell", "edge-last-request"))
_MEMO_FIELDS = (
    "device_class", "os", "browser", "low_end", "mobile_hint", "model_hint", "platform_hint", "device_memory", "dpr",
    "viewport_width", "ect", "rtt_ms", "downlink_kbps", "save_data",
)  # fmt: skip
_MEMO_ENTRIES = 512
_MEMO_KEY_CHARS = 2048
_memo: dict[tuple[str | None, ...], dict[str, Any]] = {}


#: :func:`edge.pipeline.client_rtt.server_rtt`'s keys → the :class:`Signals` fields they fill.
_SERVER_RTT_FIELDS = (
    ("rtt_ms", "tcp_rtt_ms"),
    ("rttvar_ms", "tcp_rttvar_ms"),
    ("min_rtt_ms", "tcp_min_rtt_ms"),
    ("delivery_kbps", "tcp_delivery_kbps"),
    ("app_limited", "tcp_app_limited"),
    ("goodput_kbps", "tcp_goodput_kbps"),
)


def server_rtt_signals(s: Signals, figures: Mapping[str, float] | None) -> None:
    """Fill the ``tcp_*`` signals from the server's figures for this connection (absent ones stay None).

    >>> s = Signals(); server_rtt_signals(s, {"rtt_ms": 412.0, "min_rtt_ms": 400.0}); (s.tcp_rtt_ms, s.tcp_min_rtt_ms, s.tcp_delivery_kbps)
    (412.0, 400.0, None)
    """
    if not figures:
        return
    for key, field in _SERVER_RTT_FIELDS:
        value = figures.get(key)
        if type(value) is float and math.isfinite(value) and value >= 0.0:
            setattr(s, field, value)


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None and 0 < len(value) <= MAX_HEADER_BYTES:
            return value.strip()
    return None


def _number(raw: object, field: str) -> float | None:
    """A finite number inside the field's plausible range, else ``None``.

    ``raw`` is header text such as ``RTT: 150``, or a structured-field number.
    """
    if raw is None or isinstance(raw, bool):
        return None  # (None first: an absent header is the common case, and float(None)'s raise costs ~1 us)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    lo, hi = _RANGES[field]
    if not math.isfinite(value) or not lo <= value <= hi:
        return None
    return value


def _sf_number(raw: object, field: str) -> float | None:
    """A structured-field Integer or Decimal in range; a String or Token is never a number."""
    if isinstance(raw, (int, Decimal)) and not isinstance(raw, bool):
        return _number(raw, field)
    return None


def _sf_item(raw: str | None) -> object | None:
    if raw is None:
        return None
    item = http_sfv.Item()
    try:
        item.parse(raw.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return item.value


def _sf_dict(raw: str | None, limit: int = MAX_HEADER_BYTES) -> dict[str, object] | None:
    if raw is None or len(raw) > limit:
        return None
    return sf_dictionary(raw)


_OS_NAMES = {
    "Android": "android",
    "iOS": "ios",
    "iPadOS": "ios",
    "Windows": "windows",
    "Mac OS X": "macos",
    "Linux": "linux",
    "Ubuntu": "linux",
    "KaiOS": "kaios",
    "Chrome OS": "linux",
}
#: Browsers built for low-end phones and metered data.
_LITE_BROWSERS = ("Opera Mini", "UC Browser", "KaiOS", "Opera Mobile", "Chrome Mobile WebView Lite")


def _read_device(s: Signals, headers: Mapping[str, str]) -> None:
    mobile = _sf_item(_header(headers, "sec-ch-ua-mobile"))
    s.mobile_hint = mobile if isinstance(mobile, bool) else None
    model = _sf_item(_header(headers, "sec-ch-ua-model"))
    s.model_hint = model[:64] if isinstance(model, str) and model else None
    platform = _sf_item(_header(headers, "sec-ch-ua-platform"))
    s.platform_hint = platform[:32] if isinstance(platform, str) and platform else None
    s.device_memory = _number(_header(headers, "sec-ch-device-memory", "device-memory"), "device_memory")
    s.dpr = _number(_header(headers, "sec-ch-dpr", "dpr"), "dpr")
    s.viewport_width = _number(_header(headers, "sec-ch-viewport-width", "viewport-width"), "viewport_width")

    ua = headers.get("user-agent")
    os_major: int | None = None
    if ua and len(ua) <= MAX_USER_AGENT_BYTES:
        parsed = parse_user_agent(ua)
        s.browser = parsed.user_agent.family if parsed.user_agent else None
        os_family = parsed.os.family if parsed.os else None
        s.os = _OS_NAMES.get(os_family or "", "other") if os_family else None
        if parsed.os and parsed.os.major and parsed.os.major.isdigit():
            os_major = int(parsed.os.major)
        device_family = parsed.device.family if parsed.device else ""
        if device_family == "Spider":
            s.device_class = "bot"
        elif "iPad" in ua or "Tablet" in ua:
            s.device_class = "tablet"
        elif s.browser in _LITE_BROWSERS or "Mobi" in ua:
            s.device_class = "phone"
        elif s.os == "android":
            # Android tablets drop "Mobile" from the UA (Google's guidance to tablet makers).
            s.device_class = "tablet"
        elif s.os in ("ios", "kaios"):
            s.device_class = "phone"
        else:
            s.device_class = "desktop"
    if s.mobile_hint is True and s.device_class in (None, "desktop"):
        s.device_class = "phone"

    # Low-end: little memory says it best; without the hint, a lite browser, KaiOS or an old Android.
    if s.device_memory is not None:
        s.low_end = s.device_memory <= 2
    elif s.browser in _LITE_BROWSERS or s.os == "kaios":
        s.low_end = True
    elif s.os == "android" and os_major is not None:
        s.low_end = os_major <= 8
    elif s.os in ("ios", "macos", "windows") or s.device_class == "desktop":
        s.low_end = False


def _read_network_hints(s: Signals, headers: Mapping[str, str]) -> None:
    ect = _header(headers, "ect")
    s.ect = ect.lower() if ect and ect.lower() in ECT_VALUES else None
    s.rtt_ms = _number(_header(headers, "rtt"), "rtt_ms")
    downlink_mbps = _number(_header(headers, "downlink"), "downlink_kbps")
    s.downlink_kbps = downlink_mbps * 1000.0 if downlink_mbps is not None else None
    save_data = _header(headers, "save-data")
    s.save_data = save_data is not None and save_data.lower() == "on"


def _identifier(raw: object) -> str | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (str, int)) and not isinstance(raw, float):
        text = str(raw)
        return text if 0 < len(text) <= 64 else None
    return None


@functools.lru_cache(maxsize=4096)
def _cell_members(raw: str) -> tuple[tuple[str, object], ...] | None:
    """Parsed Edge-Cell values, cached: a phone repeats its cell's header until it moves, and
    structured-field parsing is most of the cost of reading signals (bounded: ≤ 4096 × 1 KB)."""
    members = _sf_dict(raw)
    return tuple(members.items()) if members is not None else None


def _read_cell(s: Signals, raw: str | None) -> None:
    cached = _cell_members(raw) if raw is not None and len(raw) <= MAX_HEADER_BYTES else None
    members = dict(cached) if cached else None
    if not members:
        return
    s.cell_id = _identifier(members.get("id"))
    radio = members.get("radio")
    if isinstance(radio, str):
        s.radio = _RADIO_ALIASES.get(radio.lower())
    s.rsrp = _sf_number(members.get("rsrp"), "rsrp")
    s.rsrq = _sf_number(members.get("rsrq"), "rsrq")
    s.sinr = _sf_number(members.get("sinr"), "sinr")
    s.cqi = _sf_number(members.get("cqi"), "cqi")
    s.speed = _sf_number(members.get("speed"), "speed")


#: Without a time to first byte, bytes·8/ms includes the round trips; from this size on they are a
#: small share of the time and the figure is a fair throughput.
APP_THROUGHPUT_MIN_BYTES = 64 * 1024
#: With a time to first byte, the download time alone is known; this many bytes make a measurement.
APP_THROUGHPUT_MIN_BYTES_WITH_TTFB = 16 * 1024


def app_throughput(ms: float, size: float | None, ttfb_ms: float | None) -> float | None:
    """Throughput (kbit/s) of an app's request from its duration, bytes and time to first byte.

    ``bytes·8 / (ms − ttfb)`` when the app reports ``ttfb``; ``bytes·8 / ms`` for
    large responses without it; ``None`` when the round trips would dominate.

    >>> app_throughput(200, 16_000, None) is None     # 16 KB in 200 ms on 4G: mostly round trips
    True
    >>> app_throughput(200, 16_384, 170)              # its download took 30 ms
    4369.06...
    >>> app_throughput(4000, 200_000, None)
    400.0
    """
    if not size or size <= 0:
        return None
    if ttfb_ms is not None and ms > ttfb_ms:
        return size * 8.0 / (ms - ttfb_ms) if size >= APP_THROUGHPUT_MIN_BYTES_WITH_TTFB else None
    return size * 8.0 / ms if size >= APP_THROUGHPUT_MIN_BYTES else None


def _read_last_request(s: Signals, raw: str | None) -> None:
    members = _sf_dict(raw, MAX_LAST_REQUEST_BYTES)
    if not members:
        return
    ms = _sf_number(members.get("ms"), "last_ms")
    size = _sf_number(members.get("bytes"), "last_bytes")
    if ms is not None:
        s.last_ms = ms
        s.last_bytes = size
        ttfb = _sf_number(members.get("ttfb"), "last_ms")
        if ttfb is not None and ttfb < ms:
            s.last_rtt_ms = ttfb
        s.last_kbps = app_throughput(ms, size, s.last_rtt_ms)
    s.last_cell_id = _identifier(members.get("cell"))
    token = members.get("token")
    if isinstance(token, str) and 0 < len(token) <= MAX_LAST_REQUEST_BYTES:
        s.last_token = token


def measurement_signals(signals: Signals, payload: Mapping[str, Any], now: float) -> None:
    """Fill ``signals``' last-request fields from a last-measurement cookie's payload (as
    :meth:`edge.learning.feedback.Feedback.measurement_cookie` writes it: ``k`` kbit/s measured at
    ``kt``, ``r`` RTT ms, ``c`` the cell, ``a`` the client's average, ``t`` when signed). The one mapping
    live traffic (the middleware, once the cookie verifies) and ``edge replay`` (the payload the cookie
    would carry) both use.

    >>> s = Signals()
    >>> measurement_signals(s, {"k": 900.0, "kt": 100.0, "c": "310-260-1", "a": 750.0, "t": 120.0}, now=130.0)
    >>> s.last_kbps, s.last_age_s, s.last_cell_id, s.client_kbps_avg, s.last_rtt_ms
    (900.0, 30.0, '310-260-1', 750.0, None)
    """
    kbps, rtt, cell, avg = payload.get("k"), payload.get("r"), payload.get("c"), payload.get("a")
    signals.last_kbps = float(kbps) if isinstance(kbps, (int, float)) else None
    signals.last_rtt_ms = float(rtt) if isinstance(rtt, (int, float)) else None
    measured_at = payload.get("kt") if signals.last_kbps is not None else None
    signals.last_age_s = max(0.0, now - float(measured_at if isinstance(measured_at, (int, float)) else payload["t"]))
    signals.last_cell_id = cell if isinstance(cell, str) else None
    signals.client_kbps_avg = float(avg) if isinstance(avg, (int, float)) else None
