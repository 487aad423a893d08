"""Locust users that behave like phones on 2G, 3G and 4G networks, in front of edge.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 --headless -u 50 -r 10 -t 2m \\
           --profiles regular2g,slow3g,4g --compare-full --summary-json loadtests/results/summary.json

One user class per profile in :mod:`profiles` (``Phone_regular2g`` …, weighted), and with
``--compare-full`` a twin per profile (``Phone_regular2g_full``) that sends the preference
cookie ``edge_tier=full``: the same network forced to the full page, in the same run.

Every user is a phone (a low-end or high-end device) on its profile's network, in a cell:

- **browser** users (``--browser-share``, default 0.6) fetch images like a page load and post
  the beacon of docs/feedback.md after load with the timings they measured. Most are
  Chromium: client hints the origin opted into with ``Accept-CH`` (``ECT``/``RTT``/``Downlink``
  from the profile per Chromium's ECT table, ``Device-Memory``) and ``navigator.connection``
  in the beacon. ``--hintless-share`` of them (default 0.35: 70 % Safari on iOS, 30 % Firefox
  on Android) send no network hints, no ``Device-Memory``, no ``Sec-CH-UA-*`` and no ``c`` in
  the beacon, as those browsers do: edge knows their network only from what it measures;
- **app** users are the storefront's app: ``Edge-Cell`` for their cell (radio type of the
  profile; the cell's congestion lowers their bandwidth and signal figures) and
  ``Edge-Last-Request`` with the previous request's ``ms``/``bytes``/``cell`` and the
  ``token`` of that response's ``Edge-Token`` header.

The HTTP client is :class:`profiles.HttpConnection` on raw sockets (why: loadtests/README.md):
it pays the RTT per request and reads bodies no faster than the downlink. Requests are
grouped by page type (``name=``). HTML responses in the wrong tier for a clearly slow
profile (lite or minimal expected) or a clearly fast one (full expected) fail as
``wrong tier: full for regular2g`` once the ``--warmup`` (learning) time has passed.
Each page view also reports a ``PAGE`` entry, ``<profile> page-complete``: page plus images.

At the end the master (or the local runner) writes ``--summary-json``: per-profile tier
counts (warm-up and steady phases), page-complete times and bytes, beacon and token
counts; workers ship theirs to the master with their stats reports.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import quote, urlsplit

import gevent
from locust import User, between, events, task
from locust.exception import CatchResponseError
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profiles import PROFILES, HttpConnection, HttpResponse, Link, Profile, browser_hints  # noqa: E402

#: Simulated phones so far (each gets its own loopback source address when edge is on loopback).
_PHONES = iter(range(1 << 30))


def _own_address() -> str:
    """A loopback source address for one simulated phone, each in its own /24 (127.1.0.1, 127.1.1.1, …):
    edge attributes labels to the client's address and /24 (edge.learning.trust), as it would real phones'."""
    n = next(_PHONES)
    return f"127.{1 + n // 256 % 254}.{n % 256}.1"


IMAGE_CONNECTIONS = 4  # a browser's parallel connections for a page's images (Chrome: 6 per host; phones fewer)
MAX_LAST_REQUEST_HEADER = 4096  # README: an Edge-Last-Request over 4 KB is ignored entirely
MAX_BEACON_RESOURCES = 30
WEIGHTS = {"regular2g": 2, "good2g": 2, "slow3g": 2, "lighthouse3g": 1, "4g": 3, "congested": 1}
LOW_END_SHARE = {"regular2g": 0.7, "good2g": 0.6, "slow3g": 0.5, "lighthouse3g": 0.4, "4g": 0.2, "congested": 0.3}

# Chromium on Android. Modern Chrome reduces the UA to "Android 10; K" (UA reduction), so the
# model and memory reach edge only through Device-Memory / Sec-CH-UA-Model.
LOW_END_UAS = (
    "Mozilla/5.0 (Linux; Android 8.1.0; Nokia 1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.88 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; SM-A022F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/100.0.4896.127 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; itel A49) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/101.0.4951.61 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
)
# Browsers that send no client hints (WebKit and Gecko implement neither Accept-CH's network hints nor
# navigator.connection's effectiveType/rtt/downlink): Safari on iOS, Firefox on Android.
HINTLESS_UAS = {
    "safari": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    ),
    "firefox": (
        "Mozilla/5.0 (Android 11; Mobile; rv:115.0) Gecko/115.0 Firefox/115.0",
        "Mozilla/5.0 (Android 14; Mobile; rv:126.0) Gecko/126.0 Firefox/126.0",
    ),
}
SAFARI_OF_HINTLESS = 0.7
_HINTLESS = {"owed": 0.0}


def _hintless(share: float) -> bool:
    """Whether the next browser user is a hint-less one: exactly ``share`` of them (rounded down) per
    process, spread evenly, so a short run has its Safari and Firefox rows whatever the dice say."""
    _HINTLESS["owed"] += share
    if _HINTLESS["owed"] >= 1.0 - 1e-9:
        _HINTLESS["owed"] -= 1.0
        return True
    return False
HIGH_END_UAS = (
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.5615.136 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.5993.111 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
)
LOW_END_APPS = (("8.1.0", "Nokia 1"), ("11", "SM-A022F"), ("12", "itel A49"))
HIGH_END_APPS = (("13", "SM-S918B"), ("14", "Pixel 8 Pro"))
SEARCH_TERMS = ("tea", "mug", "bag", "linen", "knife", "lamp", "café", "travel")
_IMG_SRC = re.compile(rb"""<img\b[^>]*?\ssrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


