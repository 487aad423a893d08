"""One typed settings object for edge: defaults, ``EDGE_*`` environment variables, CLI flags.

Precedence is CLI flag > environment variable > default. Every value is cast and
checked when the object is built, and a bad value names its key::

    >>> Settings.from_env({"EDGE_PORT": "8088"}).port
    8088
    >>> Settings.from_env({"EDGE_PORT": "eighty"})
    Traceback (most recent call last):
    ...
    edge.core.errors.SettingsError: EDGE_PORT: 'eighty' is not a valid int
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from edge.core.errors import SettingsError

__all__ = ["Settings", "DEFAULT_POLICY", "ClientSocket", "CpuPolicy"]

#: The policy of the demo storefront: ``policies/demo.toml``, shipped inside the package as
#: ``edge/demo/policy.toml`` (a symlink in the source tree, a copy in wheels and images).
DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "demo" / "policy.toml"

FailMode = Literal["open", "closed"]
#: Who predicts (edge.learning.model.MODELS has one entry for each; a test ties the two).
ModelName = Literal["auto", "rules", "river", "off"]
UpstreamTransport = Literal["http1", "aiohttp", "httpx"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
#: What edge's client socket is: the shopper's own TCP connection, or a load balancer's (edge.pipeline.client_rtt).
ClientSocket = Literal["direct", "behind-proxy"]
#: How the kernel schedules edge's processes (edge.runtime.cpu_policy).
CpuPolicy = Literal["normal", "batch"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything edge can be told, in one place.

    ``fail_mode="open"`` (production) serves the original response when
    adaptation fails and counts it; ``"closed"`` (tests) raises instead.
    """

    upstream: str = "http://127.0.0.1:8081"
    host: str = "127.0.0.1"
    port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9090
    policy: Path = DEFAULT_POLICY
    # Upstream timeouts (seconds). read_timeout bounds a slow storefront: past it the shopper gets a 504.
    connect_timeout: float = 2.0
    read_timeout: float = 15.0
    # Connections kept to the storefront, and how long a request waits for one (503 after: the pool is full).
    pool_size: int = 256
    pool_timeout: float = 10.0
    # Client limits (docs/operations.md, "Limits and timeouts"). A request head must arrive within
    # header_timeout s of the connection (or its first byte); idle keep-alive connections close after
    # keepalive_timeout s; a request body may pause at most body_timeout s between reads (408 after).
    header_timeout: float = 20.0
    keepalive_timeout: float = 15.0
    body_timeout: float = 30.0
    # Client connections per process; past it the oldest ones that run no request are closed.
    max_connections: int = 4096
    # Request head bounds: the request line (414), one field, the number of fields, the whole head (431).
    max_request_line: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100
    max_head_bytes: int = 65536
    # Request bodies up to this size are read whole before the storefront is asked (a slow upload then
    # holds no upstream connection, and an incomplete one never reaches it); larger ones stream, at most
    # max_streaming_uploads at a time (0: a quarter of pool_size).
    request_buffer_bytes: int = 65536
    max_streaming_uploads: int = 0
    # What carries requests to the storefront under httpx's API (edge.transport.upstream): http1 (edge.transport.http1), aiohttp or httpx.
    upstream_transport: UpstreamTransport = "http1"
    # Serve a GET page at the full tier without the ASGI layers (edge.runtime.fast_path): the same bytes, less
    # CPU. Only over http1 and with fail_mode open; off: every request takes the ASGI path.
    fast_path: bool = True
    # Addresses of load balancers whose X-Forwarded-For/-Proto edge trusts (comma-separated, "*" for
    # any). Empty: edge is the first hop and the peer address is the client (the sidecar default).
    forwarded_allow_ips: str = ""
    # The shopper's round trip as the server sees it (edge.pipeline.client_rtt, docs/operations.md
    # "Server-side round-trip time"): "direct" reads the kernel's TCP_INFO of the client socket (edge ends
    # the shopper's TCP connection); "behind-proxy" reads client_rtt_header (microseconds, nginx's
    # $tcpinfo_rtt), believed only from forwarded_allow_ips, since the socket is then the balancer's.
    client_socket: ClientSocket = "direct"
    client_rtt_header: str = "x-client-rtt"
    # Forward the client's Host header (True, the default: a sidecar is the storefront's front door, so the
    # storefront sees the host the browser used, and its CSRF/Origin checks pass, as behind Envoy) or send
    # the upstream's own (False, like nginx's default ``proxy_set_header Host $proxy_host``).
    preserve_host: bool = True
    # Bodies larger than this are streamed through unmodified rather than buffered for rewriting.
    max_rewrite_bytes: int = 2 * 1024 * 1024
    # Lite/minimal layouts kept for pages the storefront serves again byte for byte (pages plus
    # layouts, LRU; edge.pipeline.rewrite.cache). 0: lay out every page.
    rewrite_cache_bytes: int = 8 * 1024 * 1024
    # Per-cell statistics: how many cells are remembered and how fast old evidence fades.
    max_cells: int = 50_000
    # Feedback nonces remembered against replays (each ~100 bytes); when full of unexpired nonces,
    # new feedback is refused as "overloaded" rather than forgotten.
    max_replay_entries: int = 100_000
    cell_half_life_s: float = 300.0
    # Feedback: HMAC key for tokens, cookies and checkpoints (any text of at least 16 bytes). Unset: a random key per
    # process, fine for one sidecar and the demo, but tokens then die with the process.
    feedback_key: str = ""
    feedback_key_previous: str = ""  # still accepted while rotating keys
    feedback_ttl_s: float = 600.0
    # A stable tier per client (edge.pipeline.policy.stability, docs/policies.md "A stable tier"): a
    # predicted switch needs p to clear the threshold by tier_margin in log-odds (0.5: p 0.38-0.62
    # around a 0.5 threshold), unless the client's tier was chosen tier_dwell_s or more ago. 0: off.
    tier_margin: float = 0.5
    tier_dwell_s: float = 600.0
    # Which model decides: "auto" (rules until the learned model earns trust), "rules", "off".
    model: ModelName = "auto"
    # Where the learned model is checkpointed (empty: no checkpoints).
    checkpoint: str = ""
    checkpoint_interval_s: float = 60.0
    # Seconds SIGTERM waits for in-flight requests before closing (Kubernetes' grace period must be longer).
    graceful_timeout: float = 20.0
    # Bearer token for the admin port's POST endpoints (policy reload); empty: no token asked.
    admin_token: str = ""
    fail_mode: FailMode = "open"
    log_level: LogLevel = "info"
    # Worker processes sharing the ports (edge.runtime.workers); 1 per sidecar is the default: scale by pods.
    workers: int = 1
    # How the kernel schedules edge's processes (edge.runtime.cpu_policy, docs/performance.md): "normal", or
    # "batch" (Linux SCHED_BATCH: a waking worker does not preempt the storefront on a shared, saturated CPU).
    cpu_policy: CpuPolicy = "normal"
    # A fleet of sidecars learning as one (edge.state, docs/operations.md "A fleet on Redis"): a redis:// or
    # rediss:// URL (password and db in the URL). Empty: this process learns alone, nothing to install.
    state: str = ""
    # Prefix of every key edge writes, so several shops can share one Redis.
    state_prefix: str = "edge:"
    # Labels waiting for Redis (kept while it is slow or down); past it the oldest are dropped and counted.
    state_outbox_max: int = 10_000
    # Entries kept in the fleet's label stream (XADD MAXLEN ~): what a learner that was away can catch up on.
    state_stream_max: int = 100_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``EDGE_<NAME>`` variables, then apply non-``None`` overrides."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f"EDGE_{f.name.upper()}"
            if overrides.get(f.name) is not None:
                values[f.name] = _cast(f"--{f.name.replace('_', '-')}", overrides[f.name], hints[f.name])
            elif key in environ:
                values[f.name] = _cast(key, environ[key], hints[f.name])
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        settings = cls(**values)
        if settings.state:
            scheme = settings.state.split("://", 1)[0].lower() if "://" in settings.state else ""
            if scheme not in ("redis", "rediss", "unix"):
                raise SettingsError(f"EDGE_STATE: {settings.state!r} is not a redis://, rediss:// or unix:// URL")
            if not settings.feedback_key:
                raise SettingsError("EDGE_STATE: a fleet needs EDGE_FEEDBACK_KEY (the same on every sidecar and the learner)")
        for name in ("feedback_key", "feedback_key_previous"):
            key = getattr(settings, name)
            if key and len(key.encode()) < 16:
                raise SettingsError(f"EDGE_{name.upper()}: must be at least 16 bytes (got {len(key.encode())})")
        return settings

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (values are cast like env values)."""
        hints = get_type_hints(type(self))
        return dataclasses.replace(self, **{k: _cast(k, v, hints[k]) for k, v in changes.items()})


def _cast(key: str, raw: Any, kind: Any) -> Any:
    choices = get_args(kind) if getattr(kind, "__origin__", None) is Literal else ()
    try:
        if choices:
            if raw not in choices:
                raise ValueError
            return raw
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in {"1", "true", "yes", "on"}:
                return True
            if str(raw).lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if kind is Path:
            return Path(raw)
        value = kind(raw)
        if kind in (int, float) and value < 0:
            raise ValueError
        return value
    except (TypeError, ValueError):
        expected = " or ".join(map(repr, choices)) if choices else f"a valid {getattr(kind, '__name__', kind)}"
        raise SettingsError(f"{key}: {raw!r} is not {expected}") from None
