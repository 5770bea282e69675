"""The InteractionStatsStore specification (live co-occurrence and trending counts), run against the
in-process and sqlite stores here and against DynamoDB in tests/integration/test_dynamodb_stats.py
(which subclasses :class:`InteractionStatsContract`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoprec.adapters.interaction_stats import EPOCH_HALF_LIVES, Decay, interaction_stats_for
from shoprec.adapters.local.memory_stats import MemoryInteractionStats
from shoprec.adapters.local.sqlite_stats import SqliteInteractionStats
from shoprec.ports import InteractionStatsStore

HALF_LIFE = 100.0
EPOCH = HALF_LIFE * EPOCH_HALF_LIVES
T0 = 1_700_000_100.0  # a little into an epoch
MAX_NEIGHBOURS = 4
# DynamoDB keeps three decimals of the stored (forward-decayed) weights.
close = lambda expected: pytest.approx(expected, abs=0.01)  # noqa: E731


class InteractionStatsContract:
    """What every InteractionStatsStore does. Subclasses provide ``store`` with a half-life of
    ``HALF_LIFE`` seconds and ``MAX_NEIGHBOURS`` neighbours."""

    def test_implements_the_port(self, store: InteractionStatsStore) -> None:
        assert isinstance(store, InteractionStatsStore)

    def test_an_empty_store_knows_nothing(self, store: InteractionStatsStore) -> None:
        assert store.neighbours([], at=T0) == {}
        assert store.neighbours(["a"], at=T0) == {}
        assert store.trending(at=T0) == {}

    def test_recorded_weights_add_up_per_pair_and_per_item(self, store: InteractionStatsStore) -> None:
        store.record({"a": {"b": 1.0, "c": 0.5}, "b": {"a": 0.25}}, {"b": 1.0}, at=T0)
        store.record({"a": {"b": 1.0}}, {"b": 1.0, "a": 1.0}, at=T0)
        found = store.neighbours(["a", "b", "c"], at=T0)
        assert found.keys() == {"a", "b"}
        assert found["a"] == {"b": close(2.0), "c": close(0.5)}
        assert found["b"] == {"a": close(0.25)}
        assert store.trending(at=T0) == {"b": close(2.0), "a": close(1.0)}

    def test_weights_halve_every_half_life(self, store: InteractionStatsStore) -> None:
        store.record({"a": {"b": 4.0}}, {"a": 4.0}, at=T0)
        store.record({"a": {"b": 4.0}}, {"a": 4.0}, at=T0 + HALF_LIFE)
        later = T0 + 2 * HALF_LIFE
        assert store.neighbours(["a"], at=later) == {"a": {"b": close(4.0 / 4 + 4.0 / 2)}}
        assert store.trending(at=later) == {"a": close(3.0)}

    def test_counts_carry_over_into_the_next_epoch_and_vanish_after_it(
        self, store: InteractionStatsStore
    ) -> None:
        store.record({"a": {"b": 8.0}}, {"a": 8.0}, at=T0)
        next_epoch = T0 + EPOCH
        store.record({"a": {"c": 1.0}}, {"c": 1.0}, at=next_epoch)
        decayed = 8.0 * 2.0**-EPOCH_HALF_LIVES
        assert store.neighbours(["a"], at=next_epoch) == {"a": {"b": close(decayed), "c": close(1.0)}}
        assert store.trending(at=next_epoch) == {"a": close(decayed), "c": close(1.0)}
        gone = T0 + 2 * EPOCH
        assert store.neighbours(["a"], at=gone) == {"a": {"c": close(2.0**-EPOCH_HALF_LIVES)}}
        assert store.trending(at=T0 + 3 * EPOCH) == {}

    def test_a_neighbour_list_keeps_its_heaviest_members(self, store: InteractionStatsStore) -> None:
        for i in range(3 * MAX_NEIGHBOURS):
            store.record({"a": {f"n{i:02d}": 1.0 + i}}, {}, at=T0)
        found = store.neighbours(["a"], at=T0)["a"]
        assert len(found) <= MAX_NEIGHBOURS
        heaviest = f"n{3 * MAX_NEIGHBOURS - 1:02d}"
        assert found[heaviest] == close(3.0 * MAX_NEIGHBOURS)

    def test_a_pair_seen_often_displaces_old_light_ones(self, store: InteractionStatsStore) -> None:
        store.record({"a": {f"old{i}": 1.0 for i in range(MAX_NEIGHBOURS)}}, {}, at=T0)
        for _ in range(3):
            store.record({"a": {"new": 1.0}}, {}, at=T0 + HALF_LIFE)
        found = store.neighbours(["a"], at=T0 + HALF_LIFE)["a"]
        assert max(found, key=found.__getitem__) == "new"

    def test_negative_weights_are_refused(self, store: InteractionStatsStore) -> None:
        with pytest.raises(ValueError, match="weights"):
            store.record({"a": {"b": -1.0}}, {}, at=T0)
        assert store.neighbours(["a"], at=T0) == {}


class TestMemory(InteractionStatsContract):
    @pytest.fixture
    def store(self) -> MemoryInteractionStats:
        return MemoryInteractionStats(decay=Decay(HALF_LIFE), max_neighbours=MAX_NEIGHBOURS)


class TestSqlite(InteractionStatsContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqliteInteractionStats:
        path = tmp_path / "state.db"
        return SqliteInteractionStats(path, decay=Decay(HALF_LIFE), max_neighbours=MAX_NEIGHBOURS)

    def test_two_processes_on_one_file_share_the_counts(self, store: SqliteInteractionStats) -> None:
        other = SqliteInteractionStats(store.path, decay=Decay(HALF_LIFE), max_neighbours=MAX_NEIGHBOURS)
        store.record({"a": {"b": 1.0}}, {"a": 1.0}, at=T0)
        assert other.neighbours(["a"], at=T0) == {"a": {"b": close(1.0)}}


def test_the_store_of_a_state_dsn_lives_beside_the_state(tmp_path: Path) -> None:
    assert isinstance(interaction_stats_for(None), MemoryInteractionStats)
    db = tmp_path / "state.db"
    store = interaction_stats_for(f"sqlite:///{db}", half_life_s=60.0)
    assert isinstance(store, SqliteInteractionStats)
    assert store.decay.half_life_s == 60.0
    assert store.path == db.resolve()
    with pytest.raises(ValueError, match="unknown backend"):
        interaction_stats_for("redis://x")


def test_the_forward_decay_stores_weights_against_the_epoch_start() -> None:
    decay = Decay(HALF_LIFE)
    start = decay.epoch(T0) * EPOCH
    assert decay.stored(1.0, start) == 1.0
    assert decay.stored(1.0, start + 3 * HALF_LIFE) == 8.0
    assert decay.factor(decay.epoch(T0), start + 3 * HALF_LIFE) == 1 / 8
    assert decay.live_epochs(T0) == (decay.epoch(T0) - 1, decay.epoch(T0))
    with pytest.raises(ValueError, match="half_life_s"):
        Decay(0.0)
