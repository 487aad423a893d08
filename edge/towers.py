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
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["TowerTable", "CellState"]


@dataclass(frozen=True, slots=True)
class CellState:
    """What the table knows about one cell right now."""

    kbps: float | None  # geometric mean of recent throughput (roughly log-normal); None if none measured
    degraded_share: float  # share of recent measurements below the label threshold
    samples: float  # effective number of recent measurements (decayed)


class _Cell:
    __slots__ = ("log_kbps_sum", "kbps_weight", "degraded_sum", "weight", "updated")

    def __init__(self, now: float) -> None:
        self.log_kbps_sum = 0.0
        self.kbps_weight = 0.0  # measurements with a throughput (some only know the label)
        self.degraded_sum = 0.0
        self.weight = 0.0
        self.updated = now


class TowerTable:
    """Bounded, time-decayed throughput and degraded share per cell id."""

    def __init__(self, max_cells: int = 50_000, half_life_s: float = 300.0) -> None:
        if max_cells < 1 or half_life_s <= 0:
            raise ValueError("max_cells must be ≥ 1 and half_life_s > 0")
        self.max_cells = max_cells
        self.half_life_s = half_life_s
        self._cells: OrderedDict[str, _Cell] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cells)

    def _decay(self, cell: _Cell, now: float) -> float:
        dt = max(0.0, now - cell.updated)
        return 0.5 ** (dt / self.half_life_s)

    def observe(self, cell_id: str, kbps: float | None, degraded: bool, now: float) -> None:
        """Add one measurement taken on ``cell_id`` at ``now`` (s): its throughput (kbit/s, or None) and label."""
        if kbps is not None and (not math.isfinite(kbps) or kbps < 0):
            return
        cell = self._cells.get(cell_id)
        if cell is None:
            cell = self._cells[cell_id] = _Cell(now)
            if len(self._cells) > self.max_cells:
                self._cells.popitem(last=False)
        else:
            self._cells.move_to_end(cell_id)
            factor = self._decay(cell, now)
            cell.log_kbps_sum *= factor
            cell.kbps_weight *= factor
            cell.degraded_sum *= factor
            cell.weight *= factor
        if kbps is not None:
            cell.log_kbps_sum += math.log(max(kbps, 1.0))
            cell.kbps_weight += 1.0
        cell.degraded_sum += 1.0 if degraded else 0.0
        cell.weight += 1.0
        cell.updated = max(cell.updated, now)

    def lookup(self, cell_id: str, now: float) -> CellState | None:
        """The cell's decayed state at ``now``, or ``None`` if the table has nothing on it."""
        cell = self._cells.get(cell_id)
        if cell is None or cell.weight <= 0:
            return None
        factor = self._decay(cell, now)
        return CellState(
            kbps=math.exp(cell.log_kbps_sum / cell.kbps_weight) if cell.kbps_weight > 0 else None,
            degraded_share=cell.degraded_sum / cell.weight,
            samples=cell.weight * factor,
        )
