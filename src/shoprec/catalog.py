"""The catalogue as serving sees it: item id ↔ index maps, display text and numpy arrays for filtering.

Built once per bundle (:meth:`CatalogIndex.from_bundle`) and again whenever the live catalogue changes
(:meth:`CatalogIndex.with_overlay`); every request reads one, nothing writes it. Filters and facets work
on integer codes so that a mask over the whole catalogue costs microseconds. Items that are out of stock
or delisted stay in the index (their indices are the models') but are never *servable*: every mask
(:meth:`CatalogIndex.mask_for`) leaves them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from shoprec.artifacts import Bundle
    from shoprec.items import CatalogItem

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray64 = npt.NDArray[np.float64]

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
    available: BoolArray
    """Whether each item may be served (in stock and listed)."""
    listed: BoolArray
    """Whether each item is listed (not delisted: a delisted item is gone; an unlisted one only out of
    stock)."""
    prices: FloatArray64
    """Each item's price, ``nan`` where unknown (a price filter leaves such items out)."""
    n_base: int
    """How many of the items come from the bundle (the models know them); the others were added live."""
    _all_available: bool = field(default=True, init=False, repr=False)

    @property
    def all_available(self) -> bool:
        return self._all_available

    def __post_init__(self) -> None:
        object.__setattr__(self, "_all_available", bool(self.available.all()))

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> CatalogIndex:
        """Index ``bundle.item_ids`` with ``bundle.catalog`` (items without metadata get blanks)."""
        return cls.build(bundle.item_ids, bundle.catalog or {})

    @classmethod
    def build(
        cls, item_ids: Sequence[str], catalog: Mapping[str, Mapping[str, Any]], *, n_base: int | None = None
    ) -> CatalogIndex:
        """Index ``item_ids`` (position = index) with rows ``{title, brand, categories, description, price,
        available, delisted}`` (an item is servable unless ``available`` is false or ``delisted`` true).
        ``n_base``: how many of the ids the bundle's models know (default: all)."""
        ids = list(item_ids)
        titles: list[str] = []
        brands: list[str] = []
        descriptions: list[str] = []
        paths: list[tuple[str, ...]] = []
        prices = np.full(len(ids), np.nan, dtype=np.float64)
        available = np.ones(len(ids), dtype=np.bool_)
        listed = np.ones(len(ids), dtype=np.bool_)
        for i, item_id in enumerate(ids):
            row = catalog.get(item_id) or {}
            titles.append(_text(row.get("title")))
            brands.append(_text(row.get("brand")))
            descriptions.append(_text(row.get("description")))
            paths.append(_category_path(row.get("categories")))
            price = parse_price(row.get("price"))
            if price is not None:
                prices[i] = price
            listed[i] = row.get("delisted") is not True
            available[i] = listed[i] and row.get("available") is not False

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
            available=available,
            listed=listed,
            prices=prices,
            n_base=len(ids) if n_base is None else n_base,
        )

    def row(self, i: int) -> dict[str, Any]:
        """Item ``i``'s catalogue row (what :meth:`build` reads): text fields, price and availability."""
        return {
            "title": self.titles[i],
            "brand": self.brands[i],
            "description": self.descriptions[i],
            "categories": list(self.categories[i]),
            "price": None if math.isnan(self.prices[i]) else float(self.prices[i]),
            "available": bool(self.available[i]) or not bool(self.listed[i]),
            "delisted": not bool(self.listed[i]),
        }

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every item's :meth:`row`, by item id."""
        return {item_id: self.row(i) for i, item_id in enumerate(self.item_ids)}

    def with_overlay(self, items: Sequence[CatalogItem]) -> CatalogIndex:
        """This catalogue with the live catalogue's items over it: an item of the bundle takes the stored
        item's fields (a delisted one is kept but never servable), an item the bundle lacks is appended
        (after the bundle's items, in the order given). ``n_base`` stays the bundle's."""
        rows = self.rows()
        base = self.item_ids[: self.n_base]
        ids = list(base)
        known = set(base)
        for item in items:
            if item.item_id not in known:
                ids.append(item.item_id)
                known.add(item.item_id)
            row = rows.setdefault(item.item_id, {})
            if item.delisted and not item.title:  # a tombstone of an item the store never held: hide it
                row["delisted"] = True
                continue
            row.update(
                title=item.title,
                brand=item.brand,
                description=item.description,
                categories=list(item.categories),
                price=item.price,
                available=item.available,
                delisted=item.delisted,
            )
        return CatalogIndex.build(ids, rows, n_base=self.n_base)

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

    def filtered(
        self,
        category: str | None = None,
        brand: str | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
    ) -> bool:
        """Whether a request with these filters needs a mask: a filter is given, or some item is hidden."""
        return (
            not self._all_available
            or is_given(category)
            or is_given(brand)
            or min_price is not None
            or max_price is not None
        )

    def mask_for(
        self,
        category: str | None = None,
        brand: str | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
    ) -> BoolArray:
        """Servable items matching every filter: ``category`` matches any level of the path, ``brand``
        exactly, both case-insensitively; ``min_price`` / ``max_price`` bound the price (inclusive; an item
        without a known price is left out by either). ``None`` (or a blank name) means no filter; an unknown
        name matches nothing. Unavailable and delisted items are never in the mask."""
        mask = self.available.copy()
        for value, table in ((category, self._by_category), (brand, self._by_brand)):
            if value is None or not value.strip():
                continue
            keep = np.zeros(self.n_items, dtype=np.bool_)
            hits = table.get(name_key(value))
            if hits is not None:
                keep[hits] = True
            mask &= keep
        if min_price is not None:
            mask &= self.prices >= min_price  # nan compares False
        if max_price is not None:
            mask &= self.prices <= max_price
        return mask

    def servable(self, items: npt.ArrayLike) -> BoolArray:
        """Whether each of ``items`` may be served (in stock and listed)."""
        return np.asarray(self.available[np.asarray(items, dtype=np.int64)], dtype=np.bool_)

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


def parse_price(value: Any) -> float | None:
    """A usable price: a finite, non-negative number (a numeric string too, as catalogue files write them);
    anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    if not isinstance(value, int | float | np.number):
        return None
    price = float(value)
    return price if math.isfinite(price) and price >= 0 else None


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
