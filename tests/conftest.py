"""Shared fixtures: small in-process apps and metric readers."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

# Conftest files hold fixtures, not doctests: keep --doctest-modules from importing them as modules
# (several directories' "conftest" modules clash by name when collected that way).
collect_ignore_glob = ["conftest.py", "*/conftest.py"]


@pytest.fixture
def metric():
    """Read one sample of edge's registry: ``metric("edge_fail_open_total", stage="rewrite")``."""

    def read(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return read
