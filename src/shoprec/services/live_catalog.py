"""The live catalogue: the bundle's catalogue with the items written since training over it.

``PUT /v1/items/{id}`` and ``DELETE /v1/items/{id}`` (and the same messages on the ingest queue) write
:class:`~shoprec.items.CatalogItem` rows to the item store, beside the user state. Every process serves a
:class:`CatalogView` of bundle + store, rebuilt when the store's version changes:

- the catalogue (:meth:`CatalogIndex.with_overlay`): new items appended, edited fields, prices, and the
  items that may not be served (out of stock or delisted: every mask leaves them out);
- the recommendation pipeline over it (:func:`shoprec.pipeline.live.extend_pipeline`), with the new and
  re-worded items' text embeddings, encoded here by the bundle's sentence encoder;
- the search index over it (:func:`shoprec.search.live.live_search`), built on the first search of a view.

Freshness: a process asks the store for its version at most every ``refresh_s`` (0.5 s) while it serves
requests, and at once after its own writes, so a change is served everywhere within about half a second
(plus the rebuild: milliseconds, and a few ms of encoding per new or re-worded item). When the store
fails, the last view keeps serving (logged). The view's ``tag`` goes into every cache key, so a list
cached before a change is never served after it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from shoprec.catalog import CatalogIndex
from shoprec.errors import BackendUnavailableError, NotFoundError
from shoprec.items import CatalogItem
from shoprec.ports import ItemStore
from shoprec.text.items import item_text

if TYPE_CHECKING:
    from shoprec.pipeline import RecommendationPipeline
    from shoprec.search.bm25 import SearchRecall
    from shoprec.search.dense import QueryEncoder

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
DEFAULT_REFRESH_S = 0.5


@dataclass(eq=False)
class CatalogView:
    """One consistent state of the live catalogue: its version, the catalogue, the pipeline over it, the
    items searched by their live text (``external``) and every item's text embedding (``None`` without
    text embeddings). ``tag`` (12 hex digits, ``""`` for the bundle alone) names the view in cache keys."""

    version: str
    catalog: CatalogIndex
    pipeline: RecommendationPipeline | None
    external: tuple[int, ...] = ()
    vectors: F32 | None = None
    tag: str = ""
    _search: SearchRecall | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def search(self, base: Callable[[], SearchRecall]) -> SearchRecall:
        """The search index of this view, built on first use from the bundle's (``base()``)."""
        if self._search is None:
            with self._lock:
                if self._search is None:
                    index = base()
                    if self.external or self.catalog.n_items != self.catalog.n_base:
                        from shoprec.search.live import live_search

                        index = live_search(index, self.catalog, self.external, self.vectors)
                    self._search = index
        return self._search


