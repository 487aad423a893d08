"""Per-cell congestion statistics, learned online from every client on the cell.

A cell tower's state changes by the minute (a train arrives, a stadium empties),
so each cell keeps *time-decayed* sums: evidence loses half its weight every
``half_life_s`` seconds. The table is bounded: past ``max_cells`` the least
recently updated cell is evicted, so a flood of random cell ids cannot grow memory.

Example::

    >>> table = TowerTable(max_cells=2, half_life_s=60)
    >>> table.observe("a", kbps=200.0, degraded=True, now=0.0)
    >>> table.observe("a", kbps=800.0, degraded=False, now=0.0)
    >>> state = table.lookup("a", now=0.0)
    >>> round(state.kbps), state.degraded_share, state.samples
    (400, 0.5, 2.0)
    >>> round(table.lookup("a", now=60.0).samples, 3)   # one half-life later
    1.0
    >>> table.observe("b", 1.0, True, 1.0); table.observe("c", 1.0, True, 2.0)
    >>> table.lookup("a", now=2.0) is None, len(table)   # "a" was evicted
    (True, 2)

**Several clients make a cell's statistics** (docs/feedback.md, "Threat model"). Samples that come
from feedback carry the client that sent them (:func:`edge.learning.trust.client_group`). What one client
says about a cell is shown to others only once at least ``min_clients`` *other* clients have
reported on it, and then weighs at most ``client_weight`` samples (decayed) however many it sent;
a client always sees its own reports (they only ever affect itself, and the shoppers behind its
address). A sample marked ``shared=False`` (a label whose claims contradict what edge observed,
see :mod:`edge.learning.feedback`) counts for its own client only. Samples without a client (the offline
``edge replay``) are trusted as they come.

    >>> table = TowerTable(min_clients=3, client_weight=2.0)
    >>> for _ in range(5):
    ...     table.observe("v", 100.0, True, now=0.0, client="198.51.100.9")   # one client, five reports
    >>> table.lookup("v", now=0.0, client="203.0.113.1") is None               # nobody else sees them
    True
    >>> table.lookup("v", now=0.0, client="198.51.100.9").samples                # its own view has them all
    5.0
    >>> for peer in ("192.0.2.1", "192.0.2.77"):
    ...     table.observe("v", 5000.0, False, now=0.0, client=peer)
    >>> state = table.lookup("v", now=0.0, client="203.0.113.1")                 # 3 clients: shared, capped
    >>> state.samples, round(state.degraded_share, 2)
    (4.0, 0.5)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["TowerTable", "CellState", "MIN_CLIENTS", "CLIENT_WEIGHT", "MAX_CLIENTS_PER_CELL"]

#: Distinct clients (other than the one asking) a cell needs before their reports are shown to others.
MIN_CLIENTS = 5
#: The most (decayed) samples one client's reports weigh in what others see of a cell.
CLIENT_WEIGHT = 2.0
#: Contributors remembered per cell; past it the one whose evidence has faded most is forgotten.
MAX_CLIENTS_PER_CELL = 8
#: The contributor key of samples without a client (offline replay): trusted, never capped.
_UNATTRIBUTED = ""

# A contributor's record: [updated, then decayed sums (weight, degraded, Σlog kbps, kbps weight)
# over all its samples, then the same over its shared samples only].
_UPDATED, _W, _D, _LK, _KW, _SW, _SD, _SLK, _SKW = range(9)


@dataclass(frozen=True, slots=True)
class CellState:
    """What the table knows about one cell right now."""

    kbps: float | None  # geometric mean of recent throughput (roughly log-normal); None if none measured
    degraded_share: float  # share of recent measurements below the label threshold
    samples: float  # effective number of recent measurements (decayed)


class _Cell:
    __slots__ = ("contributors", "updated")

    def __init__(self, now: float) -> None:
        self.contributors: dict[str, list[float]] = {}
        self.updated = now

    def __setstate__(self, state: object) -> None:
        # Checkpoints from before per-client records held one set of sums: keep them as trusted.
        raw = state[1] if isinstance(state, tuple) else state
        slots: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        self.updated = float(slots.get("updated", 0.0))
        if "contributors" in slots:
            self.contributors = slots["contributors"]
            return
        w, d = float(slots.get("weight", 0.0)), float(slots.get("degraded_sum", 0.0))
        lk, kw = float(slots.get("log_kbps_sum", 0.0)), float(slots.get("kbps_weight", 0.0))
        self.contributors = {_UNATTRIBUTED: [self.updated, w, d, lk, kw, w, d, lk, kw]} if w > 0 else {}


class TowerTable:
    """Bounded, time-decayed throughput and degraded share per cell id, with per-client weight limits."""

    def __init__(
        self,
        max_cells: int = 50_000,
        half_life_s: float = 300.0,
        *,
        min_clients: int = MIN_CLIENTS,
        client_weight: float = CLIENT_WEIGHT,
        max_clients_per_cell: int = MAX_CLIENTS_PER_CELL,
    ) -> None:
        if max_cells < 1 or half_life_s <= 0:
            raise ValueError("max_cells must be ≥ 1 and half_life_s > 0")
        if min_clients < 0 or client_weight <= 0 or max_clients_per_cell < 1:
            raise ValueError("min_clients must be ≥ 0, client_weight > 0 and max_clients_per_cell ≥ 1")
        self.max_cells = max_cells
        self.half_life_s = half_life_s
        self.min_clients = min_clients
        self.client_weight = client_weight
        self.max_clients_per_cell = max_clients_per_cell
        self._cells: OrderedDict[str, _Cell] = OrderedDict()

    def __setstate__(self, state: dict) -> None:  # tables checkpointed before the per-client limits
        self.__dict__.update(state)
        self.__dict__.setdefault("min_clients", MIN_CLIENTS)
        self.__dict__.setdefault("client_weight", CLIENT_WEIGHT)
        self.__dict__.setdefault("max_clients_per_cell", MAX_CLIENTS_PER_CELL)

    def __len__(self) -> int:
        return len(self._cells)

    def _factor(self, updated: float, now: float) -> float:
        return 0.5 ** (max(0.0, now - updated) / self.half_life_s)

    def observe(
        self, cell_id: str, kbps: float | None, degraded: bool, now: float, client: str | None = None, shared: bool = True
    ) -> None:
        """Add one measurement taken on ``cell_id`` at ``now`` (s): its throughput (kbit/s, or None) and label.

        ``client``: who reported it (:func:`edge.learning.trust.client_group`), None for a trusted source;
        ``shared=False``: it counts for that client's own view only.
        """
        if kbps is not None and (not math.isfinite(kbps) or kbps < 0):
            return
        cell = self._cells.get(cell_id)
        if cell is None:
            cell = self._cells[cell_id] = _Cell(now)
            if len(self._cells) > self.max_cells:
                self._cells.popitem(last=False)
        else:
            self._cells.move_to_end(cell_id)
        key = _UNATTRIBUTED if client is None else client
        record = cell.contributors.get(key)
        if record is None:
            if len(cell.contributors) >= self.max_clients_per_cell:
                # Forget the contributor whose evidence has faded most (never the trusted one).
                faded = min(
                    (k for k in cell.contributors if k != _UNATTRIBUTED),
                    key=lambda k: cell.contributors[k][_W] * self._factor(cell.contributors[k][_UPDATED], now),
                    default=None,
                )
                if faded is None:
                    return
                del cell.contributors[faded]
            record = cell.contributors[key] = [now, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        else:
            factor = self._factor(record[_UPDATED], now)
            for i in range(1, 9):
                record[i] *= factor
            record[_UPDATED] = max(record[_UPDATED], now)
        log_kbps = math.log(max(kbps, 1.0)) if kbps is not None else 0.0
        has_kbps = 1.0 if kbps is not None else 0.0
        bad = 1.0 if degraded else 0.0
        record[_W] += 1.0
        record[_D] += bad
        record[_LK] += log_kbps
        record[_KW] += has_kbps
        if shared or client is None:
            record[_SW] += 1.0
            record[_SD] += bad
            record[_SLK] += log_kbps
            record[_SKW] += has_kbps
        cell.updated = max(cell.updated, now)

    def lookup(self, cell_id: str, now: float, client: str | None = None) -> CellState | None:
        """The cell's decayed state at ``now`` as ``client`` may see it, or ``None`` if there is nothing to show.

        ``client=None`` asks as nobody in particular: only what enough clients agree on (and
        trusted samples) is shown.
        """
        cell = self._cells.get(cell_id)
        if cell is None:
            return None
        contributors = cell.contributors
        others = sum(1 for k, r in contributors.items() if r[_SW] > 0 and k != client and k != _UNATTRIBUTED)
        show_others = others >= self.min_clients
        w = d = lk = kw = 0.0
        cap = self.client_weight
        for key, r in contributors.items():
            factor = self._factor(r[_UPDATED], now)
            if key == client and client is not None:
                rw, rd, rlk, rkw = r[_W], r[_D], r[_LK], r[_KW]  # its own reports, all of them
            elif key == _UNATTRIBUTED:
                rw, rd, rlk, rkw = r[_SW], r[_SD], r[_SLK], r[_SKW]
            elif show_others and r[_SW] > 0:
                rw, rd, rlk, rkw = r[_SW], r[_SD], r[_SLK], r[_SKW]
                decayed = rw * factor
                if decayed > cap:  # one client weighs at most `cap` samples, whatever it sent
                    scale = cap / decayed
                    rw, rd, rlk, rkw = rw * scale, rd * scale, rlk * scale, rkw * scale
            else:
                continue
            w += rw * factor
            d += rd * factor
            lk += rlk * factor
            kw += rkw * factor
        if w <= 1e-9:
            return None
        return CellState(kbps=math.exp(lk / kw) if kw > 1e-12 else None, degraded_share=d / w, samples=w)
