"""Stage 3's decider: which candidate serves, judged on the latest labels, and the safety envelope.

:class:`ChampionChallenger` (``--model auto``) scores every candidate of :data:`CANDIDATES` on each
label (the rules of :mod:`~edge.learning.model.rules`, the River model of
:mod:`~edge.learning.model.river`, and the fixed predictors of :data:`FIXED_CANDIDATES`,
:mod:`~edge.learning.model.candidates`), elects the
champion by the switching rule of its docstring, caps the tier by :func:`fast_evidence` (the safety
envelope), and checkpoints itself (:mod:`~edge.learning.model.checkpoints`).
"""

from __future__ import annotations

import math
import os
from collections import Counter, deque
from typing import Any

from river import drift

from edge.core.metrics import MODEL_CHAMPION, MODEL_DRIFTS, MODEL_LOG_LOSS, MODEL_ROC_AUC
from edge.learning.calibration import ConfidenceCalibrator
from edge.learning.evaluation import auc_standard_error
from edge.learning.fading import FadingEvaluation
from edge.learning.model.candidates import (
    ENVELOPE_MAX_P,
    FIXED_CANDIDATES,
    cell_share_p,
    client_average_p,
    fast_evidence,
    last_request_p,
    support_signature,
)
from edge.learning.model.checkpoints import checkpoint_bytes, read_checkpoint, write_checkpoint
from edge.learning.model.judging import candidate_predictions
from edge.learning.model.river import RiverModel
from edge.learning.model.rules import NetworkModel, RuleModel
from edge.learning.stacker import Stacker
from edge.pipeline.features import Features

__all__ = ["ChampionChallenger", "CANDIDATES", "DEFAULT_CANDIDATES"]

#: The switching rule (ChampionChallenger): no election before the window holds this many labels …
ELECTION_MIN_LABELS = 100
#: … with at least this many of each class …
ELECTION_MIN_CLASS_LABELS = 20
#: … and a challenger must beat the champion's rolling ROC-AUC by more than this.
ELECTION_MARGIN = 0.02
#: A champion other than the rules is demoted once its rolling ROC-AUC falls this far below the rules'.
DEMOTION_MARGIN = 0.01
#: A candidate can be elected only when the evaluation window's labels come from at least this many
#: distinct clients (edge.learning.trust.client_group) ...
ELECTION_MIN_CLIENTS = 10
#: ... and no client (nor the labels whose claims contradict what edge observed) is more than this share of them.
ELECTION_MAX_CLIENT_SHARE = 0.2
#: Every candidate the champion/challenger can score and elect; ``rules`` is the default champion.
CANDIDATES = ("model", "rules", *FIXED_CANDIDATES, "stacker")
#: The candidates ``--model auto`` scores and elects by default. The client average and the cell share
#: are left out by measurement: electable on the video traces, they added switches and cost 0.01–0.04
#: ROC-AUC (docs/learning.md; re-measured with the fading evaluation and calibrated candidates: still
#: 0.003–0.020 worse on video page views); they remain replay baselines.
#: ``stacker`` (:mod:`edge.learning.stacker`) combines all five on one learned scale instead.
DEFAULT_CANDIDATES = ("model", "rules", "last_request", "stacker")
#: The stacker can be elected only once it has learned this many labels (since it started or was
#: started afresh), as a calibrator settles on its first 300: an election before that picked it on
#: the video traces while the River model was still cold, and the model overtook it within the
#: election margin (0.003–0.005 lost on two of four seeds; docs/learning.md).
STACKER_MIN_LABELS = 300
#: The novelty trigger (ChampionChallenger's "support"): a learned champion's memory was built on
#: other kinds of inputs once more than this share of the latest labels (faded over ``min_labels``
#: labels) carry a signature (:func:`support_signature`) it was elected without.
NOVEL_SHARE = 0.5