def _cells() -> dict[str, list[dict]]:
    """Three cells per profile, each with its own congestion (0 free … 1 saturated) and radio."""
    pools: dict[str, list[dict]] = {}
    for i, profile in enumerate(PROFILES.values()):
        pools[profile.name] = [
            {"id": f"404-45-{1200 + i}-{88100 + 10 * i + j}", "radio": profile.radios[j % len(profile.radios)], "congestion": c}
            for j, c in enumerate((0.1, 0.4, 0.7))
        ]
    return pools


CELLS = _cells()


# ---------------------------------------------------------------- options and run-wide state


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # noqa: ANN001
    parser.add_argument("--profiles", default="all", help="Comma-separated profiles to run (default all): " + ",".join(PROFILES))
    parser.add_argument("--compare-full", action="store_true", default=False,
                        help="Also run a twin of every profile forced to the full page (cookie edge_tier=full)")
    parser.add_argument("--warmup", type=float, default=10.0, help="Seconds of learning before wrong tiers fail")
    parser.add_argument("--browser-share", type=float, default=0.6, help="Share of users that are Chromium browsers (the rest: the app)")
    parser.add_argument("--hintless-share", type=float, default=0.35,
                        help="Share of browser users that are Safari or Firefox and send no client hints (70/30)")
    parser.add_argument("--summary-json", default=os.environ.get("EDGE_LT_SUMMARY", ""), help="Write the run's summary here (env EDGE_LT_SUMMARY)")
    parser.add_argument("--kernel-shaping", action="store_true", default=False,
                        help="Bandwidth is shaped by tc in a network namespace (netns.sh): the client only adds the RTT")
    parser.add_argument("--source-map", default=os.environ.get("EDGE_LT_SOURCES", ""),
                        help="profile=ip,... local address per profile (netns.sh shapes by address)")


def selected_profiles(spec: str) -> list[str]:
    """``"all"`` or a comma list → profile names; unknown names are an error naming the choices."""
    if not spec or spec == "all":
        return list(PROFILES)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        raise SystemExit(f"--profiles: unknown {', '.join(unknown)}; choose from {', '.join(PROFILES)}")
    return names


