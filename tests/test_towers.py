import math

import pytest

from edge.towers import TowerTable


def test_geometric_mean_and_share():
    table = TowerTable()
    for kbps, degraded in [(100.0, True), (1000.0, False), (10_000.0, False)]:
        table.observe("c", kbps, degraded, now=10.0)
    state = table.lookup("c", now=10.0)
    assert state.kbps == pytest.approx(1000.0)
    assert state.degraded_share == pytest.approx(1 / 3)
    assert state.samples == pytest.approx(3.0)


def test_old_evidence_fades_so_recent_congestion_dominates():
    table = TowerTable(half_life_s=60.0)
    for _ in range(10):
        table.observe("c", 5000.0, False, now=0.0)
    table.observe("c", 100.0, True, now=600.0)  # ten half-lives later the cell is congested
    state = table.lookup("c", now=600.0)
    assert state.degraded_share > 0.98
    assert state.kbps < 110.0


def test_table_is_bounded_and_evicts_the_least_recently_updated():
    table = TowerTable(max_cells=100)
    for i in range(10_000):
        table.observe(f"cell-{i}", 500.0, True, now=float(i))
    assert len(table) == 100
    assert table.lookup("cell-0", now=1e4) is None
    assert table.lookup("cell-9999", now=1e4) is not None


def test_bad_measurements_are_ignored():
    table = TowerTable()
    table.observe("c", math.nan, True, now=0.0)
    table.observe("c", -1.0, True, now=0.0)
    assert table.lookup("c", now=0.0) is None
    assert table.lookup("unknown", now=0.0) is None


def test_invalid_configuration():
    with pytest.raises(ValueError):
        TowerTable(max_cells=0)
