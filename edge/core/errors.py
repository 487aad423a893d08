"""Exceptions raised by edge.

    EdgeError
    ├── SettingsError   a setting or flag has a bad value
    ├── PolicyError     a policy file is malformed (names file, key and problem)
    ├── UpstreamError   the storefront could not be reached or answered badly
    │   └── UpstreamStreamBroken  its body broke off after the response had started
    └── AdaptError      adapting a response failed (raised only with fail_mode="closed")

Defined next to the code that raises them, and under EdgeError too: ``RewriteError``
(edge.pipeline.rewrite.errors), ``FeedbackRejected`` (edge.learning.feedback), and these four, which
are ``ValueError`` as well: ``CheckpointError`` (edge.learning.model.checkpoints), ``PriorError``
(edge.learning.prior), ``TraceFormatError`` (edge.offline.traces), ``DecodeFailed`` (edge.transport.encoding).
"""

from __future__ import annotations

__all__ = ["EdgeError", "SettingsError", "PolicyError", "UpstreamError", "UpstreamStreamBroken", "AdaptError"]


class EdgeError(Exception):
    """Base class of every error edge raises on purpose."""


class SettingsError(EdgeError, ValueError):
    """A setting, environment variable or CLI flag has a value edge cannot use."""


class PolicyError(EdgeError, ValueError):
    """A policy file is malformed; the message names the file, the key path and the problem."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(f"{where}{problem}")


class UpstreamError(EdgeError):
    """The storefront was unreachable, reset the connection or timed out.

    Before the response starts, the proxy answers 502/504 instead of raising.
    """


class UpstreamStreamBroken(UpstreamError):
    """The storefront's body broke off after the response had started: the connection is aborted.

    ``timed_out``: it stalled past the read timeout (504 where an answer is still possible), else it
    closed or sent garbage (502).
    """

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class AdaptError(EdgeError):
    """A stage of adaptation failed; ``stage`` says which (signals, predict, decide, rewrite)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        super().__init__(f"adaptation failed at stage {stage!r}: {cause!r}")
