"""The code's own checks, run by the README's test command: ruff (lint, import order, McCabe < 20), mypy, module size.

Configured in pyproject.toml (``[tool.ruff]``, ``[tool.mypy]``); the same commands by hand::

    .venv/bin/ruff check edge tests loadtests
    .venv/bin/mypy
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: "No room over about 500 lines" (issue 15): a module past this is a package waiting to happen.
MAX_MODULE_LINES = 520
#: Modules still over it, each with the size it may not grow past (shrink the list; never add to it).
OVERSIZE = {
}


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean():
    result = _run(str(BIN / "ruff"), "check", "edge", "tests", "loadtests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_grows_past_its_size():
    sizes = {str(p.relative_to(ROOT)): sum(1 for _ in p.open(encoding="utf-8")) for p in (ROOT / "edge").rglob("*.py")}
    over = {path: n for path, n in sizes.items() if n > OVERSIZE.get(path, MAX_MODULE_LINES)}
    assert not over, f"modules over their size (split them at a seam): {over}"
    shrunk = {path for path, limit in OVERSIZE.items() if sizes.get(path, 0) <= MAX_MODULE_LINES}
    assert not shrunk, f"these are under {MAX_MODULE_LINES} lines now: take them off OVERSIZE: {shrunk}"
