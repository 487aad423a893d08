"""The shop wrapped in edge in-process: ``uvicorn djangoshop.edge_asgi:application``.

Exactly what the README shows: ``AdaptiveMiddleware(storefront_app, policy=..., settings=...)``
around Django's own ASGI application. The policy is ``tests/storefronts/shop_policy.toml``.
"""

from pathlib import Path

from djangoshop.asgi import application as django_application
from edge import AdaptiveMiddleware, Settings, load_policy

POLICY = Path(__file__).resolve().parents[1] / "shop_policy.toml"

application = AdaptiveMiddleware(
    django_application,
    policy=load_policy(POLICY),
    settings=Settings.from_env(policy=POLICY, fail_mode="open"),
)