class Summary:
    """Counts and page samples; workers drain theirs into each stats report, the master merges."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.pages: dict[str, list[list]] = defaultdict(list)

    def count(self, *key: str, n: int = 1) -> None:
        self.counts["|".join(key)] += n

    def drain(self) -> dict:
        data = {"counts": dict(self.counts), "pages": dict(self.pages)}
        self.counts, self.pages = Counter(), defaultdict(list)
        return data

    def merge(self, data: dict) -> None:
        self.counts.update(data.get("counts", {}))
        for key, rows in data.get("pages", {}).items():
            self.pages[key].extend(rows)

    def as_json(self, meta: dict) -> dict:
        return {"meta": meta, "counts": dict(sorted(self.counts.items())), "pages": dict(self.pages)}


SUMMARY = Summary()
STATE: dict = {"started": None}


@events.init.add_listener
def _select_users(environment, runner=None, **kwargs) -> None:  # noqa: ANN001
    if isinstance(runner, WorkerRunner) or environment.parsed_options is None:
        return  # workers run whatever classes the master dispatches
    opts = environment.parsed_options
    names = selected_profiles(opts.profiles)
    chosen = [u for u in environment.user_classes if getattr(u, "profile", None) and u.profile.name in names
              and (opts.compare_full or not u.forced_full)]
    if chosen:
        environment.user_classes = chosen


@events.test_start.add_listener
def _started(environment, **kwargs) -> None:  # noqa: ANN001
    STATE["started"] = time.monotonic()


@events.report_to_master.add_listener
def _ship(client_id, data, **kwargs) -> None:  # noqa: ANN001
    data["edge_lt"] = SUMMARY.drain()


@events.worker_report.add_listener
def _collect(client_id, data, **kwargs) -> None:  # noqa: ANN001
    if "edge_lt" in data:
        SUMMARY.merge(data["edge_lt"])


def _write_summary(environment) -> None:  # noqa: ANN001
    opts = environment.parsed_options
    if opts is None or not opts.summary_json or isinstance(environment.runner, WorkerRunner):
        return
    path = Path(opts.summary_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"profiles": selected_profiles(opts.profiles), "compare_full": opts.compare_full, "warmup_s": opts.warmup,
            "distributed": isinstance(environment.runner, MasterRunner), "kernel_shaping": opts.kernel_shaping}
    path.write_text(json.dumps(SUMMARY.as_json(meta)))


@events.test_stop.add_listener
def _stopped(environment, **kwargs) -> None:  # noqa: ANN001
    _write_summary(environment)


@events.quitting.add_listener
def _quitting(environment, **kwargs) -> None:  # noqa: ANN001
    _write_summary(environment)  # again: the workers' last reports arrive after test_stop


# ---------------------------------------------------------------- the phone


class _Catch:
    """Like Locust's ``catch_response`` context manager, for :class:`HttpConnection` responses."""

    def __init__(self, user: PhoneUser, method: str, name: str, started: float,
                 response: HttpResponse | None, error: BaseException | None) -> None:
        self.user, self.method, self.name, self.started = user, method, name, started
        self.response, self.error = response, error
        self._failure: str | None = None if error is None else f"{type(error).__name__}: {error}"

    def failure(self, message: str) -> None:
        self._failure = message

    def success(self) -> None:
        self._failure = None

    def __enter__(self) -> _Catch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        end = self.response.response_end if self.response else time.monotonic()
        self.user.environment.events.request.fire(
            request_type=self.method,
            name=self.name,
            response_time=(end - self.started) * 1000.0,
            response_length=self.response.wire_bytes if self.response else 0,
            exception=CatchResponseError(self._failure) if self._failure else None,
            context={"profile": self.user.profile.name},
        )


