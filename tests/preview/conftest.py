"""Fixtures for ``edge preview``: real storefronts on loopback, each a real uvicorn process.

- ``demo_storefront`` (module): ``edge storefront`` (the demo shop) on a free port → its base URL;
- ``stall_shop`` (module): ``uvicorn stallshop:app``, whose lite-tier image variant never arrives.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.preview.browser import find_chromium
from tests.readiness import poll_ready

collect_ignore = ["conftest.py", "stallshop.py"]  # no doctests; keep them from clashing with other conftests

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
START_DEADLINE_S = 60.0  # a shared 2-core machine imports slowly


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _serve(argv: list[str], ready_url: str, log: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        ready, last = poll_ready(ready_url, lambda: proc.poll() is None, time.monotonic() + START_DEADLINE_S)
        assert ready, f"{argv[0]} did not answer {ready_url} (last: {last!r}):\n{log.read_text(errors='replace')}"
        yield ready_url.rsplit("/", 1)[0]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def chromium_bin() -> str:
    found = find_chromium()
    assert found, "chromium not found: `make system-deps` (run by `make test`) installs Debian's chromium"
    return found


@pytest.fixture(scope="module")
def demo_storefront(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    argv = [str(BIN / "edge"), "storefront", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    yield from _serve(argv, f"http://{HOST}:{port}/", tmp_path_factory.mktemp("demo") / "storefront.log")


@pytest.fixture(scope="module")
def stall_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    argv = [str(BIN / "uvicorn") if (BIN / "uvicorn").exists() else shutil.which("uvicorn") or "uvicorn",
            "stallshop:app", "--host", HOST, "--port", str(port), "--log-level", "warning"]  # fmt: skip
    yield from _serve(argv, f"http://{HOST}:{port}/", tmp_path_factory.mktemp("stall") / "uvicorn.log")
