import math

import pytest

from edge.pipeline.towers import TowerTable


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


# Several clients make a cell's statistics (docs/feedback.md, "Threat model").


def test_one_clients_reports_are_its_own_until_enough_others_report():
    table = TowerTable(min_clients=5, client_weight=2.0)
    for _ in range(50):
        table.observe("victim", 100.0, True, now=0.0, client="198.51.100.9")
    assert table.lookup("victim", now=0.0, client="203.0.113.1") is None
    assert table.lookup("victim", now=0.0) is None
    assert table.lookup("victim", now=0.0, client="198.51.100.9").samples == pytest.approx(50.0)


def test_with_enough_clients_each_weighs_at_most_its_cap():
    table = TowerTable(min_clients=5, client_weight=2.0)
    for _ in range(100):  # a flood from one address …
        table.observe("c", 100.0, True, now=0.0, client="198.51.100.9")
    for i in range(5):  # … and five honest shoppers on a good cell
        table.observe("c", 8000.0, False, now=0.0, client=f"192.0.2.{i}")
    state = table.lookup("c", now=0.0, client="203.0.113.1")
    assert state.samples == pytest.approx(2.0 + 5.0)
    assert state.degraded_share == pytest.approx(2.0 / 7.0)


def test_untrusted_samples_count_for_their_own_client_only():
    table = TowerTable(min_clients=1)
    table.observe("c", 100.0, True, now=0.0, client="192.0.2.1", shared=False)
    assert table.lookup("c", now=0.0, client="203.0.113.1") is None
    assert table.lookup("c", now=0.0, client="192.0.2.1").degraded_share == 1.0


def test_contributors_per_cell_are_bounded():
    table = TowerTable(max_clients_per_cell=8)
    for i in range(10_000):
        table.observe("c", 500.0, True, now=float(i), client=f"10.0.{i // 256}.{i % 256}")
    assert len(table._cells["c"].contributors) == 8


def test_a_table_checkpointed_before_the_per_client_records_restores():
    import pickle

    from edge.pipeline.towers import _Cell

    old = _Cell.__new__(_Cell)
    old.__setstate__((None, {"log_kbps_sum": 2 * math.log(400.0), "kbps_weight": 2.0, "degraded_sum": 2.0, "weight": 2.0, "updated": 5.0}))
    table = TowerTable()
    table._cells["c"] = old
    restored = pickle.loads(pickle.dumps(table))
    state = restored.lookup("c", now=5.0)
    assert state.kbps == pytest.approx(400.0) and state.degraded_share == 1.0 and state.samples == 2.0
