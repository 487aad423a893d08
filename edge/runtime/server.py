"""Run several uvicorn servers (public port, admin port, demo storefront) in one process.

Every listener speaks HTTP/1.1 through :mod:`edge.runtime.protocol` (uvicorn's httptools
protocol with head, time and connection limits); ``connection_limits`` turns
:class:`~edge.core.settings.Settings` into those limits.

uvicorn's ``Server.serve`` installs its own signal handlers, which would leave
the second server running when the first gets SIGTERM. Here one handler stops
them all: each stops accepting, finishes in-flight requests within
``graceful_timeout`` seconds, runs its lifespan shutdown, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import uvicorn
from starlette.types import ASGIApp

from edge.core.settings import Settings
from edge.runtime.protocol import ConnectionLimits, protocol_class

if TYPE_CHECKING:
    from edge.runtime.fast_path import FastPath

__all__ = ["Listener", "serve_all", "run", "connection_limits"]

log = logging.getLogger("edge")


@dataclass(frozen=True)
class Listener:
    """One ASGI app on one socket."""

    app: ASGIApp
    host: str
    port: int
    name: str
    lifespan: Literal["auto", "on", "off"] = "on"
    #: Trust X-Forwarded-* only from these peers (empty: trust nobody, the peer is the client).
    forwarded_allow_ips: str = ""
    #: Let uvicorn add Date (for apps that originate their responses; not for the proxy).
    date_header: bool = True
    #: An already bound socket to serve on (a worker of ``edge serve --workers N``); host/port then only name it.
    sock: socket.socket | None = None
    #: What one client connection may cost (head size, head deadline, connections).
    limits: ConnectionLimits = ConnectionLimits()
    #: Idle seconds a keep-alive connection is kept between requests.
    keepalive_timeout: float = 15.0
    #: Read each request's TCP_INFO into the scope (edge.runtime.protocol): edge serve's public port.
    tcp_info: bool = False
    #: With ``tcp_info``, only the wait in edge's receive buffer (``queued_ms``): behind a balancer.
    queue_only: bool = False
    #: The full tier's fast path (edge.runtime.fast_path), run instead of ``app`` for the requests it takes.
    fast_path: FastPath | None = None


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The client limits ``settings`` asks for."""
    return ConnectionLimits(
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
        max_request_line=settings.max_request_line,
        max_header_bytes=settings.max_header_bytes,
        max_head_bytes=settings.max_head_bytes,
        max_headers=settings.max_headers,
    )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals are handled once for all servers in serve_all().
        yield


async def serve_all(listeners: list[Listener], *, log_level: str = "info", graceful_timeout: float = 20.0) -> None:
    """Serve every listener until SIGINT/SIGTERM, then shut all of them down gracefully."""
    servers = [
        _Server(
            uvicorn.Config(
                item.app,
                host=item.host,
                port=item.port,
                lifespan=item.lifespan,
                log_level=log_level,
                access_log=False,
                http=protocol_class(item.limits, tcp_info=item.tcp_info, queue_only=item.queue_only, fast_path=item.fast_path),
                # uvicorn annotates these as int but hands them to loop.call_later / asyncio.wait_for,
                # which take seconds as float: a sub-second value is honoured as given.
                timeout_keep_alive=cast(int, item.keepalive_timeout),
                timeout_graceful_shutdown=cast(int, graceful_timeout),
                server_header=False,
                proxy_headers=bool(item.forwarded_allow_ips),
                forwarded_allow_ips=item.forwarded_allow_ips or None,
                # The proxy forwards the storefront's Date; a second one from uvicorn would be wrong.
                # edge adds Date itself to the responses it originates (edge.http_date).
                date_header=item.date_header,
            )
        )
        for item in listeners
    ]
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        log.info("received %s, draining", signal.Signals(signum).name)
        for server in servers:
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    try:
        await asyncio.gather(
            *(server.serve(sockets=[item.sock] if item.sock else None) for server, item in zip(servers, listeners))
        )
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if any(not server.started for server in servers):
        raise SystemExit(3)  # like uvicorn's STARTUP_FAILURE: a port was taken or a lifespan failed


def raise_open_file_limit(wanted: int) -> None:
    """Raise the soft limit on open files toward ``wanted`` (at most the hard limit): each client is a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("open files limited to %d: fewer than the connections allowed (%d); raise `ulimit -n`", soft, wanted)


def run(listeners: list[Listener], *, log_level: str = "info", graceful_timeout: float = 20.0) -> None:
    """Blocking entry point for the CLI (uvloop when available)."""
    # Client connections of every listener, their upstream connections, and some spare for files and logs.
    raise_open_file_limit(sum(2 * item.limits.max_connections for item in listeners) + 256)
    main = serve_all(listeners, log_level=log_level, graceful_timeout=graceful_timeout)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency through uvicorn[standard]
        asyncio.run(main)
    else:
        uvloop.run(main)
