"""Fixtures for the deployment tests (helpers live in ``_deploy.py``)."""

from __future__ import annotations

import pytest
from _deploy import tool


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool's path; skips (saying how to install it) only when it is missing."""
    return tool("promtool")
