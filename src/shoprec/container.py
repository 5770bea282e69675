"""The composition root: the only place that turns settings into adapters and services.

Each backend is chosen by the prefix of its DSN-style setting (see :mod:`shoprec.settings`); adapter
modules are imported only when chosen, so a Lambda that uses DynamoDB never imports sqlite3's adapter
and a local run never imports boto3. Tests build the same graph with other settings, or pass ready
adapters (fakes) for any port; nothing here is patched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shoprec.artifacts.bundle import Bundle, load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.ports import ArtifactStore, Cache, Ranker, UserStateStore
from shoprec.services.events import EventService
from shoprec.services.recommendation import RecommendationService
from shoprec.settings import Settings, get_settings


@dataclass(frozen=True, eq=False)
class Container:
    """Everything a request needs, built once per process (per Lambda execution environment)."""

    settings: Settings
    artifacts: ArtifactStore
    bundle: Bundle
    catalog: CatalogIndex
    state: UserStateStore
    cache: Cache
    ranker: Ranker
    recommendations: RecommendationService
    events: EventService

    @property
    def model_version(self) -> str:
        return self.bundle.model_version

    def backends(self) -> dict[str, str]:
        """``describe()`` of every backend, for ``/v1/health``."""
        return {
            "artifacts": self.artifacts.describe(),
            "state": self.state.describe(),
            "cache": self.cache.describe(),
            "ranker": self.ranker.describe(),
        }


def build_container(
    settings: Settings,
    *,
    artifacts: ArtifactStore | None = None,
    state: UserStateStore | None = None,
    cache: Cache | None = None,
    ranker: Ranker | None = None,
) -> Container:
    """Build the object graph for ``settings``; a port passed explicitly replaces the configured one.

    Loads (and, through the artifact store, verifies) the bundle. Raises ``ArtifactError`` for a missing
    or damaged bundle and ``BackendUnavailableError`` when a backend cannot be reached.
    """
    store = artifacts or artifact_store_for(settings)
    # The store verified every file's checksum when it handed out the folder; hashing twice only slows
    # the cold start.
    bundle = load_bundle(store.local_path(), verify=False)
    catalog = CatalogIndex.from_bundle(bundle)
    state = state or state_store_for(settings.state)
    cache = cache or cache_for(settings.cache, max_entries=settings.cache_max_entries)
    ranker = ranker or ranker_for(settings.ranker, bundle, threads=settings.ranker_threads)
    recommendations = RecommendationService(
        bundle,
        catalog,
        state,
        cache,
        ranker,
        candidates=settings.candidates,
        latency_budget_ms=settings.latency_budget_ms,
        cache_ttl_s=settings.cache_ttl_s,
    )
    return Container(
        settings=settings,
        artifacts=store,
        bundle=bundle,
        catalog=catalog,
        state=state,
        cache=cache,
        ranker=ranker,
        recommendations=recommendations,
        events=EventService(catalog, state, cache),
    )


def artifact_store_for(settings: Settings) -> ArtifactStore:
    if settings.artifacts.startswith("s3://"):
        from shoprec.adapters.aws.s3_artifacts import S3ArtifactStore

        return S3ArtifactStore(settings.artifacts, cache_dir=settings.artifact_cache_dir)
    from shoprec.adapters.local.artifacts import LocalArtifactStore

    return LocalArtifactStore(Path(settings.artifacts))


def state_store_for(dsn: str) -> UserStateStore:
    if dsn.startswith("dynamodb://"):
        from shoprec.adapters.aws.dynamodb_state import DynamoDbUserStateStore

        return DynamoDbUserStateStore(dsn.removeprefix("dynamodb://"))
    if dsn.startswith("sqlite:///"):
        from shoprec.adapters.local.sqlite_state import SqliteUserStateStore

        return SqliteUserStateStore(Path(dsn.removeprefix("sqlite:///")))
    raise ValueError(f"state: unknown backend {dsn!r}")


def cache_for(dsn: str, *, max_entries: int = 10_000) -> Cache:
    if dsn.startswith(("redis://", "rediss://")):
        from shoprec.adapters.aws.redis_cache import RedisCache

        return RedisCache(dsn)
    if dsn == "memory://":
        from shoprec.adapters.local.memory_cache import MemoryCache

        return MemoryCache(max_entries=max_entries)
    raise ValueError(f"cache: unknown backend {dsn!r}")


def ranker_for(dsn: str, bundle: Bundle, *, threads: int = 1) -> Ranker:
    if dsn == "onnx":
        from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker

        return LocalOnnxRanker(bundle, threads=threads)
    if dsn.startswith("sagemaker://"):
        from shoprec.adapters.aws.sagemaker_ranker import SageMakerRanker

        return SageMakerRanker(dsn.removeprefix("sagemaker://"))
    if dsn.startswith(("http://", "https://")):
        from shoprec.adapters.http_ranker import HttpRanker

        return HttpRanker(dsn)
    raise ValueError(f"ranker: unknown backend {dsn!r}")


class LazyContainer:
    """Builds the container on first use and keeps it: a Lambda cold start pays once, warm calls reuse it.

    Thread-safe (sync routes run in a thread pool); a failed build is not cached, so the next request
    tries again (e.g. after the bundle upload finished).
    """

    def __init__(self, factory: Callable[[], Container] | None = None) -> None:
        self._factory = factory or default_container
        self._container: Container | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._container is not None

    def get(self) -> Container:
        container = self._container
        if container is None:
            with self._lock:
                if self._container is None:
                    self._container = self._factory()
                container = self._container
        return container


def default_container() -> Container:
    """The container for the process-wide settings (``SHOPREC_*`` environment variables)."""
    return build_container(get_settings())
