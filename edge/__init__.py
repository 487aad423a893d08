"""edge: adaptive mobile page serving for online storefronts.

edge sits in front of a storefront (as a reverse-proxy sidecar, or as ASGI
middleware around a Python storefront), predicts per request whether the
shopper's network is degraded, and serves such shoppers a lighter layout.

Public surface::

    from edge import AdaptiveMiddleware, Settings, load_policy, build_edge

Names are imported on first use (PEP 562), so a light command (the
``--workers`` supervisor, ``edge policy check``) does not load the model's
numeric stack.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AdaptError": "edge.errors",
    "EdgeError": "edge.errors",
    "PolicyError": "edge.errors",
    "SettingsError": "edge.errors",
    "UpstreamError": "edge.errors",
    "AdaptiveMiddleware": "edge.middleware",
    "Decision": "edge.policy",
    "Policy": "edge.policy",
    "load_policy": "edge.policy",
    "Edge": "edge.app",
    "build_edge": "edge.app",
    "MODELS": "edge.model",
    "NetworkModel": "edge.model",
    "NullModel": "edge.model",
    "RuleModel": "edge.model",
    "Settings": "edge.settings",
    "Signals": "edge.signals",
    "read_signals": "edge.signals",
    "TowerTable": "edge.towers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