class PhoneUser(User):
    """A phone on ``profile``'s network (see the module docstring); concrete classes are generated below."""

    abstract = True
    profile: Profile
    forced_full = False
    wait_time = between(1, 4)  # reading the page before the next tap

    # ------------------------------------------------------------ setup

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.rng = random.Random()
        split = urlsplit(self.host)
        self.target = (split.hostname or "127.0.0.1", split.port or 80)
        self.variant = "full" if self.forced_full else "edge"
        self.label = self.profile.name + (" (forced full)" if self.forced_full else "")
        self.kind = "browser" if self.rng.random() < (opts.browser_share if opts else 0.6) else "app"
        low = self.rng.random() < LOW_END_SHARE[self.profile.name]
        self.device = "low" if low else "high"
        self.memory = self.rng.choice((0.5, 1, 2) if low else (4, 8))
        # client: the browser family the report splits by (chromium, safari, firefox) or "app".
        self.client, self.hints = self.kind, self.kind == "browser"
        if self.kind == "browser" and _hintless(opts.hintless_share if opts else 0.35):
            self.client = "safari" if self.rng.random() < SAFARI_OF_HINTLESS else "firefox"
            self.hints = False
            self.user_agent = self.rng.choice(HINTLESS_UAS[self.client])
        elif self.kind == "browser":
            self.client = "chromium"
            self.user_agent = self.rng.choice(LOW_END_UAS if low else HIGH_END_UAS)
        else:
            version, model = self.rng.choice(LOW_END_APPS if low else HIGH_END_APPS)
            self.user_agent = f"MaisonDemo/4.12.0 (Android {version}; {model}) okhttp/4.12.0"
        # Returning visitors: Chromium persisted the shop's Accept-CH; each response updates it.
        self.accept_ch = {"ect", "rtt", "downlink", "device-memory"} if self.hints else set()
        self.cookies: dict[str, str] = {"edge_tier": "full"} if self.forced_full else {}
        self.cell = self.rng.choice(CELLS[self.profile.name])
        self.last: dict | None = None  # the app's previous request
        kernel = bool(opts and opts.kernel_shaping)
        self.link = Link(self.profile, scale=self._cell_scale(), pace=not kernel,
                         clock_start=STATE["started"] or time.monotonic())
        sources = dict(p.split("=", 1) for p in (opts.source_map.split(",") if opts and opts.source_map else []))
        source = sources.get(self.profile.name)
        if source is None and self.target[0] in ("127.0.0.1", "localhost"):
            source = _own_address()  # a phone of its own: edge budgets labels per client address
        self.conn = HttpConnection(*self.target, self.link, source=source)
        self.img_conns = [HttpConnection(*self.target, self.link, source=source) for _ in range(IMAGE_CONNECTIONS)]

    def on_stop(self) -> None:
        for conn in (self.conn, *self.img_conns):
            conn.close()

    def _cell_scale(self) -> float:
        return 1.0 - 0.4 * self.cell["congestion"]  # a busy cell gives each phone a smaller share

    # ------------------------------------------------------------ tasks (Locust weights)

    @task(4)
    def home(self) -> None:
        self.page("/", "/", "home")

    @task(3)
    def search(self) -> None:
        self.page(f"/search?q={quote(self.rng.choice(SEARCH_TERMS))}", "/search?q=[q]", "search")

    @task(3)
    def product(self) -> None:
        self.page(f"/product/{self.rng.randint(1, 60)}", "/product/[id]", "product")

    @task(1)
    def cart(self) -> None:
        self.page("/cart", "/cart", "cart")

    @task(2)
    def app_home(self) -> None:
        """The app's native home screen (JSON); browsers open the home page instead."""
        if self.kind != "app":
            return self.home()
        nav_start = time.monotonic()
        response = self._fetch(self.conn, "GET", "/api/layout/home", "/api/layout/home", self._headers("json"), expect=(200,))
        if response is None:
            return
        self._remember(response)
        try:
            sections = json.loads(response.body)["sections"]
            paths = [i["image"] for s in sections if s["priority"] >= 50 or s["widget"] == "carousel"
                     for i in s["items"] if i.get("image")]
        except (ValueError, KeyError, TypeError):
            paths = []
        images = self._images(paths)
        self._page_complete("app-home", nav_start, response, images, tier=None)

    # ------------------------------------------------------------ one page view

    def page(self, path: str, name: str, page_type: str) -> None:
        nav_start = time.monotonic()
        started = time.monotonic()
        response, error = self._send(self.conn, "GET", path, self._headers("html"))
        tier = response.header("edge-tier") if response else None
        with _Catch(self, "GET", name, started, response, error) as check:
            if response is not None:
                self._check_page(check, response, tier)
        if response is None or response.status != 200:
            return
        if self.kind == "app":
            self._remember(response)
        paths = []
        for match in _IMG_SRC.finditer(response.body):
            src = next(g for g in match.groups() if g is not None).decode("latin-1")
            if src.startswith("/") and not src.startswith("//") and src not in paths:
                paths.append(src)
        images = self._images(paths)
        self._page_complete(page_type, nav_start, response, images, tier)
        if self.kind == "browser":
            self._beacon(nav_start, response, images)
        if self.kind == "app" and self.rng.random() < 0.05:
            self.cell = self.rng.choice(CELLS[self.profile.name])  # moved to another cell
            self.link.scale = self._cell_scale()

    def _check_page(self, check: _Catch, response: HttpResponse, tier: str | None) -> None:
        if response.status != 200:
            check.failure(f"HTTP {response.status}")
            return
        if tier is None:
            check.failure("no Edge-Tier on an HTML page")
            return
        steady = self._phase() == "steady"
        # Who decided and why (Server-Timing edge;desc="tier/source/reason").
        desc = re.search(r'edge;desc="([^"]*)"', response.header("server-timing") or "")
        if desc and desc.group(1).split("/")[1:2] == ["holdback"]:
            # The holdback is edge's control group: always the full page, by design. Counted apart.
            self.summary_tier("holdback", steady)
            return
        self.summary_tier(tier, steady)
        if self.forced_full:
            if tier != "full":
                check.failure(f"wrong tier: {tier} for {self.profile.name} with edge_tier=full")
        elif steady and (self.profile.expect == "lite" and tier not in ("lite", "minimal")
                         or self.profile.expect == "full" and tier != "full"):
            check.failure(f"wrong tier: {tier} for {self.profile.name}")
            SUMMARY.count("wrong", self.profile.name, self.client, desc.group(1) if desc else "?")

    def summary_tier(self, tier: str, steady: bool) -> None:
        SUMMARY.count("tier", self.profile.name, self.variant, self.client, "steady" if steady else "warmup", tier)

    def _phase(self) -> str:
        opts = self.environment.parsed_options
        warmup = opts.warmup if opts else 10.0
        started = STATE["started"] or 0.0
        return "steady" if time.monotonic() - started >= warmup else "warmup"

    def _images(self, paths: list[str]) -> list[HttpResponse]:
        """Fetch ``paths`` over up to 4 parallel connections sharing the phone's downlink."""
        if not paths:
            return []
        queue, done = list(paths), []
        headers = self._headers("image")

        def worker(conn: HttpConnection) -> None:
            while queue:
                path = queue.pop(0)
                response = self._fetch(conn, "GET", path, "/static/img/[name]", headers, expect=(200,))
                if response is not None:
                    done.append(response)

        greenlets = [gevent.spawn(worker, c) for c in self.img_conns[: min(IMAGE_CONNECTIONS, len(paths))]]
        try:
            gevent.joinall(greenlets)
        finally:
            gevent.killall([g for g in greenlets if not g.dead])
        return done

    def _page_complete(self, page_type: str, nav_start: float, page: HttpResponse,
                       images: list[HttpResponse], tier: str | None) -> None:
        end = max([page.response_end, *(r.response_end for r in images)])
        total_bytes = len(page.body) + sum(len(r.body) for r in images)
        ms = (end - nav_start) * 1000.0
        self.environment.events.request.fire(
            request_type="PAGE", name=f"{self.label} page-complete", response_time=ms,
            response_length=total_bytes, exception=None, context={},
        )
        SUMMARY.pages[f"{self.profile.name}|{self.variant}"].append(
            [round(ms, 1), total_bytes, tier or "-", self._phase(), page_type, self.client]
        )

    # ------------------------------------------------------------ feedback

    def _beacon(self, nav_start: float, page: HttpResponse, images: list[HttpResponse]) -> None:
        """navigator.sendBeacon after load, exactly as docs/feedback.md: token, nav, res, c."""
        token = page.header("edge-token")
        if not token:
            SUMMARY.count("beacon", "no-token")
            return

        def rel(t: float) -> float:
            return round((t - nav_start) * 1000.0, 1)

        largest = sorted(images, key=lambda r: len(r.body), reverse=True)[:MAX_BEACON_RESOURCES]
        body: dict = {
            "t": token,
            "nav": [rel(page.request_start), rel(page.response_start), rel(page.response_end), len(page.body)],
            "res": [[rel(r.response_start), rel(r.response_end), len(r.body)] for r in largest],
        }
        if self.hints:  # navigator.connection: Chromium only
            hints = browser_hints(self.profile, self.link.elapsed())
            body["c"] = [hints["ECT"], int(hints["RTT"]), float(hints["Downlink"])]
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = self._headers("beacon")
        headers["Content-Type"] = "text/plain;charset=UTF-8"
        started = time.monotonic()
        response, error = self._send(self.conn, "POST", "/__edge/beacon", headers, payload)
        with _Catch(self, "POST", "/__edge/beacon", started, response, error) as check:
            if response is None:
                return
            SUMMARY.count("beacon", str(response.status))
            if response.status == 404:
                check.success()  # the endpoint is not deployed: feedback not available, not a failure
            elif response.status != 204:
                check.failure(f"beacon refused: HTTP {response.status} {response.body[:80]!r}")

    def _remember(self, response: HttpResponse) -> None:
        """The app's own measurement of this request, sent with the next one."""
        self.last = {
            "ms": max(1, round((response.response_end - response.request_start) * 1000)),
            "ttfb": max(1, round((response.response_start - response.request_start) * 1000)),
            "bytes": len(response.body),
            "token": response.header("edge-token"),
            "cell": self.cell["id"],
        }
        SUMMARY.count("token", "app", "present" if self.last["token"] else "absent")

    # ------------------------------------------------------------ headers and sending

    def _headers(self, what: str) -> dict[str, str]:
        accept = {
            "html": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "json": "application/json",
            "image": "image/avif,image/webp,image/png,image/*,*/*;q=0.8",
            "beacon": "*/*",
        }[what]
        headers = {"User-Agent": self.user_agent, "Accept": accept, "Accept-Language": "en-GB,en;q=0.9"}
        if self.kind == "browser":
            if self.hints:  # Chromium; Safari and Firefox send none of these
                headers["Sec-CH-UA-Mobile"] = "?1"
                headers["Sec-CH-UA-Platform"] = '"Android"'
                hints = browser_hints(self.profile, self.link.elapsed())
                for name, value in hints.items():
                    if name.lower() in self.accept_ch:
                        headers[name] = value
                if "device-memory" in self.accept_ch:
                    headers["Device-Memory"] = f"{self.memory:g}"
        else:
            headers["Device-Memory"] = f"{self.memory:g}"
            headers["Edge-Cell"] = self._edge_cell()
            if self.last is not None and what != "image":
                headers["Edge-Last-Request"] = self._edge_last_request()
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _edge_cell(self) -> str:
        cell, c = self.cell, self.cell["congestion"]
        value = f'id="{cell["id"]}", radio={cell["radio"]}'
        if cell["radio"] in ("lte", "nr"):
            value += f", rsrp={round(-85 - 25 * c)}, sinr={round(20 - 22 * c)}, cqi={round(13 - 9 * c)}"
        return value

    def _edge_last_request(self) -> str:
        last = self.last or {}
        tail = f'ms={last["ms"]}, ttfb={last["ttfb"]}, bytes={last["bytes"]}, cell="{last["cell"]}"'
        if last.get("token"):
            value = f'token="{last["token"]}", {tail}'
            if len(value) <= MAX_LAST_REQUEST_HEADER:
                return value
            SUMMARY.count("token", "app", "dropped-header-over-1KB")
        return tail

    def _send(self, conn: HttpConnection, method: str, path: str, headers: dict[str, str],
              body: bytes = b"") -> tuple[HttpResponse | None, BaseException | None]:
        try:
            response = conn.request(method, path, headers, body)
        except (OSError, ValueError) as exc:  # refused, reset, timeout, protocol error
            return None, exc
        except Exception as exc:  # noqa: BLE001 - a bug in the client is a failed request, not a dead user
            return None, exc
        self._store_cookies(response)
        accept_ch = response.header("accept-ch")
        if accept_ch and self.kind == "browser" and self.hints:
            self.accept_ch = {h.strip().lower() for h in accept_ch.split(",")}
        return response, None

    def _fetch(self, conn: HttpConnection, method: str, path: str, name: str, headers: dict[str, str],
               expect: tuple[int, ...]) -> HttpResponse | None:
        started = time.monotonic()
        response, error = self._send(conn, method, path, headers)
        with _Catch(self, method, name, started, response, error) as check:
            if response is not None and response.status not in expect:
                check.failure(f"HTTP {response.status}")
        return response if response is not None and response.status in expect else None

    def _store_cookies(self, response: HttpResponse) -> None:
        for name, value in response.headers:
            if name == "set-cookie":
                key, _, rest = value.partition("=")
                val = rest.split(";", 1)[0]
                if key.strip() == "edge_tier" and self.forced_full:
                    continue
                if "max-age=0" in value.lower() or not val:
                    self.cookies.pop(key.strip(), None)
                else:
                    self.cookies[key.strip()] = val


def _user_class(profile: Profile, forced_full: bool) -> type[PhoneUser]:
    name = f"Phone_{profile.name}" + ("_full" if forced_full else "")
    doc = f"A phone on {profile.title} ({profile.source})" + ("; forced to the full page." if forced_full else ".")
    return type(name, (PhoneUser,), {"profile": profile, "forced_full": forced_full, "weight": WEIGHTS[profile.name],
                                     "abstract": False, "__doc__": doc, "__module__": __name__})


for _profile in PROFILES.values():
    for _forced in (False, True):
        _cls = _user_class(_profile, _forced)
        globals()[_cls.__name__] = _cls
del _profile, _forced, _cls
