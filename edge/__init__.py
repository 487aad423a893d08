"""edge: adaptive mobile page serving for online storefronts.

edge sits in front of a storefront (as a reverse-proxy sidecar, or as ASGI
middleware around a Python storefront), predicts per request whether the
shopper's network is degraded, and serves such shoppers a lighter layout.

Public surface::

    from edge import AdaptiveMiddleware, Settings, load_policy, build_edge
"""

from edge.app import Edge, build_edge
from edge.errors import AdaptError, EdgeError, PolicyError, SettingsError, UpstreamError
from edge.middleware import AdaptiveMiddleware
from edge.model import MODELS, NetworkModel, NullModel, RuleModel
from edge.policy import Decision, Policy, load_policy
from edge.settings import Settings
from edge.signals import Signals, read_signals
from edge.towers import TowerTable

__all__ = [
    "AdaptError",
    "AdaptiveMiddleware",
    "Decision",
    "Edge",
    "EdgeError",
    "MODELS",
    "NetworkModel",
    "NullModel",
    "Policy",
    "PolicyError",
    "RuleModel",
    "Settings",
    "SettingsError",
    "Signals",
    "TowerTable",
    "UpstreamError",
    "build_edge",
    "load_policy",
    "read_signals",
]
__version__ = "0.1.0"
