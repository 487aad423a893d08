"""Stage 3: predict p(degraded) for a request. One module per part, each name re-exported here:

- ``rules``: the :class:`NetworkModel` protocol and the optional abilities a model may have
  (:class:`Checkpointed`/:class:`Restorable`, :class:`Snapshotting`, :class:`Enveloped` and
  :func:`tier_ceiling_of`), Chromium's
  effective-connection-type table (:func:`ect_class`), the published-thresholds :class:`RuleModel`
  and the :class:`NullModel` (``--model off``);
- ``river``: the online learner, :class:`EdgeFeatures` → :func:`make_pipeline` → :class:`RiverModel`;
- ``candidates``: what the decider uses that learns nothing: the fixed predictors
  (:data:`FIXED_CANDIDATES`), the safety envelope's evidence (:func:`fast_evidence`) and the support
  signature (:func:`support_signature`);
- ``champion``: :class:`ChampionChallenger` (``--model auto``): the candidates' judging, the election,
  the support check and the envelope's tier cap;
- ``checkpoints``: the checkpoint file (header, digest, atomic write) and :class:`CheckpointError`.

:data:`MODELS` names the choices of ``--model``. See ``docs/learning.md`` for why the model is what it is.
"""

from __future__ import annotations

from edge.learning.model.candidates import (
    CANDIDATE_THRESHOLD_KBPS,
    ENVELOPE_FAST_KBPS,
    ENVELOPE_FRESH_S,
    ENVELOPE_MAX_P,
    FIXED_CANDIDATES,
    cell_share_p,
    client_average_p,
    fast_evidence,
    last_request_p,
    support_signature,
)
from edge.learning.model.champion import (
    CANDIDATES,
    DEFAULT_CANDIDATES,
    DEMOTION_MARGIN,
    ELECTION_MARGIN,
    ELECTION_MAX_CLIENT_SHARE,
    ELECTION_MIN_CLASS_LABELS,
    ELECTION_MIN_CLIENTS,
    ELECTION_MIN_LABELS,
    ChampionChallenger,
)
from edge.learning.model.checkpoints import CHECKPOINT_FORMAT, CheckpointError
from edge.learning.model.river import (
    ESTIMATORS,
    FRESHNESS_HALF_LIFE_S,
    LAST_KBPS_BANDS,
    RADIO_BANDS,
    VOCABULARIES,
    EdgeFeatures,
    RiverModel,
    make_pipeline,
)
from edge.learning.model.rules import (
    CELL_FULL_WEIGHT_SAMPLES,
    ECT_DEGRADED_P,
    SLOW_REQUEST_MS,
    SLOW_RTT_MS,
    Checkpointed,
    Enveloped,
    NetworkModel,
    NullModel,
    Observing,
    Restorable,
    RuleModel,
    Snapshotting,
    ect_class,
    tier_ceiling_of,
)
from edge.learning.prior import DEFAULT_PRIOR, PriorError

__all__ = [
    "NetworkModel",
    "Checkpointed",
    "Restorable",
    "Snapshotting",
    "Enveloped",
    "Observing",
    "tier_ceiling_of",
    "RuleModel",
    "NullModel",
    "RiverModel",
    "ChampionChallenger",
    "EdgeFeatures",
    "CheckpointError",
    "PriorError",
    "DEFAULT_PRIOR",
    "CANDIDATES",
    "FIXED_CANDIDATES",
    "DEFAULT_CANDIDATES",
    "make_pipeline",
    "ESTIMATORS",
    "MODELS",
    "ect_class",
    "ECT_DEGRADED_P",
    "fast_evidence",
    "support_signature",
    # Tunables and the fixed candidates, importable here as before the split (docs/feedback.md names some).
    "CANDIDATE_THRESHOLD_KBPS",
    "CELL_FULL_WEIGHT_SAMPLES",
    "CHECKPOINT_FORMAT",
    "DEMOTION_MARGIN",
    "ELECTION_MARGIN",
    "ELECTION_MAX_CLIENT_SHARE",
    "ELECTION_MIN_CLASS_LABELS",
    "ELECTION_MIN_CLIENTS",
    "ELECTION_MIN_LABELS",
    "ENVELOPE_FAST_KBPS",
    "ENVELOPE_FRESH_S",
    "ENVELOPE_MAX_P",
    "FRESHNESS_HALF_LIFE_S",
    "LAST_KBPS_BANDS",
    "RADIO_BANDS",
    "SLOW_REQUEST_MS",
    "SLOW_RTT_MS",
    "VOCABULARIES",
    "cell_share_p",
    "client_average_p",
    "last_request_p",
]

#: Model choices by name (``--model``).
MODELS: dict[str, type] = {"rules": RuleModel, "off": NullModel, "river": RiverModel, "auto": ChampionChallenger}
