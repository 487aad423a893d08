"""``edge serve --workers N``: N worker processes behind the same two sockets.

One worker per sidecar is the default and the recommended deployment (scale by
pods). On a bigger box, ``--workers N`` runs N copies of the whole sidecar:

- the supervisor (this module) binds one public and one admin socket per worker,
  all on the same two ports with ``SO_REUSEPORT``, and starts N fresh
  interpreters (``python -m edge.runtime.cli serve``) that inherit them: the kernel
  hashes each new connection to one of the sockets, so connections spread
  evenly (one shared socket would let whichever worker wakes first take them);
- metrics stay right across processes with prometheus-client's multiprocess
  mode: the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at an empty
  directory before any worker starts, every worker writes its samples there,
  and whichever worker answers a scrape reports the sum of all of them;
- the model: each worker learns from the feedback it receives (tokens carry
  their own features, so any worker can learn from any page) and checkpoints
  to ``<checkpoint>.<worker index>``, restored by the same index on restart.
  Workers' models therefore see about 1/N of the labels each; the replay guard
  is one table shared by the workers (a file in their multiprocess directory,
  locked per lookup: edge.learning.feedback), so a token teaches one model once;
- without ``EDGE_FEEDBACK_KEY`` a single process signs tokens with a random key of
  its own; N workers doing so would refuse each other's tokens as forged (a beacon
  reaches the worker that served its page one time in N). So the supervisor draws
  one random key and hands it to every worker (``EDGE_WORKER_FEEDBACK_KEY``), for
  tokens and cookies only: checkpoints stay keyless, as a single process's are, so
  a restart (with a new random key) still restores them;
- SIGTERM/SIGINT to the supervisor is forwarded to every worker, which drains
  and checkpoints as a single process would; the supervisor exits 0 when they
  all did. A worker that dies on its own stops the others and the supervisor
  exits 1, so the orchestrator restarts the sidecar whole.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge.core.settings import Settings

__all__ = ["supervise", "SHARED_KEY_ENV", "WORKER_FDS_ENV", "WORKER_INDEX_ENV", "worker_sockets"]

WORKER_FDS_ENV = "EDGE_WORKER_FDS"
WORKER_INDEX_ENV = "EDGE_WORKER_INDEX"
#: The feedback key the supervisor draws for its workers when EDGE_FEEDBACK_KEY is not set.
SHARED_KEY_ENV = "EDGE_WORKER_FEEDBACK_KEY"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def worker_sockets() -> tuple[socket.socket, socket.socket] | None:
    """In a worker: the (public, admin) sockets inherited from the supervisor; None otherwise."""
    fds = os.environ.get(WORKER_FDS_ENV)
    if not fds:
        return None
    public_fd, admin_fd = (int(fd) for fd in fds.split(","))
    return socket.socket(fileno=public_fd), socket.socket(fileno=admin_fd)


def supervise(settings: Settings, workers: int, argv: list[str]) -> int:
    """Run ``workers`` copies of ``edge serve`` (``argv`` less ``--workers``) on shared sockets."""
    pairs = [(_bind(settings.host, settings.port), _bind(settings.admin_host, settings.admin_port)) for _ in range(workers)]
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="edge-metrics-")
    own_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    # Wipe it: samples of a previous run would be added to this one's.
    for entry in Path(metrics_dir).glob("*.db"):
        entry.unlink()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    if not (settings.feedback_key or settings.feedback_key_previous):
        env[SHARED_KEY_ENV] = secrets.token_hex(32)  # one random key for all: any worker accepts any worker's tokens
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "edge.runtime.cli", "serve", *argv],
            env={**env, WORKER_INDEX_ENV: str(index), WORKER_FDS_ENV: f"{public.fileno()},{admin.fileno()}"},
            pass_fds=(public.fileno(), admin.fileno()),
        )
        for index, (public, admin) in enumerate(pairs)
    ]
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    try:
        while any(child.poll() is None for child in children):
            if not stopping and any(child.poll() is not None for child in children):
                # A worker died on its own: stop the rest, let the orchestrator restart the sidecar.
                failed = True
                forward(signal.SIGTERM, None)
            time.sleep(0.2)
    finally:
        for public, admin in pairs:
            public.close()
            admin.close()
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if not own_dir:
        from prometheus_client import multiprocess

        for child in children:  # their live gauges must stop counting
            multiprocess.mark_process_dead(child.pid, metrics_dir)
    codes = [child.returncode for child in children]
    return 1 if failed or any(codes) else 0