class ChampionChallenger:
    """Serve the best of several candidates, judged on the latest labels; the rules until one has earned it.

    The candidates (:data:`CANDIDATES`): the rule baseline, the River model, the fixed
    predictors edge can compute from the request alone (:data:`FIXED_CANDIDATES`: the last
    request's throughput, the client's smoothed throughput, the cell's degraded share), and the
    learned stacker (:mod:`edge.learning.stacker`), an online logistic regression over all five's
    log-odds. By default (:data:`DEFAULT_CANDIDATES`) the client average and the cell share are
    not electable alone, only through the stacker.

    ``learn(x, degraded)`` is predict-then-learn: every candidate predicts ``x`` first, each
    prediction is calibrated as it would be served (:mod:`edge.learning.calibration`: a slope
    learned on the first labels, then kept), the calibrated predictions go into a
    :class:`~edge.learning.fading.FadingEvaluation` (every label weighs less by half each
    ``half_life`` labels, 2 × ``window`` by default; a ``None`` — no opinion — is scored as 0.5
    there, for evaluation only), then the River model and the calibrators learn and ADWIN watches
    the model's absolute error for drift. ``observe(x, degraded)`` does the same without learning.

    **The switching rule**, applied at each AUC refresh (every ``every`` labels), on the faded
    ROC-AUCs (all candidates scored on the same labels; counts below are effective, faded counts):

    1. no change before the window holds ``min_labels`` labels with at least ``min_class_labels``
       of each class (an AUC from a handful of positives is noise);
    2. a champion other than the rules is demoted to the rules as soon as its AUC falls more than
       ``demotion_margin`` below the rules' (at once: the rules are the safe default);
    3. the candidate with the best AUC replaces the champion only if it beats the champion's AUC
       by more than ``margin`` — or more than the noise of the two AUCs on the window's labels
       (Hanley–McNeil standard errors, combined), when that is larger — and only when the window's
       labels come from diverse senders (below). The stacker is a challenger only once it has
       learned ``stacker_min_labels`` labels (:data:`STACKER_MIN_LABELS`).

    Going from A to B needs B > A + margin and back needs A > B + margin: two candidates within
    the margin of each other never flap. ``predict`` returns the champion's calibrated p; a champion
    without an opinion on ``x`` (a cold start for the throughput candidates) leaves it to the rules.

    **The support check**: what a learned candidate knows comes from the inputs it learned, and
    two networks' inputs can carry different feature groups (:func:`support_signature`: the last
    request, cell statistics, radio figures, browser hints, the server's TCP view). ``support``
    counts the labels learned per signature. (1) The River model, as champion, serves only inputs
    whose signature it has learned at least one label of; any other input gets the rules' p (a
    model trained on one network's cell and radio columns never serves a throughput-only request
    from another before it has learned one; a frozen model gains no support). (2) A champion other
    than the rules remembers the signatures learned when it was elected; once more than
    :data:`NOVEL_SHARE` of the latest learned labels (faded over ``min_labels``) carry another
    signature, the traffic is of another kind: the guard's memory starts afresh and the rules
    decide until the new labels elect a candidate, as at a frozen start (:meth:`observe`). Rare
    unusual inputs never reach the share; a whole new network does within ~70 labels.

    Labels from the feedback loop say who sent them (``learn(x, y, client=...)``, see
    :mod:`edge.learning.trust`) and whether their claims were consistent with what edge observed
    (``trusted``). A candidate is elected only when the window's attributed labels come from
    at least ``min_clients`` distinct clients, none of them (nor the untrusted labels together) more
    than ``max_client_share`` of them: a burst of labels from a few clients cannot elect one, however
    well it fits them. Labels without a client (the offline ``edge replay``, tests) are not counted.
    The **safety envelope**: while a candidate other than the rules decides, a request with strong,
    fresh evidence of a fast network (:func:`fast_evidence`) is never served the minimal page:
    :meth:`tier_ceiling` says ``"lite"`` and the policy's decision honours it. The envelope caps the
    tier, not p, so p still ranks requests as the candidate scored them (a clipped p would tie them all).

    >>> cc = ChampionChallenger(min_labels=50, window=100, every=10, export_metrics=False)
    >>> cc.source
    'rules'
    >>> for i in range(60):   # the rules cannot tell these apart; the model can
    ...     cc.learn({"radio": "lte", "cqi": 3.0}, True)
    ...     cc.learn({"radio": "lte", "cqi": 14.0}, False)
    >>> cc.source, cc.snapshot()["labels"]
    ('model', 120)
    """

    def __init__(
        self,
        model: RiverModel | None = None,
        rules: NetworkModel | None = None,
        *,
        min_labels: int = ELECTION_MIN_LABELS,
        min_class_labels: int = ELECTION_MIN_CLASS_LABELS,
        margin: float = ELECTION_MARGIN,
        demotion_margin: float = DEMOTION_MARGIN,
        window: int = 1000,
        every: int = 25,
        half_life: float | None = None,
        drift_delta: float = 0.002,
        export_metrics: bool = True,
        min_clients: int = ELECTION_MIN_CLIENTS,
        max_client_share: float = ELECTION_MAX_CLIENT_SHARE,
        envelope_p: float = ENVELOPE_MAX_P,
        candidates: tuple[str, ...] = DEFAULT_CANDIDATES,
    ) -> None:
        unknown = [c for c in candidates if c not in CANDIDATES]
        if unknown or "rules" not in candidates:
            raise ValueError(f"candidates must include 'rules' and come from {CANDIDATES}, got {candidates}")
        # No prior by default: measured, a prior trained without the evaluation set cost the video
        # traces 0.013–0.022 ROC-AUC (docs/model-card.md); RiverModel(prior=DEFAULT_PRIOR) starts from one.
        self.model = model if model is not None else RiverModel()
        self.rules = rules if rules is not None else RuleModel()
        self.min_labels = min_labels
        self.min_class_labels = min_class_labels
        self.margin = margin
        self.demotion_margin = demotion_margin
        self.evaluation = FadingEvaluation(candidates, half_life=half_life or 2.0 * window, every=every)
        self.drift = drift.ADWIN(delta=drift_delta)
        self.drifts = 0
        self.export_metrics = export_metrics
        self._champion = "rules"
        self.switches = 0
        self.extra: dict[str, Any] = {}
        self.min_clients = min_clients
        self.max_client_share = max_client_share
        self.envelope_p = envelope_p
        self._window = window
        self._senders: deque[str | None] = deque()  # per label in the window: its client, "" if untrusted, None if unattributed
        self._sender_counts: Counter[str] = Counter()
        self.calibrators = {name: ConfidenceCalibrator() for name in CANDIDATES}
        self.stacker = Stacker()
        self.support: dict[int, int] | None = {}  # labels the River model learned, per support_signature
        self._export()

    # Checkpoints written before the election looked at senders (or at more candidates) restore with
    # these; their evaluation window keeps the two candidates it had (model and rules).
    min_clients = ELECTION_MIN_CLIENTS
    max_client_share = ELECTION_MAX_CLIENT_SHARE
    envelope_p = ENVELOPE_MAX_P
    min_class_labels = 0
    demotion_margin = 0.0
    switches = 0
    _window = 1000
    _senders: deque[str | None] | None = None
    calibrators: dict[str, ConfidenceCalibrator] | None = None
    _sender_counts: Counter[str] | None = None
    _observing = False  # the last label was observed, not learned (a frozen deployment: observe)
    _learned_since_forget = 0  # labels learned since the guard's memory last started afresh
    stacker_min_labels = STACKER_MIN_LABELS
    stacker: Stacker | None = None  # checkpoints from before the stacker: it is not among their candidates
    support: dict[int, int] | None = None  # checkpoints from before the support check: no check
    _champion_support: frozenset[int] | None = None  # the signatures learned when the champion was elected
    _novel_share = 0.0  # faded share of the latest learned labels with a signature outside _champion_support

    # -- NetworkModel ----------------------------------------------------------------------
    @property
    def source(self) -> str:
        """Which candidate decides now: ``"rules"``, ``"model"`` or one of :data:`FIXED_CANDIDATES`."""
        return self._champion

    def predict(self, x: Features) -> float | None:
        champion = self._champion
        calibrators = self.calibrators or self._calibrators()  # the method only for a checkpoint from before calibration
        if champion == "model":  # first: per request while the River model is in force (the video traces)
            support = self.support
            if support is None or support_signature(x) in support:  # never an input unlike any it learned
                p = self.model.predict(x)
                if p is not None:
                    return calibrators["model"](p)
        elif champion == "stacker":
            stacker = self.stacker
            if stacker is not None:
                return stacker.predict(self._stacker_inputs(x, self.model.predict(x), self.rules.predict(x)))
        elif champion != "rules":
            p = FIXED_CANDIDATES[champion](x)
            if p is not None:
                return calibrators[champion](p)
        return calibrators["rules"](self.rules.predict(x))

    def source_for(self, x: Features) -> str:
        """Which candidate :meth:`predict` serves ``x`` from: :attr:`source`, or ``"rules"`` when the
        support check passes ``x`` to them (``edge replay``'s ``decided_by``)."""
        champion = self._champion
        if champion == "model" and self.support is not None and support_signature(x) not in self.support:
            return "rules"
        return champion

    @staticmethod
    def _stacker_inputs(x: Features, p_model: float | None, p_rules: float | None) -> dict[str, float | None]:
        """The stacker's inputs: every candidate's raw (uncalibrated) p for ``x``."""
        return {
            "rules": p_rules,
            "model": p_model,
            "last_request": last_request_p(x),
            "client_average": client_average_p(x),
            "cell_share": cell_share_p(x),
        }

    def _calibrators(self) -> dict[str, ConfidenceCalibrator]:
        calibrators = self.calibrators
        if calibrators is None:  # a checkpoint from before calibration: start from the identity
            calibrators = self.calibrators = {name: ConfidenceCalibrator() for name in CANDIDATES}
        return calibrators

    def tier_ceiling(self, x: Features) -> str | None:
        """The richest tier ``x`` may be served, by the safety envelope: ``"lite"`` (never minimal) while a
        learned candidate decides and ``x`` carries strong, fresh evidence of a fast network; else None.

        >>> cc = ChampionChallenger(export_metrics=False)
        >>> cc._champion = "model"
        >>> cc.tier_ceiling({"ect": "4g"}), cc.tier_ceiling({"ect": "2g"})
        ('lite', None)
        """
        if self._champion != "rules" and fast_evidence(x):
            return "lite"
        return None

    def learn(self, x: Features, degraded: bool, client: str | None = None, trusted: bool = True) -> None:
        """Predict-then-learn one label; ``client`` sent it, ``trusted``: its claims were consistent."""
        self._observing = False
        self._learned_since_forget += 1
        self._judge(x, degraded, client, trusted, True)

    def observe(self, x: Features, degraded: bool) -> None:
        """Judge the candidates on one label without learning from it: the River model and the
        calibrators stay as they are, the evaluation and the switching rule go on (``edge replay
        --train/--eval``'s frozen pass: frozen learners, a live guard; a frozen model that ranks a new
        network badly is still demoted to the rules, and a frozen candidate that ranks it better than
        the champion is elected).

        **A frozen deployment judges on its own labels.** The first ``observe`` after at least
        ``min_labels`` learned labels starts the guard's memory afresh
        (:meth:`~edge.learning.fading.FadingEvaluation.forget`): the frozen candidates were trained
        where they learned, and what the guard must tell is how they rank *here*. With no evidence
        left, the rules decide (as at a cold start) until the new labels elect a candidate by the
        usual switching rule (``min_labels``, the margin or the noise of two AUCs).

        **The stacker goes on learning when observing**, by definition: it is part of the guard
        (which candidate to trust how much on this network), like the evaluation, not one of the
        frozen learners. At the frozen start it starts afresh with the memory (the rules' p, no
        weight on anything else), learns the new network's labels, and is elected by the same
        switching rule once it has learned ``stacker_min_labels`` of them. A deployed edge that
        serves a frozen River model (a prior, no online learning) behaves the same: its guard and
        stacker live on the labels it receives. Measured
        (docs/learning.md, both directions, page views seeds 0–3 and stream): trained on the video
        set and frozen on the Norway set, the deployed decision went from 0.793–0.823 to
        0.818–0.826 (last_request 0.816–0.824), the stream from 0.960 to 0.9775 (last_request 0.9781: the
        requests before the first label are still the trained champion's); Norway → video from
        0.647–0.663 to 0.674–0.700 (the frozen River model elected)."""
        if not self._observing:
            self._observing = True
            if self._learned_since_forget >= self.min_labels:
                self.evaluation.forget()
                self._learned_since_forget = 0
                if self.stacker is not None:  # the stacker too learns this network from its own labels
                    self.stacker = Stacker(self.stacker.lr)
                if self._champion != "rules":
                    self._champion = "rules"
                    self.switches += 1
                    self._export()
        self._judge(x, degraded, None, True, False)

    def _judge(self, x: Features, degraded: bool, client: str | None, trusted: bool, learn: bool) -> None:
        senders = self._senders
        if client is None and senders is not None and len(senders) >= self._window and senders[0] is None:
            senders.append(None)  # _track_sender(None), inline: an unattributed label replaces another
            senders.popleft()
        else:
            self._track_sender(None if client is None else (client if trusted else ""))
        y = bool(degraded)
        rules, model = self.rules, self.model
        p_rules = rules.predict(x)
        # The River model predicts x, then learns it (one feature pass: RiverModel.predict_then_learn);
        # the evaluation gets its prediction from before it learned. Its EdgeFeatures reads the rules'
        # p as a feature: when these rules are those (RuleModel), it is given, not computed again.
        if not learn:
            p_model = model.predict(x)
        elif type(rules) is RuleModel and type(model) is RiverModel:
            p_model = model.predict_then_learn(x, y, p_rules)
        else:
            p_model = model.predict_then_learn(x, y)
        if learn:
            support = self.support
            if support is not None:  # None: a checkpoint from before the support check (no check)
                signature = support_signature(x)
                support[signature] = support.get(signature, 0) + 1
                elected_with = self._champion_support
                if self._champion != "rules" and elected_with is not None:
                    share = self._novel_share
                    share += ((signature not in elected_with) - share) / self.min_labels
                    self._novel_share = share
                    if share > NOVEL_SHARE:  # another kind of traffic: judge afresh, from the rules
                        self.evaluation.forget()
                        self._learned_since_forget = 0
                        self._champion = "rules"
                        self.switches += 1
                        self._novel_share = 0.0
                        self._export()
        # Each candidate is judged as it would be served: calibrated (edge.learning.calibration),
        # by its calibrator as it stood before this label; then the calibrator learns the label.
        # (The stacker learns every label, observed ones too: it is part of the guard, how much to trust
        # which candidate here, not one of the frozen learners; observe's docstring.) In the evaluation's order:
        predictions = candidate_predictions(self, x, y, learn, p_rules, p_model, self.calibrators or self._calibrators())
        ev = self.evaluation  # a RollingEvaluation in checkpoints from before the fading one: its dict call
        refreshed = ev.update_values(y, predictions) if type(ev) is FadingEvaluation else ev.update(y, dict(zip(ev.models, predictions)))
        if p_model is not None:
            self.drift.update(abs(float(y) - p_model))
            if self.drift.drift_detected:
                self.drifts += 1
                if self.export_metrics:
                    MODEL_DRIFTS.inc()
        if refreshed:
            self._elect()
            self._export()

    def learn_from(self, x: Features, degraded: bool, client: str | None, trusted: bool) -> None:
        """:meth:`learn` for a label from the feedback loop (edge.learning.feedback): who sent it, whether it was plausible."""
        self.learn(x, degraded, client, trusted)

    # -- champion election -----------------------------------------------------------------
    def _track_sender(self, sender: str | None) -> None:
        if self._senders is None or self._sender_counts is None:
            self._senders, self._sender_counts = deque(), Counter()
        senders, counts = self._senders, self._sender_counts
        senders.append(sender)
        if sender is not None:
            counts[sender] += 1
        if len(senders) > self._window:
            old = senders.popleft()
            if old is not None:
                left = counts[old] - 1
                if left:
                    counts[old] = left
                else:
                    del counts[old]

    def senders_diverse(self) -> bool:
        """Whether the window's attributed labels come from enough clients for an election (see class doc)."""
        counts = self._sender_counts
        if not counts:
            return True  # no attributed labels: offline replay or tests
        total = sum(counts.values())
        clients = len(counts) - (1 if "" in counts else 0)
        return clients >= self.min_clients and max(counts.values()) <= self.max_client_share * total

    def _elect(self) -> None:
        """The switching rule of the class docstring, on the AUCs just refreshed."""
        ev = self.evaluation
        n, positives = ev.in_window, ev.window_positives
        if n < self.min_labels or min(positives, n - positives) < self.min_class_labels:
            return
        aucs = {m: ev.roc_auc(m) for m in ev.models}
        champion = self._champion
        rules_auc = aucs.get("rules")
        if rules_auc is None:
            return
        current = aucs.get(champion)
        if champion != "rules" and (current is None or current < rules_auc - self.demotion_margin):
            champion, current = "rules", rules_auc  # demoted at once
        stacker = self.stacker
        unready = "stacker" if stacker is None or stacker.labels < self.stacker_min_labels else None
        challengers = [(auc, m) for m, auc in aucs.items() if m != champion and m != unready and auc is not None]
        if challengers:
            best_auc, best = max(challengers)
            # The margin, or the noise of two AUCs on this many labels if that is larger (Hanley–McNeil).
            noise = self._noise(best_auc, current, positives, n)  # type: ignore[arg-type]
            if best_auc > current + max(self.margin, noise) and self.senders_diverse():  # type: ignore[operator]
                champion = best
        if champion != self._champion:
            self._champion = champion
            self.switches += 1
            support = self.support
            self._champion_support = None if support is None else frozenset(support)
            self._novel_share = 0.0

    @staticmethod
    def _noise(auc_a: float, auc_b: float, positives: int, n: int) -> float:
        """The noise of the difference of two AUCs on ``n`` labels with ``positives`` degraded (Hanley–McNeil, combined)."""
        return math.hypot(auc_standard_error(auc_a, positives, n - positives), auc_standard_error(auc_b, positives, n - positives))

    def _export(self) -> None:
        if not self.export_metrics:
            return
        for name in self.evaluation.models:
            auc = self.evaluation.roc_auc(name)
            loss = self.evaluation.log_loss(name)
            MODEL_ROC_AUC.labels(name).set(auc if auc is not None else float("nan"))
            MODEL_LOG_LOSS.labels(name).set(loss if loss is not None else float("nan"))
            MODEL_CHAMPION.labels(name).set(1.0 if name == self._champion else 0.0)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary for ``GET /admin/model``."""
        ev = self.evaluation

        def _round(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "champion": self._champion,
            "estimator": self.model.estimator,
            "labels": ev.labels,
            "positives": ev.positives,
            "positive_rate": _round(ev.positive_rate),
            "window": ev.in_window,
            "min_labels": self.min_labels,
            "margin": self.margin,
            "roc_auc": {m: _round(ev.roc_auc(m)) for m in ev.models},
            "log_loss": {m: _round(ev.log_loss(m)) for m in ev.models},
            "drifts": self.drifts,
            "switches": self.switches,
            "candidates": list(ev.models),
            "prior": getattr(self.model, "prior", None),
            "window_clients": len([k for k in (self._sender_counts or {}) if k]),
        }

    # -- checkpoints (the file format: edge.learning.model.checkpoints) --------------------
    def save(self, path: str | os.PathLike[str], *, key: bytes | None = None) -> None:
        """Write a checkpoint atomically (temp file in the same directory, fsync, rename).

        The file is a magic line, a JSON header (format version, River series, digest) and a
        pickle of this object (River model, evaluation state, ADWIN and ``self.extra``, where
        the caller may put e.g. its TowerTable). With ``key`` the digest is an HMAC-SHA256, so
        :meth:`load` (given the same key) never unpickles a file someone else wrote; without
        it, a SHA-256 checksum that catches corruption only.
        """
        write_checkpoint(self, path, kind=_CHECKPOINT_KIND, key=key)

    def checkpoint_bytes(self, *, key: bytes | None = None) -> bytes:
        """What :meth:`save` writes, as bytes (see :class:`~edge.learning.model.rules.Checkpointed`)."""
        return checkpoint_bytes(self, kind=_CHECKPOINT_KIND, key=key)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, key: bytes | None = None) -> ChampionChallenger:
        """Restore a checkpoint written by :meth:`save`; :class:`~edge.learning.model.checkpoints.CheckpointError`
        (naming the file) if it can't.

        The digest is verified before anything is unpickled. A file written with a key needs
        the key; a keyless file is refused when a key is given (it could have been forged).
        """
        obj = read_checkpoint(path, cls, kind=_CHECKPOINT_KIND, key=key)
        obj._export()
        return obj


#: The header's ``kind`` of a champion/challenger checkpoint.
_CHECKPOINT_KIND = "champion-challenger"
