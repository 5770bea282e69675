"""The catalogue as serving sees it: item id ↔ index maps, display text and numpy arrays for filtering.

Built once per bundle (:meth:`CatalogIndex.from_bundle`); every request reads it, nothing writes it.
Filters and facets work on integer codes so that a mask over the whole catalogue costs microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from shoprec.artifacts import Bundle

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TITLE_MAX_CHARS = 60
"""Titles quoted in reasons are cut to this many characters (an ellipsis included)."""


def shorten(text: str, max_chars: int = TITLE_MAX_CHARS) -> str:
    """``text`` on one line, cut at a word boundary to at most ``max_chars`` characters plus ``…``."""
    text = " ".join(text.split()).rstrip(".")
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-/|(") + "…"


def is_given(value: str | None) -> bool:
    """Whether a filter value filters anything: ``None`` and blank strings mean "no filter"."""
    return value is not None and bool(value.strip())


def name_key(text: str) -> str:
    """Case- and whitespace-insensitive form of a brand or category name used for matching."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True, eq=False)
class CatalogIndex:
    """Item ids, display text and filter codes of every item of a bundle, by internal item index.

    ``categories[i]`` is item ``i``'s category path (root first); its leaf is the last name.  Brands and
    category names are matched case-insensitively.  ``brand_codes`` / ``leaf_codes`` index into
    ``brand_names`` / ``leaf_names`` and are ``-1`` where the item has no brand / no category.
    """

    item_ids: list[str]
    index_of: dict[str, int]
    titles: list[str]
    short_titles: list[str]
    brands: list[str]
    descriptions: list[str]
    categories: list[tuple[str, ...]]
    brand_names: list[str]
    brand_codes: npt.NDArray[np.int32]
    leaf_names: list[str]
    leaf_codes: npt.NDArray[np.int32]
    id_rank: IntArray
    """Each item's position when the item ids are sorted as strings: the final tie-break of every list."""
    _by_category: dict[str, IntArray]
    _by_brand: dict[str, IntArray]

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> CatalogIndex:
        """Index ``bundle.item_ids`` with ``bundle.catalog`` (items without metadata get blanks)."""
        return cls.build(bundle.item_ids, bundle.catalog or {})

    @classmethod
    def build(cls, item_ids: Sequence[str], catalog: Mapping[str, Mapping[str, Any]]) -> CatalogIndex:
        """Index ``item_ids`` (position = index) with rows ``{title, brand, categories, description}``."""
        ids = list(item_ids)
        titles: list[str] = []
        brands: list[str] = []
        descriptions: list[str] = []
        paths: list[tuple[str, ...]] = []
        for item_id in ids:
            row = catalog.get(item_id) or {}
            titles.append(_text(row.get("title")))
            brands.append(_text(row.get("brand")))
            descriptions.append(_text(row.get("description")))
            paths.append(_category_path(row.get("categories")))

        brand_names, brand_codes = _codes(brands)
        leaf_names, leaf_codes = _codes([p[-1] if p else "" for p in paths])
        by_category: dict[str, list[int]] = {}
        for i, path in enumerate(paths):
            for key in {name_key(name) for name in path}:
                by_category.setdefault(key, []).append(i)
        by_brand: dict[str, list[int]] = {}
        for i, brand in enumerate(brands):
            if brand:
                by_brand.setdefault(name_key(brand), []).append(i)
        return cls(
            item_ids=ids,
            index_of={item_id: i for i, item_id in enumerate(ids)},
            titles=titles,
            short_titles=[shorten(t) for t in titles],
            brands=brands,
            descriptions=descriptions,
            categories=paths,
            brand_names=brand_names,
            brand_codes=brand_codes,
            leaf_names=leaf_names,
            leaf_codes=leaf_codes,
            id_rank=_ranks_of(ids),
            _by_category={k: np.asarray(v, dtype=np.int64) for k, v in by_category.items()},
            _by_brand={k: np.asarray(v, dtype=np.int64) for k, v in by_brand.items()},
        )

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self, item_id: str) -> int | None:
        """Internal index of ``item_id``; ``None`` when the bundle does not know it."""
        return self.index_of.get(item_id)

    def indices(self, item_ids: Iterable[str]) -> IntArray:
        """Indices of the known ids among ``item_ids``, in their order (unknown ids are skipped)."""
        found = [i for i in map(self.index_of.get, item_ids) if i is not None]
        return np.asarray(found, dtype=np.int64)

    def unknown(self, item_ids: Iterable[str]) -> list[str]:
        """The ids among ``item_ids`` the bundle does not know, each once, in order of first appearance."""
        return list(dict.fromkeys(i for i in item_ids if i not in self.index_of))

    def title(self, i: int) -> str:
        return self.titles[i]

    def short_title(self, i: int) -> str:
        """The title cut for quoting in a reason (falls back to the item id when the item has none)."""
        return self.short_titles[i] or f"item {self.item_ids[i]}"

    def leaf_category(self, i: int) -> str:
        """The most specific category name of item ``i`` (``""`` when it has none)."""
        code = int(self.leaf_codes[i])
        return self.leaf_names[code] if code >= 0 else ""

    def mask_for(self, category: str | None = None, brand: str | None = None) -> BoolArray:
        """Items matching both filters: ``category`` matches any level of the path, ``brand`` exactly;
        both case-insensitively.  ``None`` (or blank) means no filter; an unknown name matches nothing."""
        mask = np.ones(self.n_items, dtype=np.bool_)
        for value, table in ((category, self._by_category), (brand, self._by_brand)):
            if value is None or not value.strip():
                continue
            keep = np.zeros(self.n_items, dtype=np.bool_)
            hits = table.get(name_key(value))
            if hits is not None:
                keep[hits] = True
            mask &= keep
        return mask

    def facet_counts(self, items: npt.ArrayLike, limit: int = 20) -> dict[str, dict[str, int]]:
        """Brand and leaf-category counts over ``items``: ``{"brand": {name: n}, "category": {...}}``.

        Each facet keeps its ``limit`` largest counts, ordered by (-count, name); items without a brand
        or category are not counted.
        """
        idx = np.asarray(items, dtype=np.int64)
        return {
            "brand": _top_counts(self.brand_codes[idx], self.brand_names, limit),
            "category": _top_counts(self.leaf_codes[idx], self.leaf_names, limit),
        }


def _ranks_of(ids: Sequence[str]) -> IntArray:
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _category_path(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return ()
    return tuple(name.strip() for name in value if isinstance(name, str) and name.strip())


def _codes(values: Sequence[str]) -> tuple[list[str], npt.NDArray[np.int32]]:
    """Integer codes of ``values`` by case-insensitive name; ``""`` gets ``-1``.  A name's display form is
    its first spelling."""
    names: list[str] = []
    code_of: dict[str, int] = {}
    codes = np.full(len(values), -1, dtype=np.int32)
    for i, value in enumerate(values):
        if not value:
            continue
        key = name_key(value)
        code = code_of.get(key)
        if code is None:
            code = code_of[key] = len(names)
            names.append(value)
        codes[i] = code
    return names, codes


def _top_counts(codes: npt.NDArray[np.int32], names: list[str], limit: int) -> dict[str, int]:
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    present = np.flatnonzero(counts)
    order = sorted(present.tolist(), key=lambda c: (-int(counts[c]), names[c]))
    return {names[c]: int(counts[c]) for c in order[:limit]}
