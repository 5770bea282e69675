"""The ItemStore specification (the live catalogue's overlay), run against the in-process and sqlite
stores here and against DynamoDB in tests/integration/test_dynamodb_items.py (which subclasses
:class:`ItemStoreContract`)."""

from __future__ import annotations

import dataclasses
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.unit.fakes import FakeClock

from shoprec.adapters.item_stores import item_store_for
from shoprec.adapters.local.memory_items import MemoryItemStore
from shoprec.adapters.local.sqlite_items import SqliteItemStore
from shoprec.errors import BackendUnavailableError
from shoprec.items import CatalogItem
from shoprec.ports import ItemStore

T0 = 1_700_000_000.0


def caliper(item_id: str = "p1", **changes: object) -> CatalogItem:
    item = CatalogItem(
        item_id,
        title="Digital caliper",
        description="Stainless steel, 150 mm",
        brand="Mitutoyo",
        categories=("Industrial", "Measuring"),
        price=49.5,
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


class ItemStoreContract:
    """What every ItemStore does. Subclasses provide the ``store`` fixture, built with the ``clock``."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(T0)

    def test_implements_the_port(self, store: ItemStore) -> None:
        assert isinstance(store, ItemStore)

    def test_an_empty_store_has_no_items(self, store: ItemStore) -> None:
        assert store.get("p1") is None
        assert store.list() == []
        assert store.version() == store.version()

    def test_put_stores_the_item_with_the_write_time(self, store: ItemStore) -> None:
        assert store.put(caliper()) is True
        assert store.get("p1") == caliper(updated_at=T0)
        assert store.list() == [caliper(updated_at=T0)]

    def test_the_same_put_twice_changes_nothing_not_even_the_version(
        self, store: ItemStore, clock: FakeClock
    ) -> None:
        store.put(caliper())
        version = store.version()
        clock.advance(60)
        assert store.put(caliper()) is False
        assert store.version() == version
        assert store.get("p1") == caliper(updated_at=T0)

    def test_a_put_that_changes_the_item_replaces_it_and_the_version(
        self, store: ItemStore, clock: FakeClock
    ) -> None:
        store.put(caliper())
        version = store.version()
        clock.advance(60)
        assert store.put(caliper(price=45.0, available=False)) is False
        assert store.version() != version
        assert store.get("p1") == caliper(price=45.0, available=False, updated_at=T0 + 60)

    def test_the_updated_at_of_a_put_is_the_stores_not_the_callers(self, store: ItemStore) -> None:
        store.put(caliper(updated_at=5.0))
        assert store.get("p1") == caliper(updated_at=T0)

    def test_delist_keeps_the_fields_and_hides_the_item(self, store: ItemStore, clock: FakeClock) -> None:
        store.put(caliper())
        version = store.version()
        clock.advance(10)
        assert store.delist("p1") is True
        stored = store.get("p1")
        assert stored == caliper(delisted=True, updated_at=T0 + 10)
        assert stored is not None
        assert not stored.visible
        assert store.version() != version

    def test_delisting_twice_changes_nothing_the_second_time(
        self, store: ItemStore, clock: FakeClock
    ) -> None:
        store.put(caliper())
        store.delist("p1")
        version = store.version()
        clock.advance(10)
        assert store.delist("p1") is False
        assert store.version() == version
        assert store.get("p1") == caliper(delisted=True, updated_at=T0)

    def test_delisting_an_id_never_stored_keeps_a_bare_tombstone(self, store: ItemStore) -> None:
        version = store.version()
        assert store.delist("bundle-item") is True
        assert store.get("bundle-item") == CatalogItem("bundle-item", delisted=True, updated_at=T0)
        assert store.list() == [CatalogItem("bundle-item", delisted=True, updated_at=T0)]
        assert store.version() != version

    def test_a_put_after_delist_lists_the_item_again(self, store: ItemStore, clock: FakeClock) -> None:
        store.put(caliper())
        store.delist("p1")
        clock.advance(5)
        version = store.version()
        assert store.put(caliper()) is False  # the tombstone was stored: not a new id
        assert store.get("p1") == caliper(updated_at=T0 + 5)
        assert store.version() != version

    def test_put_ignores_a_delisted_flag_in_the_item(self, store: ItemStore) -> None:
        store.put(caliper(delisted=True))
        stored = store.get("p1")
        assert stored is not None
        assert stored.visible

    def test_list_holds_every_item_and_tombstone_ordered_by_id(self, store: ItemStore) -> None:
        for item_id in ("b", "a10", "a2", "c"):
            store.put(caliper(item_id))
        store.delist("a2")
        store.delist("zz")
        listed = store.list()
        assert [i.item_id for i in listed] == ["a10", "a2", "b", "c", "zz"]
        assert [i.item_id for i in listed if not i.visible] == ["a2", "zz"]

    def test_every_change_gives_a_version_not_seen_before(self, store: ItemStore) -> None:
        seen = [store.version()]
        for step in (
            lambda: store.put(caliper()),
            lambda: store.put(caliper(title="Caliper, digital")),
            lambda: store.put(caliper("p2")),
            lambda: store.delist("p1"),
            lambda: store.delist("p3"),
            lambda: store.put(caliper()),
        ):
            step()
            seen.append(store.version())
        assert len(set(seen)) == len(seen)

    WRITERS = 4
    """Concurrent writers of the concurrency test (a store whose writes retry on conflict may take fewer)."""

    def test_concurrent_writers_lose_no_write_and_no_version_bump(self, store: ItemStore) -> None:
        before = store.version()

        def write(worker: int) -> None:
            for n in range(10):
                store.put(caliper(f"w{worker}-{n}"))
                store.put(caliper("shared", price=float(worker * 100 + n)))

        with ThreadPoolExecutor(self.WRITERS) as pool:
            list(pool.map(write, range(self.WRITERS)))
        assert len(store.list()) == 10 * self.WRITERS + 1
        assert store.version() != before


class TestInProcessAndSqlite(ItemStoreContract):
    @pytest.fixture(params=["memory", "sqlite"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> ItemStore:
        if request.param == "memory":
            return MemoryItemStore(clock=clock)
        return SqliteItemStore(tmp_path / "state.db", clock=clock)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def test_sqlite_stores_on_one_file_see_each_others_writes(sqlite_path: Path) -> None:
    writer, reader = SqliteItemStore(sqlite_path), SqliteItemStore(sqlite_path)
    version = reader.version()
    writer.put(caliper())
    assert reader.version() != version
    assert reader.get("p1") == writer.get("p1")


def test_sqlite_items_live_beside_the_user_state_and_rules(sqlite_path: Path) -> None:
    from shoprec.adapters.local.sqlite_rules import SqliteRuleStore
    from shoprec.adapters.local.sqlite_state import SqliteUserStateStore

    state = SqliteUserStateStore(sqlite_path)
    SqliteRuleStore(sqlite_path)
    store = SqliteItemStore(sqlite_path)
    store.put(caliper())
    assert state.recent_items("u1") == []
    assert SqliteItemStore(sqlite_path).list() == store.list()
    state.close()


def test_the_sqlite_version_counts_every_change_made_by_concurrent_writers(sqlite_path: Path) -> None:
    stores = [SqliteItemStore(sqlite_path) for _ in range(3)]
    epoch = stores[0].version().split(".")[0]

    def write(worker: int) -> None:
        for n in range(20):
            stores[worker].put(caliper(f"w{worker}-{n}"))

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, range(3)))
    assert stores[0].version() == f"{epoch}.60"


def test_a_recreated_sqlite_file_never_repeats_a_version(tmp_path: Path) -> None:
    first = SqliteItemStore(tmp_path / "a.db")
    first.put(caliper())
    second = SqliteItemStore(tmp_path / "b.db")
    second.put(caliper())
    assert first.version() != second.version()


@pytest.mark.parametrize(
    "body",
    ['{"item_id": "p1", "price": -1}', "not json", '{"title": "no id"}', '{"item_id": "p2"}', "[]"],
    ids=["bad-price", "not-json", "no-id", "other-id", "not-an-object"],
)
def test_a_stored_row_that_does_not_read_is_a_tombstone(sqlite_path: Path, body: str) -> None:
    store = SqliteItemStore(sqlite_path)
    store.put(caliper("p0"))
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("INSERT INTO catalog_items (item_id, body, updated_at) VALUES ('p1', ?, 0)", (body,))
    assert store.get("p1") == CatalogItem("p1", delisted=True)
    assert [(i.item_id, i.visible) for i in store.list()] == [("p0", True), ("p1", False)]
    assert store.put(caliper()) is False  # a put repairs it
    repaired = store.get("p1")
    assert repaired is not None
    assert repaired.visible
    assert repaired.title == "Digital caliper"


def test_a_stored_row_under_an_invalid_id_is_skipped(sqlite_path: Path) -> None:
    store = SqliteItemStore(sqlite_path)
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("INSERT INTO catalog_items (item_id, body, updated_at) VALUES ('a b', '{}', 0)")
    assert store.list() == []


def test_an_unusable_sqlite_file_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(BackendUnavailableError, match="catalog_items"):
        SqliteItemStore(tmp_path / "dir.db")


def test_a_failing_memory_store_raises_the_backend_error() -> None:
    store = MemoryItemStore()
    store.fail = True
    for call in (store.list, store.version, lambda: store.put(caliper()), lambda: store.delist("p1")):
        with pytest.raises(BackendUnavailableError):
            call()


def test_item_store_for_picks_the_backend_of_the_state_dsn(tmp_path: Path) -> None:
    assert isinstance(item_store_for(None), MemoryItemStore)
    sqlite = item_store_for(f"sqlite:///{tmp_path / 'state.db'}")
    assert isinstance(sqlite, SqliteItemStore)
    assert sqlite.describe().endswith("state.db#catalog_items")
    with pytest.raises(ValueError, match="unknown backend"):
        item_store_for("redis://localhost")