class LiveCatalog:
    """Serves :class:`CatalogView` s of ``base`` (the bundle's catalogue) with ``store``'s items over it.

    ``pipeline``: the bundle's recommendation pipeline (``None`` for the ingest function, which only
    checks item ids); ``search``: builds the bundle's search index (its sentence encoder embeds new texts);
    ``item_max_length``: the token limit the bundle's item texts were embedded with.
    """

    def __init__(
        self,
        base: CatalogIndex,
        store: ItemStore | None,
        *,
        pipeline: RecommendationPipeline | None = None,
        search: Callable[[], SearchRecall] | None = None,
        item_max_length: int = 128,
        refresh_s: float = DEFAULT_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_s < 0:
            raise ValueError(f"refresh_s must be >= 0, got {refresh_s}")
        self.base = base
        self.store = store
        self.base_pipeline = pipeline
        self._search_factory = search
        self._base_search: SearchRecall | None = None
        self.item_max_length = item_max_length
        self.refresh_s = refresh_s
        self.clock = clock
        self._view = CatalogView("", base, pipeline)
        self._checked = -float("inf")
        self._lock = threading.Lock()  # one refresh at a time; readers never wait for it
        self._search_lock = threading.Lock()
        self._vectors: dict[tuple[str, str], F32] = {}

    # --- reads ------------------------------------------------------------------------------------------

    def view(self) -> CatalogView:
        """The current view, refreshed first when ``refresh_s`` has passed since the last look."""
        if self.store is not None and self.clock() - self._checked >= self.refresh_s:
            self.refresh()
        return self._view

    @property
    def catalog(self) -> CatalogIndex:
        return self.view().catalog

    def item(self, item_id: str) -> CatalogItem | None:
        """The item as served (the store's copy over the bundle's); ``None`` when neither has it."""
        catalog = self.view().catalog
        i = catalog.index(item_id)
        if i is None:
            return None
        return CatalogItem.from_row({"item_id": item_id, **catalog.row(i)})

    def stored(self, item_id: str) -> CatalogItem:
        """The item store's copy of ``item_id``; ``NotFoundError`` when the store has none."""
        item = self._require_store().get(item_id)
        if item is None:
            raise NotFoundError(f"the live catalogue has no item {item_id!r}", field="item_id")
        return item

    def base_search(self) -> SearchRecall:
        """The bundle's search index (built once, on first use; concurrent first searches wait for one
        build)."""
        if self._base_search is None:
            with self._search_lock:
                if self._base_search is None:
                    if self._search_factory is None:
                        from shoprec.search.bm25 import Bm25Search

                        self._search_factory = lambda: Bm25Search.build(self.base)
                    self._base_search = self._search_factory()
        return self._base_search

    def search(self) -> SearchRecall:
        return self.view().search(self.base_search)

    # --- writes -----------------------------------------------------------------------------------------

    def upsert(self, item: CatalogItem) -> bool:
        """Store ``item`` and serve it from now on in this process (others within ``refresh_s``); ``True``
        when the store did not hold it before. ``BackendUnavailableError`` when the store fails."""
        created = self._require_store().put(item)
        self.refresh(force=True)
        return created

    def delist(self, item_id: str) -> bool:
        """Hide ``item_id`` everywhere (a tombstone in the store); ``True`` if that changed anything."""
        changed = self._require_store().delist(item_id)
        self.refresh(force=True)
        return changed

    def refresh(self, *, force: bool = False) -> None:
        """Rebuild the view when the store's version changed. A failing store keeps the last view (and is
        asked again after ``refresh_s``); with ``force`` (after a write) its error propagates."""
        if self.store is None:
            return
        with self._lock:
            if not force and self.clock() - self._checked < self.refresh_s:
                return  # another thread refreshed while this one waited
            try:
                version = self.store.version()
                if version != self._view.version:
                    self._view = self._build(version, self.store.list())
            except BackendUnavailableError as exc:
                if force:
                    raise
                log.warning("item store unavailable, serving the catalogue last read: %s", exc)
            finally:
                self._checked = self.clock()

    # --- building a view --------------------------------------------------------------------------------

    def _build(self, version: str, items: Sequence[CatalogItem]) -> CatalogView:
        t0 = time.perf_counter()
        if not items:
            return CatalogView(version, self.base, self.base_pipeline)
        catalog = self.base.with_overlay(items)
        external = tuple(i for i in range(catalog.n_items) if self._text_changed(catalog, i))
        vectors: F32 | None = None
        pipeline = self.base_pipeline
        if pipeline is not None:
            from shoprec.pipeline.live import extend_pipeline

            text: dict[int, F32] = {}
            if pipeline.content.vectors is not None:
                text = self._embed(catalog, external)
            pipeline = extend_pipeline(pipeline, catalog, text)
            vectors = pipeline.content.vectors
        digest = hashlib.sha256(version.encode("utf-8")).hexdigest()[:12]
        log.info(
            "live catalogue %s: %d items (%d added, %d re-worded, %d not servable) in %.1f ms",
            digest,
            catalog.n_items,
            catalog.n_items - catalog.n_base,
            sum(1 for i in external if i < catalog.n_base),
            int((~catalog.available).sum()),
            (time.perf_counter() - t0) * 1000,
        )
        return CatalogView(version, catalog, pipeline, external, vectors, tag=digest)

    def _text_changed(self, catalog: CatalogIndex, i: int) -> bool:
        """Whether item ``i`` is new or its searchable text differs from the bundle's."""
        if i >= catalog.n_base:
            return True
        base = self.base
        return (
            catalog.titles[i] != base.titles[i]
            or catalog.brands[i] != base.brands[i]
            or catalog.categories[i] != base.categories[i]
            or catalog.descriptions[i] != base.descriptions[i]
        )

    def _embed(self, catalog: CatalogIndex, indices: Sequence[int]) -> dict[int, F32]:
        """The text embedding of each item at ``indices`` (new or re-worded) whose embedded text is not the
        bundle's, encoding only texts not encoded before (by this process)."""
        texts = {i: item_text(catalog.titles[i], catalog.brands[i], catalog.categories[i]) for i in indices}
        base = self.base
        texts = {  # a bundle item whose embedded text is unchanged (its description was edited) keeps its own
            i: text
            for i, text in texts.items()
            if i >= base.n_items or text != item_text(base.titles[i], base.brands[i], base.categories[i])
        }
        indices = list(texts)
        keys = {i: (catalog.item_ids[i], text) for i, text in texts.items()}
        todo = [i for i in indices if keys[i] not in self._vectors]
        if todo:
            encoder = self._encoder()
            if encoder is None:  # no encoder: the items are found by their words alone
                dim = self.base_pipeline.content.vectors.shape[1]  # type: ignore[union-attr]
                encoded = np.zeros((len(todo), dim), dtype=np.float32)
            else:
                encoded = encoder.encode([texts[i] for i in todo], max_length=self.item_max_length)
            for i, vec in zip(todo, encoded, strict=True):
                self._vectors[keys[i]] = np.asarray(vec, dtype=np.float32)
        wanted = set(keys.values())
        self._vectors = {key: vec for key, vec in self._vectors.items() if key in wanted}
        return {i: self._vectors[keys[i]] for i in indices}

    def _encoder(self) -> QueryEncoder | None:
        """The search's sentence encoder; ``None`` when semantic search is off (logged)."""
        from shoprec.search.hybrid import HybridSearch

        index = self.base_search()
        if not isinstance(index, HybridSearch):
            log.warning(
                "semantic search is off (SHOPREC_SEARCH_SEMANTIC): new item texts are not embedded, so the "
                "content channel and similar items cannot place them"
            )
            return None
        return index.semantic.encoder

    def _require_store(self) -> ItemStore:
        if self.store is None:
            raise RuntimeError("this catalogue has no item store")
        return self.store
