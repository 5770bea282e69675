"""The composition root: the only place that turns settings into adapters and services.

Each backend is chosen by the prefix of its DSN-style setting (see :mod:`shoprec.settings`); adapter
modules are imported only when chosen, so a Lambda that uses DynamoDB never imports sqlite3's adapter
and a local run never imports boto3. Tests build the same graph with other settings, or pass ready
adapters (fakes) for any port; nothing here is patched.

Two graphs are built from the same settings: the API's (:func:`build_container`: ranker, pipeline,
recommendations and events) and the ingest function's (:func:`build_ingest_container`: the catalogue, the
user state and the cache, for the events service alone). The ingest function never builds a ranker, so it
neither loads an ONNX session nor needs ``SHOPREC_RANKER``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from shoprec.artifacts import Bundle, load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.errors import ArtifactError, ShopRecError
from shoprec.pipeline import RecommendationPipeline, build_pipeline
from shoprec.ports import (
    ArtifactStore,
    Cache,
    EventLog,
    InteractionStatsStore,
    ItemStore,
    Ranker,
    RuleStore,
    UserStateStore,
)
from shoprec.recall.online import BlendWeights, OnlineStats
from shoprec.resilience import BreakerCache, BreakerRanker, CircuitBreaker
from shoprec.services.events import DEFAULT_AUDIT_KEY, EventService
from shoprec.services.experiments import ExperimentServices
from shoprec.services.live_catalog import LiveCatalog
from shoprec.services.merchandising import MerchandisingService
from shoprec.services.recommendation import RecommendationService
from shoprec.settings import Settings, get_settings

if TYPE_CHECKING:
    from shoprec.experiments import ExperimentSpec, VariantSpec
    from shoprec.search.bm25 import SearchRecall

log = logging.getLogger(__name__)


class ModelVersionSource(Protocol):
    """Where the version to serve is looked up (an SSM parameter: ``shoprec.adapters.aws.ssm_version``)."""

    def current(self) -> str: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, eq=False)
class IngestContainer:
    """What the ingest function needs, built once per execution environment: the catalogue (events naming
    unknown items are refused), the live catalogue over it (items written since training; the ingest
    queue writes them too), the user-state store, the cache (a user's lists are invalidated) and the
    events service over them. No ranker, pipeline or search index.

    ``catalog`` is the bundle's catalogue; ``live.catalog`` the one served now; ``stats`` the live
    co-occurrence and trending counts the events update (``None`` with ``online_updates`` off)."""

    settings: Settings
    artifacts: ArtifactStore
    bundle: Bundle
    catalog: CatalogIndex
    state: UserStateStore
    cache: Cache
    events: EventService
    live: LiveCatalog
    stats: InteractionStatsStore | None

    @property
    def model_version(self) -> str:
        return self.bundle.model_version

    def backends(self) -> dict[str, str]:
        """``describe()`` of every backend."""
        return {
            "artifacts": self.artifacts.describe(),
            "state": self.state.describe(),
            "cache": self.cache.describe(),
        }


@dataclass(frozen=True, eq=False)
class Container(IngestContainer):
    """Everything a request needs, built once per process (per Lambda execution environment): the ingest
    graph plus the ranker, the recommendation pipeline and the service over it.

    ``experiments`` serves each user their experiment variant's service (``docs/experiments.md``);
    ``recommendations`` is the default variant's (the only one without an experiment)."""

    ranker: Ranker
    pipeline: RecommendationPipeline
    recommendations: RecommendationService
    merchandising: MerchandisingService
    experiments: ExperimentServices

    def backends(self) -> dict[str, str]:
        """``describe()`` of every backend, for ``/v1/health``."""
        return {**super().backends(), "ranker": self.ranker.describe()}


def _search_factory(bundle: Bundle, catalog: CatalogIndex, settings: Settings) -> Callable[[], SearchRecall]:
    """Builds the search index on the first search; imported then, since bm25s, tokenizers and the text
    encoder would otherwise add to every cold start."""

    def build() -> SearchRecall:
        from shoprec.search.build import build_search

        return build_search(
            bundle, catalog, semantic=settings.search_semantic, threads=settings.ranker_threads
        )

    return build


def build_container(
    settings: Settings,
    *,
    version: str | None = None,
    artifacts: ArtifactStore | None = None,
    state: UserStateStore | None = None,
    cache: Cache | None = None,
    ranker: Ranker | None = None,
    rules: RuleStore | None = None,
    items: ItemStore | None = None,
    merchandising: bool = True,
    event_log: EventLog | None = None,
    stats: InteractionStatsStore | None = None,
    stats_clock: Callable[[], float] = time.time,
) -> Container:
    """Build the API's object graph for ``settings``; a port passed explicitly replaces the configured one.

    Merchandising rules and the live catalogue's items live beside the user state (:func:`rule_store_for`,
    :func:`~shoprec.adapters.item_stores.item_store_for`); with a ``state`` passed in and no ``rules`` /
    ``items``, in process. ``merchandising=False`` builds a service that applies no rules (offline
    evaluation: ``shoprec search-eval`` scores the lists without them); the admin routes still work.

    ``version`` is the served version, already looked up (see :func:`artifact_store_for`). Loads (and,
    through the artifact store, verifies) the bundle. Raises ``ArtifactError`` for a missing or damaged
    bundle and ``BackendUnavailableError`` when a backend cannot be reached.
    """
    base = build_ingest_container(
        settings,
        version=version,
        artifacts=artifacts,
        state=state,
        cache=cache,
        items=items,
        event_log=event_log,
        stats=stats,
        stats_clock=stats_clock,
    )
    ranker = ranker or ranker_for(
        settings.ranker,
        base.bundle,
        threads=settings.ranker_threads,
        variant=settings.ranker_variant,
        timeout_s=settings.latency_budget_ms / 1000,
        breaker=_breaker("ranker", settings),
        index=base.catalog.index_of,
    )
    online = _online_stats(settings, base.stats, stats_clock)
    pipeline = build_pipeline(
        base.bundle,
        base.catalog,
        ranker,
        candidates=settings.candidates,
        latency_budget_ms=settings.latency_budget_ms,
        online=online,
    )
    rule_service = MerchandisingService(
        rules or rule_store_for(settings.state if state is None else None), refresh_s=settings.rules_refresh_s
    )
    text = base.bundle.pipeline.text
    search = _once(_search_factory(base.bundle, base.catalog, settings))
    live = LiveCatalog(
        base.catalog,
        base.live.store,
        pipeline=pipeline,
        search=search,
        item_max_length=text.item_max_length if text is not None else 128,
        refresh_s=settings.catalog_refresh_s,
    )
    recommendations = RecommendationService(
        pipeline,
        base.state,
        base.cache,
        merchandising=rule_service if merchandising else None,
        model_version=base.bundle.model_version,
        version_tag=base.bundle.manifest.short_version,
        cache_ttl_s=settings.cache_ttl_s,
        live=live,
    )
    experiments = ExperimentServices(None, {"": recommendations})
    if settings.experiment is not None:
        from shoprec.experiments import parse_experiment

        spec = parse_experiment(settings.experiment)
        variants = {
            v.name: _variant_service(
                settings, v, spec, base=base, ranker=ranker, pipeline=pipeline, live=live, search=search,
                rules=rule_service if merchandising else None, online=online,
            )
            for v in spec.variants
        }  # fmt: skip
        if base.events.event_log is None:
            log.warning("experiment %s runs without an event log: its exposures are not logged", spec.name)
        experiments = ExperimentServices(spec, variants, exposure_log=base.events.event_log)
        recommendations = experiments.default
        pipeline, live = recommendations.base_pipeline, recommendations.live
    graph = {f.name: getattr(base, f.name) for f in fields(IngestContainer)}
    graph["live"] = live
    graph["events"] = EventService(
        lambda: live.catalog,
        base.state,
        base.cache,
        audit_key=audit_key_of(settings),
        event_log=base.events.event_log,
        stats=base.stats,
        clock=stats_clock,
    )
    return Container(
        **graph,
        ranker=ranker,
        pipeline=pipeline,
        recommendations=recommendations,
        merchandising=rule_service,
        experiments=experiments,
    )


def _variant_service(
    settings: Settings,
    variant: VariantSpec,
    experiment: ExperimentSpec,
    *,
    base: IngestContainer,
    ranker: Ranker,
    pipeline: RecommendationPipeline,
    live: LiveCatalog,
    search: Callable[[], SearchRecall],
    rules: MerchandisingService | None,
    online: OnlineStats | None,
) -> RecommendationService:
    """The recommendation service of an experiment's ``variant``. A variant that changes nothing serves the
    process's pipeline; one that changes its fusion, recall weights or budget, a pipeline of its own over
    the same models; one with its own ``artifacts`` or ``ranker``, its own bundle and ranker too. Every
    variant shares the state, cache, item store, rules and live counts (``online``), and its cache keys carry
    its fingerprint."""
    from shoprec.experiments import variant_pipeline_spec

    bundle, catalog = base.bundle, base.catalog
    if variant.artifacts is not None:
        store = artifact_store_at(variant.artifacts, settings)
        bundle = load_bundle(store.local_path(), verify=False)
        catalog = CatalogIndex.from_bundle(bundle)
        search = _once(_search_factory(bundle, catalog, settings))
    if variant.artifacts is not None or variant.ranker is not None:
        ranker = ranker_for(
            variant.ranker or settings.ranker,
            bundle,
            threads=settings.ranker_threads,
            variant=settings.ranker_variant,
            timeout_s=settings.latency_budget_ms / 1000,
            breaker=_breaker(f"ranker-{variant.name}", settings),
            index=catalog.index_of,
        )
    if variant.changes_pipeline:
        try:
            spec = variant_pipeline_spec(bundle.pipeline, variant)
        except ValueError as exc:
            raise ArtifactError(f"{bundle.path}: {exc}") from exc
        pipeline = build_pipeline(
            bundle,
            catalog,
            ranker,
            candidates=variant.candidates or settings.candidates,
            latency_budget_ms=settings.latency_budget_ms,
            spec=spec,
            online=online,
        )
        text = bundle.pipeline.text
        live = LiveCatalog(
            catalog,
            base.live.store,
            pipeline=pipeline,
            search=search,
            item_max_length=text.item_max_length if text is not None else 128,
            refresh_s=settings.catalog_refresh_s,
        )
    return RecommendationService(
        pipeline,
        base.state,
        base.cache,
        merchandising=rules,
        model_version=bundle.model_version,
        version_tag=bundle.manifest.short_version,
        cache_ttl_s=settings.cache_ttl_s,
        live=live,
        cache_scope=f"{experiment.name}/{variant.name}/{variant.fingerprint}",
    )


def _once(build: Callable[[], T]) -> Callable[[], T]:
    """``build`` called on first use only, whoever calls (the variants of a bundle share its search index)."""
    lock = threading.Lock()
    built: list[T] = []

    def get() -> T:
        with lock:
            if not built:
                built.append(build())
            return built[0]

    return get


def build_ingest_container(
    settings: Settings,
    *,
    version: str | None = None,
    artifacts: ArtifactStore | None = None,
    state: UserStateStore | None = None,
    cache: Cache | None = None,
    items: ItemStore | None = None,
    event_log: EventLog | None = None,
    stats: InteractionStatsStore | None = None,
    stats_clock: Callable[[], float] = time.time,
) -> IngestContainer:
    """Build the ingest function's object graph for ``settings``: no ranker, pipeline or search index, so
    ``settings.ranker`` is never read. Raises as :func:`build_container` does. The event log is
    ``event_log``, else the configured one (:func:`event_log_for`; with a ``state`` passed in, only an
    explicitly configured one). The interaction stats are ``stats``, else the ones beside the state (with
    a ``state`` passed in, in process), dated by ``stats_clock``; none with ``online_updates`` off."""
    from shoprec.adapters.item_stores import item_store_for

    store, bundle, catalog = _served_catalogue(settings, version, artifacts)
    items = items or item_store_for(
        settings.state if state is None else None, read_timeout_s=settings.catalog_read_timeout_s
    )
    log = event_log if event_log is not None else event_log_for(settings, beside_state=state is None)
    if stats is None and settings.online_updates:
        stats = stats_store_for(settings, beside_state=state is None)
    state = state or state_store_for(settings.state, read_timeout_s=settings.state_read_timeout_s)
    cache = cache or configured_cache(settings)
    live = LiveCatalog(catalog, items, refresh_s=settings.catalog_refresh_s)
    return IngestContainer(
        settings=settings,
        artifacts=store,
        bundle=bundle,
        catalog=catalog,
        state=state,
        cache=cache,
        events=EventService(
            lambda: live.catalog,
            state,
            cache,
            audit_key=audit_key_of(settings),
            event_log=log,
            stats=stats,
            clock=stats_clock,
        ),
        live=live,
        stats=stats,
    )


def _served_catalogue(
    settings: Settings, version: str | None, artifacts: ArtifactStore | None
) -> tuple[ArtifactStore, Bundle, CatalogIndex]:
    store = artifacts or artifact_store_for(settings, version)
    # The store verified every file's checksum when it handed out the folder; hashing twice only slows
    # the cold start.
    bundle = load_bundle(store.local_path(), verify=False)
    return store, bundle, CatalogIndex.from_bundle(bundle)


def configured_cache(settings: Settings) -> Cache:
    """The cache ``settings`` configure, as both graphs use it."""
    return cache_for(
        settings.cache,
        max_entries=settings.cache_max_entries,
        timeout_s=settings.cache_timeout_s,
        breaker=_breaker("cache", settings),
        iam_user=settings.cache_iam_user,
        cache_name=settings.cache_name,
    )


def artifact_store_for(settings: Settings, version: str | None = None) -> ArtifactStore:
    """The store of the bundle to serve: ``settings.artifacts`` itself, or, with a served-version parameter,
    the folder of ``version`` under it (``s3://bucket/models`` and ``<hex>`` → ``s3://bucket/models/<hex>``).

    ``version`` is the parameter's value as the caller already looked it up (:class:`LazyContainer` does,
    to know when to rebuild): looking it up again here could name another version than the one the caller
    records as built. Without it the parameter is read now.
    """
    location = settings.artifacts
    if settings.model_version_parameter:
        served = version if version is not None else version_source_for(settings).current()
        location = served_location(location, served)
    return artifact_store_at(location, settings)


def artifact_store_at(location: str, settings: Settings) -> ArtifactStore:
    """The store of the bundle at ``location`` (a folder or ``s3://bucket/prefix``)."""
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


def state_store_for(dsn: str, *, read_timeout_s: float = 0.1) -> UserStateStore:
    """The user-state store of ``dsn``; a DynamoDB one reads on the request path with ``read_timeout_s``."""
    if dsn.startswith("dynamodb://"):
        from shoprec.adapters.aws.dynamodb_state import DynamoDbUserStateStore

        return DynamoDbUserStateStore(dsn.removeprefix("dynamodb://"), read_timeout_s=read_timeout_s)
    if dsn.startswith("sqlite:///"):
        from shoprec.adapters.local.sqlite_state import SqliteUserStateStore

        return SqliteUserStateStore(Path(dsn.removeprefix("sqlite:///")))
    raise ValueError(f"state: unknown backend {dsn!r}")


def stats_store_for(settings: Settings, *, beside_state: bool = True) -> InteractionStatsStore:
    """The live interaction counts beside the user state (``beside_state``), else in process; DynamoDB reads
    them on the request path with the state's read timeout."""
    from shoprec.adapters.interaction_stats import interaction_stats_for

    return interaction_stats_for(
        settings.state if beside_state else None,
        half_life_s=settings.online_half_life_s,
        read_timeout_s=settings.state_read_timeout_s,
    )


def _online_stats(
    settings: Settings, stats: InteractionStatsStore | None, clock: Callable[[], float]
) -> OnlineStats | None:
    """What serving reads of ``stats``: cached for ``online_refresh_s``, blended with the settings'
    weights."""
    if stats is None:
        return None
    weights = BlendWeights(
        itemcf=settings.online_itemcf_weight,
        popularity=settings.online_popularity_weight,
        min_count=settings.online_min_count,
    )
    return OnlineStats(stats, refresh_s=settings.online_refresh_s, weights=weights, clock=clock)


def event_log_for(settings: Settings, *, beside_state: bool = True) -> EventLog | None:
    """The event log ``settings.event_log`` names (``None`` for ``none``). Unset: with ``beside_state`` and
    a sqlite state file ``dir/name.db``, the folder ``dir/name-events``; otherwise none."""
    dsn = settings.event_log
    if dsn is None:
        if not beside_state or not settings.state.startswith("sqlite:///"):
            return None
        from shoprec.adapters.local.jsonl_event_log import JsonlEventLog

        db = Path(settings.state.removeprefix("sqlite:///"))
        return JsonlEventLog(db.with_name(db.stem + "-events"))
    if dsn == "none":
        return None
    if dsn.startswith("firehose://"):
        from shoprec.adapters.aws.firehose_event_log import FirehoseEventLog

        return FirehoseEventLog(dsn.removeprefix("firehose://"))
    if dsn.startswith("file:///"):
        from shoprec.adapters.local.jsonl_event_log import JsonlEventLog

        return JsonlEventLog(Path(dsn.removeprefix("file://")))
    raise ValueError(f"event_log: unknown backend {dsn!r}")


def rule_store_for(dsn: str | None) -> RuleStore:
    """The merchandising rules beside the user state of ``dsn`` (same sqlite file, or same DynamoDB table
    under its own partition); ``None``: in process only."""
    if dsn is None:
        from shoprec.adapters.local.memory_rules import MemoryRuleStore

        return MemoryRuleStore()
    if dsn.startswith("dynamodb://"):
        from shoprec.adapters.aws.dynamodb_rules import DynamoDbRuleStore

        return DynamoDbRuleStore(dsn.removeprefix("dynamodb://"))
    if dsn.startswith("sqlite:///"):
        from shoprec.adapters.local.sqlite_rules import SqliteRuleStore

        return SqliteRuleStore(Path(dsn.removeprefix("sqlite:///")))
    raise ValueError(f"rules: unknown backend {dsn!r}")


def audit_key_of(settings: Settings) -> bytes:
    """The key that names users in deletion audit records: ``settings.audit_key``, else the built-in one."""
    if settings.audit_key is None:
        return DEFAULT_AUDIT_KEY
    return settings.audit_key.get_secret_value().encode("utf-8")


def _breaker(name: str, settings: Settings) -> CircuitBreaker:
    return CircuitBreaker(name, failure_threshold=settings.breaker_failures, open_s=settings.breaker_open_s)


def cache_for(
    dsn: str,
    *,
    max_entries: int = 10_000,
    timeout_s: float = 0.05,
    breaker: CircuitBreaker | None = None,
    iam_user: str | None = None,
    cache_name: str | None = None,
) -> Cache:
    """The cache of ``dsn``; a remote one gets ``timeout_s`` and, when given, ``breaker`` in front. With
    ``iam_user`` (and ``cache_name``) a Redis cache is connected to as that ElastiCache user, with IAM
    authentication."""
    if dsn.startswith(("redis://", "rediss://")):
        from shoprec.adapters.aws.redis_cache import RedisCache

        if iam_user is not None and cache_name is not None:
            from shoprec.adapters.aws.elasticache_auth import ElastiCacheIamAuth, iam_redis_client

            auth = ElastiCacheIamAuth(iam_user, cache_name)
            redis_cache = RedisCache(iam_redis_client(dsn, auth, timeout_s=timeout_s))
        else:
            redis_cache = RedisCache(dsn, socket_timeout_s=timeout_s)
        return BreakerCache(redis_cache, breaker) if breaker is not None else redis_cache
    if dsn == "memory://":
        from shoprec.adapters.local.memory_cache import MemoryCache

        return MemoryCache(max_entries=max_entries)
    raise ValueError(f"cache: unknown backend {dsn!r}")


def ranker_for(
    dsn: str,
    bundle: Bundle,
    *,
    threads: int = 1,
    variant: str | None = None,
    timeout_s: float = 0.15,
    breaker: CircuitBreaker | None = None,
    index: Mapping[str, int] | None = None,
) -> Ranker:
    """The ranker of ``dsn``. The in-process one loads the bundle's ranker ``variant`` (``None``: its
    default) and finds ids with ``index`` (the bundle catalogue's ``index_of``) when given; a remote one
    reads with ``timeout_s`` (the latency budget; each call's deadline is its own ``timeout_s``) and, when
    given, gets ``breaker`` in front."""
    if dsn == "onnx":
        from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker

        return LocalOnnxRanker.from_bundle(bundle, threads=threads, variant=variant, index=index)
    remote: Ranker
    if dsn.startswith("sagemaker://"):
        from shoprec.adapters.aws.sagemaker_ranker import SageMakerRanker

        remote = SageMakerRanker(dsn.removeprefix("sagemaker://"), timeout_s=timeout_s)
    elif dsn.startswith(("http://", "https://")):
        from shoprec.adapters.http_ranker import HttpRanker

        remote = HttpRanker(dsn)
    else:
        raise ValueError(f"ranker: unknown backend {dsn!r}")
    return BreakerRanker(remote, breaker) if breaker is not None else remote


class Served(Protocol):
    """A built graph: it knows which model version it serves."""

    @property
    def model_version(self) -> str: ...


G = TypeVar("G", bound=Served)
T = TypeVar("T")


class LazyGraph(Generic[G]):
    """Builds a graph on first use and keeps it: a Lambda cold start pays once, warm calls reuse it.

    ``factory(version)`` builds the graph serving ``version``, the served version as :meth:`get` looked it
    up (``None`` without ``current_version``), so the version is read once per build, not once to decide
    and again to load.

    Thread-safe (sync routes run in a thread pool); a failed build is not cached, so the next request
    tries again (e.g. after the bundle upload finished).

    With ``current_version`` every :meth:`get` compares the wanted version with the built one and rebuilds
    on a change, which is how a promotion reaches warm Lambdas. The lookup is cached by the source (a
    minute for SSM). If the new version cannot be built, or the lookup fails, the current graph keeps
    serving and the switch is retried after ``retry_after_s``.
    """

    def __init__(
        self,
        factory: Callable[[str | None], G] | None = None,
        *,
        current_version: Callable[[], str | None] | None = None,
        retry_after_s: float = 60.0,
    ) -> None:
        if factory is None:  # the process-wide graph, following the settings' served-version parameter
            factory = self._default_factory()
            if current_version is None:
                current_version = default_served_version
        self._factory = factory
        self._current_version = current_version
        self._retry_after_s = retry_after_s
        self._container: G | None = None
        self._built_for: str | None = None  # the wanted version the graph was built for
        self._tracks_version = False
        self._failed: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def _default_factory(self) -> Callable[[str | None], G]:
        """The factory of the process-wide graph, for subclasses that have one."""
        raise TypeError(f"{type(self).__name__} needs a factory")

    @property
    def built(self) -> bool:
        """Whether :meth:`get` returns without I/O: built, and not following a served-version parameter."""
        return self._container is not None and not self._tracks_version

    def get(self) -> G:
        wanted = self._wanted_version()
        container = self._container
        if container is not None and (wanted is None or wanted == self._built_for):
            return container
        with self._lock:
            container = self._container
            if container is not None and (wanted is None or wanted == self._built_for):
                return container
            if container is None:
                built = self._factory(wanted)
                self._container, self._built_for = built, wanted
                return built
            assert wanted is not None
            failed = self._failed
            if (
                failed is not None
                and failed[0] == wanted
                and time.monotonic() - failed[1] < self._retry_after_s
            ):
                return container
            try:
                built = self._factory(wanted)
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
            self._container, self._built_for, self._failed = built, wanted, None
            return built

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


class LazyContainer(LazyGraph[Container]):
    """The API graph, built on first use. Without a factory: from the process-wide settings, following
    their served-version parameter when one is configured."""

    def _default_factory(self) -> Callable[[str | None], Container]:
        return default_container


class LazyIngestContainer(LazyGraph[IngestContainer]):
    """The ingest function's graph, built on first use, as :class:`LazyContainer` builds the API's."""

    def _default_factory(self) -> Callable[[str | None], IngestContainer]:
        return default_ingest_container


def default_container(version: str | None = None) -> Container:
    """The API graph for the process-wide settings (``SHOPREC_*`` environment variables), serving
    ``version`` (see :func:`artifact_store_for`)."""
    return build_container(get_settings(), version=version)


def default_ingest_container(version: str | None = None) -> IngestContainer:
    """The ingest graph for the process-wide settings, serving ``version``."""
    return build_ingest_container(get_settings(), version=version)
