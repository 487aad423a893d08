"""Integration fixtures: the demo storefront and ``edge serve`` as real processes on loopback.

Nothing here runs in-process: every test talks HTTP over real sockets to
subprocesses started from the installed ``edge`` console script.

- ``stack`` (session): one storefront plus one ``edge serve`` in front of it
  (``--read-timeout 2 --fail-mode open``), shared by most tests.
- ``tight_edge`` (session): a second edge with ``--read-timeout 1 --max-rewrite-bytes 50000``.
- ``start_edge`` (session): a factory for extra ``edge serve`` processes with
  other flags (a dead upstream, a shorter read timeout...); each is started once
  per distinct flag set and stopped at the end of the session.
- ``launch_edge`` (function): a fresh ``edge serve`` on every call, with extra ``EDGE_*`` variables
  (feedback key and TTL, checkpoint interval), for tests that stop and restart it.
- ``client`` / ``make_client``: httpx clients that follow no redirects and store no cookies.
- ``vm_rss`` (``vm_rss_kib(pid)``): a process's resident set size in KiB from ``/proc/PID/status``.
- ``raw`` (``raw_http``): one request over a raw socket, for bytes no HTTP library would send.

A failing test's report carries the logs of the processes it used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
import pytest

from tests.readiness import poll_ready

ROOT = Path(__file__).resolve().parents[2]
_BIN = Path(sys.executable).parent
EDGE_BIN = str(_BIN / "edge") if (_BIN / "edge").exists() else (shutil.which("edge") or "edge")
HOST = "127.0.0.1"
START_DEADLINE_S = 20.0


def free_port() -> int:
    """A TCP port nothing listens on right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def vm_rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (``VmRSS`` in ``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid} (is it a zombie?)")


@dataclass
class Proc:
    """One started subprocess and where its output goes."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def logs(self, limit: int = 8000) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-limit:]

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class EdgeProc:
    """A running ``edge serve``: public and admin base URLs, and its process."""

    url: str
    admin_url: str
    port: int
    admin_port: int
    proc: Proc

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Stack:
    """The shared storefront + edge pair."""

    storefront_url: str
    storefront_port: int
    storefront: Proc
    edge: EdgeProc
    procs: list[Proc] = field(default_factory=list)

    @property
    def edge_url(self) -> str:
        return self.edge.url

    @property
    def admin_url(self) -> str:
        return self.edge.admin_url

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} (pid {p.pid}, rc {p.popen.poll()}) -----\n{p.logs()}" for p in self.procs)


def _spawn(name: str, args: list[str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child; closed below
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Settings read EDGE_* variables: the tests' flags must be the only configuration.
    for key in [k for k in env if k.startswith("EDGE_")]:
        del env[key]
    try:
        popen = subprocess.Popen(
            [EDGE_BIN, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
    finally:
        log.close()
    return Proc(name, popen, log_path)


class _StartFailed(Exception):
    def __init__(self, message: str, died: bool) -> None:
        super().__init__(message)
        self.died = died


def _wait_until(url: str, procs: list[Proc], deadline: float) -> None:
    """Poll ``url`` until it answers 2xx; raise :class:`_StartFailed` with every process's log otherwise."""
    ready, last = poll_ready(url, lambda: all(p.alive() for p in procs), deadline)
    if ready:
        return
    died = any(not p.alive() for p in procs)
    for proc in procs:
        proc.stop()
    logs = "\n".join(f"----- {p.name} (rc {p.popen.poll()}) -----\n{p.logs()}" for p in procs)
    raise _StartFailed(f"{url} did not become ready (last: {last!r})\n{logs}", died)


