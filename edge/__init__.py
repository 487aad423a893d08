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
    "AdaptError": "edge.core.errors",
    "EdgeError": "edge.core.errors",
    "PolicyError": "edge.core.errors",
    "SettingsError": "edge.core.errors",
    "UpstreamError": "edge.core.errors",
    "AdaptiveMiddleware": "edge.adapt.middleware",
    "Decision": "edge.pipeline.policy",
    "Policy": "edge.pipeline.policy",
    "load_policy": "edge.pipeline.policy",
    "Edge": "edge.runtime.app",
    "build_edge": "edge.runtime.app",
    "MODELS": "edge.learning.model",
    "NetworkModel": "edge.learning.model",
    "NullModel": "edge.learning.model",
    "RuleModel": "edge.learning.model",
    "Settings": "edge.core.settings",
    "Signals": "edge.pipeline.signals",
    "read_signals": "edge.pipeline.signals",
    "TowerTable": "edge.pipeline.towers",
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
