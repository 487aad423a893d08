"""A real ``redis-server`` for the fleet's tests (tests/state, tests/integration/test_fleet.py).

The README's test command installs Debian's ``redis-server`` (scripts/system-deps.sh); a missing
binary fails the tests that need it, with that hint, rather than skipping them.

:class:`RedisServer` runs one on a free loopback port with no persistence, and can be killed
(``SIGKILL``, as a crashed node) and started again on the same port, empty (a restart without
persistence, or a failover to an empty replica).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisServer", "redis_binary"]


def redis_binary() -> str:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if path is None:
        raise RuntimeError("redis-server is not installed: run `make test` (scripts/system-deps.sh installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process on 127.0.0.1; ``url`` is what ``--state`` takes."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.log_path = log_dir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", str(self.log_path)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.proc.returncode}: {self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on {self.port}: {self.logs()}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"
