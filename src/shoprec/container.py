"""The composition root: the only place that turns settings into adapters and services.

Each backend is chosen by the prefix of its DSN-style setting (see :mod:`shoprec.settings`); adapter
modules are imported only when chosen, so a Lambda that uses DynamoDB never imports sqlite3's adapter
and a local run never imports boto3. Tests build the same graph with other settings, or pass ready
adapters (fakes) for any port; nothing here is patched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from shoprec.artifacts import Bundle, load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.errors import ShopRecError
from shoprec.pipeline import RecommendationPipeline, build_pipeline
from shoprec.ports import ArtifactStore, Cache, Ranker, UserStateStore
from shoprec.services.events import EventService
from shoprec.services.recommendation import RecommendationService
from shoprec.settings import Settings, get_settings

log = logging.getLogger(__name__)


class ModelVersionSource(Protocol):
    """Where the version to serve is looked up (an SSM parameter: ``shoprec.adapters.aws.ssm_version``)."""

    def current(self) -> str: ...

    def describe(self) -> str: ...


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
    pipeline: RecommendationPipeline
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
    pipeline = build_pipeline(
        bundle,
        catalog,
        ranker,
        candidates=settings.candidates,
        latency_budget_ms=settings.latency_budget_ms,
    )
    recommendations = RecommendationService(
        pipeline,
        state,
        cache,
        model_version=bundle.model_version,
        version_tag=bundle.manifest.short_version,
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
        pipeline=pipeline,
        recommendations=recommendations,
        events=EventService(catalog, state, cache),
    )


def artifact_store_for(settings: Settings) -> ArtifactStore:
    """The store of ``settings.artifacts``; with a served-version parameter, of the folder the parameter
    names under it (``s3://bucket/models`` and ``<hex>`` → ``s3://bucket/models/<hex>``)."""
    location = settings.artifacts
    if settings.model_version_parameter:
        location = served_location(location, version_source_for(settings).current())
    if location.startswith("s3://"):
        from shoprec.adapters.aws.s3_artifacts import S3ArtifactStore

        return S3ArtifactStore(location, cache_dir=settings.artifact_cache_dir)
    from shoprec.adapters.local.artifacts import LocalArtifactStore

    return LocalArtifactStore(Path(location))


def version_source_for(settings: Settings) -> ModelVersionSource:
    """The served-version parameter of ``settings`` (one per process, so its cache is shared)."""
    if not settings.model_version_parameter:
        raise ValueError("model_version_parameter is not set")
    return _ssm_version(settings.model_version_parameter, settings.model_version_max_age_s)


@lru_cache(maxsize=8)
def _ssm_version(name: str, max_age_s: int) -> ModelVersionSource:
    from shoprec.adapters.aws.ssm_version import SsmModelVersion

    return SsmModelVersion(name, max_age_s=max_age_s)


def served_location(artifacts: str, version: str) -> str:
    """The folder under ``artifacts`` (the models root) that holds ``version``."""
    folder = version.removeprefix("sha256:")
    if artifacts.startswith("s3://"):
        return f"{artifacts.rstrip('/')}/{folder}"
    return str(Path(artifacts) / folder)


def default_served_version() -> str | None:
    """The version the process-wide settings say to serve, or ``None`` when no parameter is configured."""
    settings = get_settings()
    if not settings.model_version_parameter:
        return None
    return version_source_for(settings).current()


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

        return LocalOnnxRanker.from_bundle(bundle, threads=threads)
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

    With ``current_version`` (by default: the served-version parameter of the settings, when one is
    configured) every :meth:`get` compares the wanted version with the built one and rebuilds on a change,
    which is how a promotion reaches warm Lambdas. The lookup is cached by the source (a minute for SSM).
    If the new version cannot be built, or the lookup fails, the current container keeps serving and the
    switch is retried after ``retry_after_s``.
    """

    def __init__(
        self,
        factory: Callable[[], Container] | None = None,
        *,
        current_version: Callable[[], str | None] | None = None,
        retry_after_s: float = 60.0,
    ) -> None:
        if factory is None and current_version is None:
            current_version = default_served_version
        self._factory = factory or default_container
        self._current_version = current_version
        self._retry_after_s = retry_after_s
        self._container: Container | None = None
        self._built_for: str | None = None  # the wanted version the container was built for
        self._tracks_version = False
        self._failed: tuple[str, float] | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether :meth:`get` returns without I/O: built, and not following a served-version parameter."""
        return self._container is not None and not self._tracks_version

    def get(self) -> Container:
        wanted = self._wanted_version()
        container = self._container
        if container is not None and (wanted is None or wanted == self._built_for):
            return container
        with self._lock:
            container = self._container
            if container is not None and (wanted is None or wanted == self._built_for):
                return container
            if container is None:
                self._container = self._factory()
                self._built_for = wanted
                return self._container
            assert wanted is not None
            failed = self._failed
            if (
                failed is not None
                and failed[0] == wanted
                and time.monotonic() - failed[1] < self._retry_after_s
            ):
                return container
            try:
                self._container = self._factory()
            except ShopRecError as exc:
                log.error(
                    "cannot switch to model version %s, still serving %s: %s",
                    wanted,
                    container.model_version,
                    exc,
                )
                self._failed = (wanted, time.monotonic())
                return container
            log.info("switched from model version %s to %s", container.model_version, wanted)
            self._built_for = wanted
            self._failed = None
            return self._container

    def _wanted_version(self) -> str | None:
        if self._current_version is None:
            return None
        try:
            wanted = self._current_version()
        except ShopRecError as exc:
            if self._container is None:
                raise
            log.warning(
                "cannot look up the served model version, still serving %s: %s",
                self._container.model_version,
                exc,
            )
            return None
        if wanted is not None:
            self._tracks_version = True
        return wanted


def default_container() -> Container:
    """The container for the process-wide settings (``SHOPREC_*`` environment variables)."""
    return build_container(get_settings())
