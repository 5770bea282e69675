"""No list computed from a user's earlier state is served once a deletion or an event is acknowledged.

The race of the issue: a request reads the user's state, computes, and writes its list to the cache; a
DELETE or an event lands in between. Each test runs it many times, against the in-process cache and a
real redis-server, with the real composition root over the real sqlite store:

* *interleaved*: the request is stopped right after its state read (a hook in the state store, the only
  one), the write is made and acknowledged, then the request finishes. Before the fix every such trial
  left the old list in the cache.
* *concurrent*: as the issue reproduces it, the request and the write start together from a barrier,
  with no hook at all.

After every trial the next request must return exactly the list computed from the store's state now
(``fresh``): for a deleted user the cold-start list, after a purchase a list without the purchased item.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.unit.fakes import FakeRanker

from shoprec.adapters.aws.redis_cache import RedisCache
from shoprec.adapters.local.memory_cache import MemoryCache
from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.container import Container, build_container
from shoprec.domain import ApplyResult, Event, EventType, RankedItem
from shoprec.ports import Cache
from shoprec.services.recommendation import RecommendationService
from shoprec.settings import Settings

TRIALS = 60
K = 5
HISTORY = ("p0", "p5")
"""Two views from two clusters of the tiny catalogue: item-CF and embedding lists, not cold start."""
WAIT_S = 10.0
"""Only a broken test waits this long: every wait ends as soon as the other thread gets there."""


class PausingState:
    """The sqlite store, with one hook: after :meth:`pause_after_read`, the next read of that user's state
    returns only when the test calls :meth:`resume` (the request then computes from what it read)."""

    def __init__(self, inner: SqliteUserStateStore) -> None:
        self.inner = inner
        self._paused_user: str | None = None
        self.has_read = threading.Event()
        self._resume = threading.Event()

    def pause_after_read(self, user_id: str) -> None:
        self._paused_user = user_id
        self.has_read.clear()
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def recent_items(self, user_id: str) -> list[str]:
        items = self.inner.recent_items(user_id)
        if user_id == self._paused_user:
            self._paused_user = None
            self.has_read.set()
            assert self._resume.wait(WAIT_S), "the test never resumed the request"
        return items

    def apply_events(self, events: Sequence[Event]) -> ApplyResult:
        return self.inner.apply_events(events)

    def delete_user(self, user_id: str) -> bool:
        return self.inner.delete_user(user_id)

    def describe(self) -> str:
        return self.inner.describe()


@dataclass
class World:
    container: Container
    state: PausingState

    def recommend(self, user: str) -> list[RankedItem]:
        return self.container.recommendations.recommend(user, K).items

    def fresh(self, user: str) -> list[RankedItem]:
        """The list the store's state gives now, computed without any cache."""
        service = self.container.recommendations
        uncached = RecommendationService(
            service.pipeline,
            self.state.inner,
            MemoryCache(),
            model_version=service.model_version,
            version_tag="fresh",
        )
        return uncached.recommend(user, K).items

    def new_user_with_history(self) -> str:
        user = f"u-{uuid.uuid4().hex[:12]}"
        self.container.events.ingest([view(user, item, n) for n, item in enumerate(HISTORY)])
        return user


def view(user: str, item: str, n: int, kind: EventType = EventType.VIEW) -> Event:
    return Event(
        event_id=f"{user}-{n}",
        user_id=user,
        item_id=item,
        type=kind,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
    )


@pytest.fixture(params=["memory", "redis"])
def stale_cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    if request.param == "memory":
        yield MemoryCache()
        return
    host, port = request.getfixturevalue("fault_redis")
    cache = RedisCache(f"redis://{host}:{port}/0", prefix=f"stale-{uuid.uuid4().hex[:8]}:")
    yield cache
    cache.close()


@pytest.fixture
def stale_world(fault_bundle_dir: Path, tmp_path: Path, stale_cache: Cache) -> Iterator[World]:
    sqlite = SqliteUserStateStore(tmp_path / "state.db")
    state = PausingState(sqlite)
    container = build_container(
        Settings(artifacts=str(fault_bundle_dir)), state=state, cache=stale_cache, ranker=FakeRanker()
    )
    yield World(container, state)
    sqlite.close()


def interleaved(world: World, user: str, write: Callable[[], None]) -> None:
    """A request that read ``user``'s state before ``write`` was acknowledged finishes after it."""
    world.state.pause_after_read(user)
    request = threading.Thread(target=world.recommend, args=(user,))
    request.start()
    try:
        assert world.state.has_read.wait(WAIT_S), "the request never read the state"
        write()
    finally:
        world.state.resume()
        request.join(WAIT_S)


def concurrent(world: World, user: str, write: Callable[[], None]) -> None:
    """A request and ``write`` released together, as in the issue's reproduction."""
    start = threading.Barrier(2, timeout=WAIT_S)

    def request() -> None:
        start.wait()
        world.recommend(user)

    def writer() -> None:
        start.wait()
        write()

    threads = [threading.Thread(target=request), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)


def delete_trial(world: World, race: Callable[[World, str, Callable[[], None]], None]) -> bool:
    """One trial of a deletion racing a request; ``True`` when the next answer was stale."""
    user = world.new_user_with_history()

    def delete() -> None:
        assert world.container.events.delete_user(user)

    race(world, user, delete)
    served = world.recommend(user)
    assert world.fresh(user) == world.fresh("never-seen")  # the store holds nothing for the user now
    return served != world.fresh(user)


def purchase_trial(world: World, race: Callable[[World, str, Callable[[], None]], None]) -> bool:
    """One trial of a purchase racing a request: the purchased item was the user's top item."""
    user = world.new_user_with_history()
    bought = world.fresh(user)[0].item_id

    def purchase() -> None:
        result = world.container.events.ingest([view(user, bought, len(HISTORY), EventType.PURCHASE)])
        assert result.applied == 1

    race(world, user, purchase)
    served = world.recommend(user)
    assert bought not in [it.item_id for it in world.fresh(user)]  # seen items are excluded
    return served != world.fresh(user)


RACES = {"interleaved": interleaved, "concurrent": concurrent}


@pytest.mark.parametrize("race", RACES)
def test_no_list_from_before_an_acknowledged_deletion_is_served(stale_world: World, race: str) -> None:
    stale = sum(delete_trial(stale_world, RACES[race]) for _ in range(TRIALS))
    print(f"\nstale lists after DELETE ({race}, {stale_world.container.cache.describe()}): {stale}/{TRIALS}")
    assert stale == 0, f"{stale} of {TRIALS} trials served a list computed before the deletion"


@pytest.mark.parametrize("race", RACES)
def test_no_list_from_before_an_acknowledged_event_is_served(stale_world: World, race: str) -> None:
    stale = sum(purchase_trial(stale_world, RACES[race]) for _ in range(TRIALS))
    print(
        f"\nstale lists after an event ({race}, {stale_world.container.cache.describe()}): {stale}/{TRIALS}"
    )
    assert stale == 0, f"{stale} of {TRIALS} trials served a list computed before the event"
