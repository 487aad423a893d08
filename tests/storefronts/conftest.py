"""Real storefront frameworks behind edge: a Django shop and a Flask shop, as real processes.

Everything runs as separate processes on loopback ports, started once per test session and in
parallel (each ``edge`` process takes seconds to import its model stack on a busy machine):

- ``django_shop`` (session): one sqlite database in a temp dir (tables and the shopper created by
  ``python -m djangoshop.bootstrap``), and
  - ``direct``: Django's ASGI application under uvicorn (``djangoshop.asgi``);
  - ``serve``: ``edge serve --upstream <direct> --policy shop_policy.toml`` (the README's way);
  - ``inprocess``: uvicorn running ``AdaptiveMiddleware(django_app, policy=..., settings=...)``
    (``djangoshop.edge_asgi``);
  - ``proxied``: a second Django process with ``USE_X_FORWARDED_HOST = True`` behind
    ``edge serve --no-preserve-host`` (``no_preserve``), and the plain one behind another
    ``--no-preserve-host`` edge (``no_preserve_plain``): what a shop needs when edge does not forward
    the browser's Host;
  - ``behind_tls``: ``edge serve --forwarded-allow-ips 127.0.0.1`` before ``direct``, as behind a
    TLS-terminating load balancer (the test plays the balancer, sending ``X-Forwarded-Proto``).
- ``flask_shop`` (session): the Flask app under waitress (a real WSGI server) and ``edge serve`` in front.
- ``chromium`` (session): one headless Chromium (the e2e suite's DevTools helper,
  ``tests/e2e/conftest.py``); every flow opens its own isolated browser context.

A failing test's report carries the logs of every process started here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.readiness import poll_ready
from tests.storefronts.browsing import PASSWORD, USERNAME, e2e, helpers

# The shops are applications, not test modules: keep pytest's doctest collection out of them, and
# out of this file (it has no doctests; collected as a module named "conftest" it can clash with
# another directory's conftest when several test paths are given).
collect_ignore = ["djangoshop", "flaskshop", "conftest.py"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
POLICY = HERE / "shop_policy.toml"
START_DEADLINE_S = 60.0  # edge imports River and friends: on a shared 2-core machine that takes a while
HOST = helpers.HOST


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The test process's environment without EDGE_*/SHOP_* settings, the shops importable, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "SHOP_", "DJANGO_"))}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]), **extra)
    return env


def _spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> Any:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=HERE, env=_clean_env(env))
    return helpers.Proc(name, popen, log_path)


@dataclass
class Server:
    """A process started by :class:`Launcher`; ``url`` is its public base URL."""

    name: str
    argv_for: Any  # (port, admin_port) -> argv
    env: dict[str, str]
    ready_path: str
    admin: bool
    proc: Any = None
    port: int = 0
    admin_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"


@dataclass
class Launcher:
    """Spawn every process first, then wait for each: they boot in parallel."""

    log_dir: Path
    servers: list[Server] = field(default_factory=list)
    procs: list[Any] = field(default_factory=list)

    def spawn(self, server: Server, attempt: int = 0) -> Server:
        if attempt or not server.port:  # ports reserved earlier (an upstream edge must name) are used first
            server.port, server.admin_port = helpers._distinct_ports(2)
        suffix = f"-retry{attempt}" if attempt else ""
        server.proc = _spawn(server.name + suffix, server.argv_for(server.port, server.admin_port), self.log_dir, server.env)
        self.procs.append(server.proc)
        if server not in self.servers:
            self.servers.append(server)
        return server

    def wait(self, server: Server, deadline: float) -> Server:
        for attempt in range(1, 4):
            base = server.admin_url if server.admin else server.url
            ready, last = poll_ready(base + server.ready_path, server.proc.alive, deadline)
            if ready:
                if server.admin:  # the admin port answers first: wait for the public socket too
                    helpers._wait_for_listen(server.port, server.proc)
                return server
            if not server.proc.alive() and "address already in use" in server.proc.logs().lower() and attempt < 3:
                self.spawn(server, attempt)  # a picked port was taken meanwhile: new ports
                continue
            server.proc.stop()
            pytest.fail(f"{server.name} did not become ready at {base + server.ready_path} (last: {last!r})\n{server.proc.logs()}", pytrace=False)
        raise AssertionError("unreachable")

    def uvicorn(self, name: str, app: str, env: dict[str, str] | None = None, ready_path: str = "/static/shop/shop.css") -> Server:
        """A uvicorn server, not started yet (its port is reserved): :meth:`spawn` it."""
        argv = lambda port, _admin: [  # noqa: E731
            str(BIN / "uvicorn"), app, "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        server = Server(name, argv, env or {}, ready_path, admin=False)
        server.port, server.admin_port = helpers._distinct_ports(2)
        return server

    def edge(self, name: str, upstream: Server, *flags: str, env: dict[str, str] | None = None) -> Server:
        argv = lambda port, admin: [  # noqa: E731
            str(BIN / "edge"), "serve", "--upstream", upstream.url, "--host", HOST, "--port", str(port),
            "--admin-host", HOST, "--admin-port", str(admin), "--policy", str(POLICY), "--log-level", "warning", *flags,
        ]  # fmt: skip
        return self.spawn(Server(name, argv, env or {}, "/readyz", admin=True))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.popen.terminate()
        for proc in self.procs:
            proc.stop()

    def logs(self) -> list[tuple[str, str]]:
        return [(f"log of {p.name} (pid {p.pid}, rc {p.popen.poll()})", p.logs()) for p in self.procs]


@dataclass
class DjangoShop:
    direct: Server
    serve: Server
    inprocess: Server
    proxied: Server  # Django with USE_X_FORWARDED_HOST = True
    no_preserve: Server  # edge --no-preserve-host in front of ``proxied``
    no_preserve_plain: Server  # edge --no-preserve-host in front of ``direct`` (stock settings)
    behind_tls: Server  # edge --forwarded-allow-ips 127.0.0.1 (a TLS-terminating balancer in front) before ``direct``
    launcher: Launcher


@dataclass
class FlaskShop:
    direct: Server
    serve: Server
    launcher: Launcher


_LAUNCHERS: list[Launcher] = []


@pytest.fixture(scope="session")
def storefront_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("storefronts")


@pytest.fixture(scope="session")
def django_shop(storefront_logs: Path) -> Iterator[DjangoShop]:
    db = storefront_logs / "shop.sqlite3"
    env = {"SHOP_DB": str(db), "DJANGO_SETTINGS_MODULE": "djangoshop.settings"}
    launcher = Launcher(storefront_logs)
    _LAUNCHERS.append(launcher)
    try:
        bootstrap = subprocess.Popen(
            [sys.executable, "-m", "djangoshop.bootstrap", USERNAME, PASSWORD],
            cwd=HERE, env=_clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        direct = launcher.uvicorn("django", "djangoshop.asgi:application", env)
        proxied = launcher.uvicorn("django-forwarded-host", "djangoshop.asgi:application", {**env, "SHOP_USE_X_FORWARDED_HOST": "1"})
        inprocess = launcher.uvicorn("django-inprocess", "djangoshop.edge_asgi:application", env)
        # The edges need no upstream to become ready: they import while the database is set up.
        serve = launcher.edge("edge-django", direct)
        no_preserve = launcher.edge("edge-no-preserve-host", proxied, "--no-preserve-host")
        no_preserve_plain = launcher.edge("edge-no-preserve-host-stock", direct, "--no-preserve-host")
        behind_tls = launcher.edge("edge-behind-tls", direct, "--forwarded-allow-ips", HOST)
        output, _ = bootstrap.communicate(timeout=120)
        assert bootstrap.returncode == 0, f"python -m djangoshop.bootstrap failed:\n{output}"
        for server in (direct, proxied, inprocess):
            launcher.spawn(server)
        deadline = time.monotonic() + START_DEADLINE_S
        for server in (direct, proxied, inprocess, serve, no_preserve, no_preserve_plain, behind_tls):
            launcher.wait(server, deadline)
        yield DjangoShop(direct, serve, inprocess, proxied, no_preserve, no_preserve_plain, behind_tls, launcher)
    finally:
        launcher.stop_all()


@pytest.fixture(scope="session")
def flask_shop(storefront_logs: Path) -> Iterator[FlaskShop]:
    launcher = Launcher(storefront_logs)
    _LAUNCHERS.append(launcher)
    try:
        argv = lambda port, _admin: [  # noqa: E731
            str(BIN / "waitress-serve"), "--listen", f"{HOST}:{port}", "--threads", "4", "flaskshop.app:app",
        ]  # fmt: skip
        direct = launcher.spawn(Server("flask-waitress", argv, {}, "/static/shop.css", admin=False))
        serve = launcher.edge("edge-flask", direct)
        deadline = time.monotonic() + START_DEADLINE_S
        for server in (direct, serve):
            launcher.wait(server, deadline)
        yield FlaskShop(direct, serve, launcher)
    finally:
        launcher.stop_all()


CHROMIUM_CANDIDATES = e2e.CHROMIUM_CANDIDATES


@pytest.fixture(scope="session")
def chromium(storefront_logs: Path) -> Iterator[Any]:
    """One headless Chromium for the session (``scripts/system-deps.sh`` installs Debian's ``chromium``)."""
    executable = next((found for c in CHROMIUM_CANDIDATES if (found := shutil.which(c))), None)
    assert executable, "chromium not found: `bash scripts/system-deps.sh` (run by `make test`) installs it"
    browser = e2e.Browser(executable, storefront_logs / "chromium-profile", storefront_logs / "chromium.log")
    try:
        yield browser
    finally:
        browser.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """A failing test's report carries the logs of the shops, the edges and the browser."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        for launcher in _LAUNCHERS:
            if any(getattr(funcargs.get(n), "launcher", None) is launcher for n in ("django_shop", "flask_shop")):
                report.sections.extend(launcher.logs())
        chrome = funcargs.get("chromium")
        if chrome is not None:
            report.sections.append(("log of chromium", chrome.logs()))
    return report