def _start(name: str, make_args, log_dir: Path, ready_path: str, attempts: int = 3):  # noqa: ANN001, ANN202
    """Spawn ``edge`` with ``make_args(ports)`` on fresh ports until it is ready.

    A port picked by :func:`free_port` can be taken by someone else before the child binds it;
    the child then exits at once ("address already in use"), and it is retried on new ports.
    Any other failure (a crash, a timeout) fails the test at once with the logs.
    """
    deadline = time.monotonic() + START_DEADLINE_S
    for attempt in range(attempts):
        ports = _distinct_ports(2)
        args, base = make_args(ports)
        proc = _spawn(name if attempt == 0 else f"{name}-retry{attempt}", args, log_dir)
        try:
            _wait_until(base + ready_path, [proc], deadline)
            return proc, ports
        except _StartFailed as exc:
            port_taken = exc.died and "address already in use" in proc.logs().lower()
            if not port_taken or attempt == attempts - 1 or time.monotonic() >= deadline:
                pytest.fail(str(exc), pytrace=False)
    raise AssertionError("unreachable")


def _wait_for_listen(port: int, proc: Proc, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        try:
            socket.create_connection((HOST, port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.02)
    proc.stop()
    pytest.fail(f"{proc.name} never listened on port {port}\n{proc.logs()}", pytrace=False)


def _distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class EdgeFactory:
    """Start ``edge serve`` processes; the same flags give the same (already running) process.

    :meth:`prestart` spawns one without waiting, so several can boot in parallel; calling the
    factory with the same arguments later waits for that process instead of starting another.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: dict[tuple[str, ...], EdgeProc] = {}
        self.pending: dict[tuple[str, ...], tuple[Proc, list[int]]] = {}
        self.procs: list[Proc] = []

    @staticmethod
    def _args(upstream: str, flags: tuple[str, ...], ports: list[int]) -> tuple[list[str], str]:
        port, admin_port = ports
        args = [
            "serve",
            "--upstream", upstream,
            "--host", HOST,
            "--port", str(port),
            "--admin-host", HOST,
            "--admin-port", str(admin_port),
            "--log-level", "warning",
            *flags,
        ]  # fmt: skip
        return args, f"http://{HOST}:{admin_port}"

    def prestart(self, upstream: str, *flags: str, name: str) -> None:
        key = (upstream, *flags)
        if key in self.started or key in self.pending:
            return
        ports = _distinct_ports(2)
        proc = _spawn(name, self._args(upstream, flags, ports)[0], self.log_dir)
        self.procs.append(proc)
        self.pending[key] = (proc, ports)

    def __call__(self, upstream: str, *flags: str, name: str | None = None) -> EdgeProc:
        key = (upstream, *flags)
        if key in self.started and self.started[key].proc.alive():
            return self.started[key]
        name = name or f"edge-{len(self.procs) + 1}"
        proc = None
        if key in self.pending:
            proc, ports = self.pending.pop(key)
            try:
                _wait_until(f"http://{HOST}:{ports[1]}/readyz", [proc], time.monotonic() + START_DEADLINE_S)
            except _StartFailed as exc:
                if "address already in use" not in proc.logs().lower():
                    pytest.fail(str(exc), pytrace=False)
                proc = None  # a port was taken meanwhile: start afresh below
        if proc is None:
            proc, ports = _start(name, lambda p: self._args(upstream, flags, p), self.log_dir, "/readyz")
            self.procs.append(proc)
        port, admin_port = ports
        # /readyz turns ready in the public app's lifespan, which uvicorn runs just before it binds
        # the public socket: wait for the socket too, so the first request cannot be refused.
        _wait_for_listen(port, proc)
        edge = EdgeProc(f"http://{HOST}:{port}", f"http://{HOST}:{admin_port}", port, admin_port, proc)
        self.started[key] = edge
        return edge

    def stop_all(self) -> None:
        # SIGTERM everyone first, then wait: the processes drain in parallel, not one after another.
        for proc in self.procs:
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture(scope="session")
def integration_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge-integration")


@pytest.fixture(scope="session")
def start_edge(integration_logs: Path) -> Iterator[EdgeFactory]:
    """Factory: ``start_edge(upstream, "--read-timeout", "1")`` → a ready :class:`EdgeProc`."""
    factory = EdgeFactory(integration_logs)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def stack(start_edge: EdgeFactory, integration_logs: Path) -> Iterator[Stack]:
    """The demo storefront and one ``edge serve`` in front of it, both ready."""
    sf_port = free_port()
    sf_url = f"http://{HOST}:{sf_port}"
    storefront = _spawn("storefront", ["storefront", "--host", HOST, "--port", str(sf_port), "--log-level", "warning"], integration_logs)
    # Boot the edges while the storefront starts (edge needs no upstream to become ready).
    start_edge.prestart(sf_url, *MAIN_EDGE_FLAGS, name="edge")
    start_edge.prestart(sf_url, *TIGHT_EDGE_FLAGS, name="edge-tight")
    try:
        try:
            _wait_until(f"{sf_url}/", [storefront], time.monotonic() + START_DEADLINE_S)
        except _StartFailed as exc:
            pytest.fail(str(exc), pytrace=False)
        edge = start_edge(sf_url, *MAIN_EDGE_FLAGS, name="edge")
        yield Stack(sf_url, sf_port, storefront, edge, [storefront, edge.proc])
    finally:
        storefront.stop()


MAIN_EDGE_FLAGS = ("--read-timeout", "2", "--fail-mode", "open")
TIGHT_EDGE_FLAGS = ("--read-timeout", "1", "--max-rewrite-bytes", "50000", "--fail-mode", "open")


@pytest.fixture(scope="session")
def tight_edge(stack: Stack, start_edge: EdgeFactory) -> EdgeProc:
    """A second edge in front of the same storefront with tight limits: a 1 s read timeout and a
    50 000-byte rewrite cap (one process for both, to keep the suite's start-up cost down)."""
    return start_edge(stack.storefront_url, *TIGHT_EDGE_FLAGS, name="edge-tight")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An httpx client on real sockets: no redirects followed, no proxy from the environment."""
    with new_client() as c:
        yield c


@pytest.fixture(scope="session")
def make_client():
    """``make_client(**httpx_options)`` → a fresh client like ``client`` (use it as a context manager)."""
    return new_client


def new_client(**kwargs: object) -> httpx.Client:
    """A client that never follows redirects, ignores proxy env vars and never stores cookies.

    Cookies are sent only when a test sets the ``Cookie`` header itself, so one response's
    ``Set-Cookie`` (the storefront's session, edge's preference) cannot leak into the next request.
    """
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    options: dict = {"timeout": 10.0, "follow_redirects": False, "trust_env": False, "cookies": jar}
    options.update(kwargs)
    return httpx.Client(**options)


@dataclass
class RawResponse:
    """A response read off a raw socket: status, headers in wire order (names lower-cased), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def get_list(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.get_list(name)
        return values[0] if values else None


def raw_http(host: str, port: int, head: bytes, body: bytes = b"", timeout: float = 10.0) -> RawResponse:
    """Send exactly ``head`` (request line + headers, ending in a blank line) and ``body``; read to EOF.

    The caller should send ``Connection: close`` so the server ends the exchange.
    Handles ``Content-Length``, chunked and read-to-close bodies.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    data = b"".join(chunks)
    header_blob, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"incomplete response: {data[:500]!r}")
    lines = header_blob.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
    response = RawResponse(status, headers, rest)
    if (response.get("transfer-encoding") or "").lower() == "chunked":
        response.body = _dechunk(rest)
    elif response.get("content-length") is not None:
        response.body = rest[: int(response.get("content-length"))]
    return response


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


@pytest.fixture(scope="session")
def vm_rss():
    """``vm_rss(pid)`` → resident set size in KiB, from ``/proc/PID/status``."""
    return vm_rss_kib


@pytest.fixture(scope="session")
def raw():
    """``raw(host, port, head_bytes, body=b"")`` → :class:`RawResponse` (see :func:`raw_http`)."""
    return raw_http


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """Attach the started processes' logs to a failing test's report."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        procs: list[Proc] = []
        if isinstance(funcargs.get("stack"), Stack):
            procs.append(funcargs["stack"].storefront)
        factory = funcargs.get("start_edge")
        if factory is None and isinstance(funcargs.get("stack"), Stack):
            procs.append(funcargs["stack"].edge.proc)
        if isinstance(factory, EdgeFactory):
            procs.extend(factory.procs)
        for proc in procs:
            report.sections.append((f"log of {proc.name} (pid {proc.pid}, rc {proc.popen.poll()})", proc.logs()))
    return report


# ---------------------------------------------------------------------------------------------
# Fresh edge processes with EDGE_* settings that have no flag (feedback key and TTL, checkpoint
# interval), for tests that stop, kill and restart them (tests/integration/test_learning_loop.py).
# ---------------------------------------------------------------------------------------------


def _spawn_with_env(name: str, args: list[str], log_dir: Path, extra_env: dict[str, str]) -> Proc:
    """Like :func:`_spawn` (no inherited ``EDGE_*``), then ``extra_env`` on top."""
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child; closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(PYTHONUNBUFFERED="1", **extra_env)
    try:
        popen = subprocess.Popen(
            [EDGE_BIN, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=env
        )
    finally:
        log.close()
    return Proc(name, popen, log_path)


class EdgeLauncher:
    """Start a *new* ``edge serve`` on every call (never cached), with extra ``EDGE_*`` variables.

    ``launch_edge(upstream, "--checkpoint", path, env={"EDGE_FEEDBACK_KEY": "..."})`` → a ready
    :class:`EdgeProc`. The test may SIGTERM or kill it; whatever is still running at the end of
    the test is stopped. Each process logs at ``info`` unless the flags say otherwise, so start-up
    lines (a checkpoint restored or refused) are in its log.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def __call__(self, upstream: str, *flags: str, env: dict[str, str] | None = None, name: str | None = None) -> EdgeProc:
        name = name or f"launched-edge-{len(self.procs) + 1}"

        def make_args(ports: list[int]) -> tuple[list[str], str]:
            port, admin_port = ports
            args = [
                "serve", "--upstream", upstream, "--host", HOST, "--port", str(port),
                "--admin-host", HOST, "--admin-port", str(admin_port), *flags,
            ]  # fmt: skip
            if "--log-level" not in flags:
                args += ["--log-level", "info"]
            return args, f"http://{HOST}:{admin_port}"

        deadline = time.monotonic() + START_DEADLINE_S
        for attempt in range(3):
            ports = _distinct_ports(2)
            args, admin_base = make_args(ports)
            proc = _spawn_with_env(name if attempt == 0 else f"{name}-retry{attempt}", args, self.log_dir, env or {})
            self.procs.append(proc)
            try:
                _wait_until(admin_base + "/readyz", [proc], deadline)
            except _StartFailed as exc:
                if exc.died and "address already in use" in proc.logs().lower() and attempt < 2:
                    continue
                pytest.fail(str(exc), pytrace=False)
            _wait_for_listen(ports[0], proc)
            return EdgeProc(f"http://{HOST}:{ports[0]}", admin_base, ports[0], ports[1], proc)
        raise AssertionError("unreachable")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def launch_edge(integration_logs: Path) -> Iterator[EdgeLauncher]:
    """Factory for fresh ``edge serve`` processes with extra ``EDGE_*`` settings (see :class:`EdgeLauncher`)."""
    launcher = EdgeLauncher(integration_logs)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_launch_edge(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN202
    """A failing test's report also carries the logs of the processes ``launch_edge`` started for it."""
    report = yield
    launcher = getattr(item, "funcargs", {}).get("launch_edge")
    if report.when == "call" and report.failed and isinstance(launcher, EdgeLauncher):
        for proc in launcher.procs:
            report.sections.append((f"log of {proc.name} (pid {proc.pid}, rc {proc.popen.poll()})", proc.logs()))
    return report
