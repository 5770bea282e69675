"""The catalogue as serving sees it: item id ↔ index maps, display text and numpy arrays for filtering.

Built once per bundle (:meth:`CatalogIndex.from_bundle`) and again whenever the live catalogue changes
(:meth:`CatalogIndex.with_overlay`); every request reads one, nothing writes it. Filters and facets work
on integer codes so that a mask over the whole catalogue costs microseconds. Items that are out of stock
or delisted stay in the index (their indices are the models') but are never *servable*: every mask
(:meth:`CatalogIndex.mask_for`) leaves them out.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.specs import CATALOG_COLUMNS

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
    index_of: Mapping[str, int]
    titles: Sequence[str]
    short_titles: Sequence[str]
    brands: Sequence[str]
    descriptions: Sequence[str]
    categories: Sequence[tuple[str, ...]]
    brand_names: list[str]
    brand_codes: npt.NDArray[np.int32]
    leaf_names: list[str]
    leaf_codes: npt.NDArray[np.int32]
    id_rank: IntArray
    """Each item's position when the item ids are sorted as strings: the final tie-break of every list."""
    _by_category: Mapping[str, IntArray]
    _by_brand: Mapping[str, IntArray]
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
        """The bundle's columnar catalogue when it has one (memory-mapped, nothing parsed); else
        ``bundle.item_ids`` indexed with ``bundle.catalog`` (items without metadata get blanks)."""
        columns = bundle.catalog_columns
        if columns is not None:
            try:
                return cls.from_columns(columns.arrays, columns.tables, item_ids=bundle.item_ids)
            except ColumnsError as exc:
                from shoprec.errors import ArtifactError

                raise ArtifactError(f"{bundle.path}: columnar catalogue: {exc}") from None
        return cls.build(bundle.item_ids, bundle.catalog or {})

    def to_columns(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]] | None:
        """This catalogue as arrays and small tables (what the bundle writer stores under ``catalog/``
        and :meth:`from_columns` maps back); ``None`` when the item ids do not survive a fixed-width
        numpy string (an id ending in NUL), in which case a bundle keeps ``catalog.jsonl`` alone."""
        ids = np.array(self.item_ids, dtype=np.str_) if self.item_ids else np.zeros(0, dtype="<U1")
        if ids.tolist() != self.item_ids:
            return None
        order = np.argsort(ids, kind="stable").astype(np.int64)
        if not np.array_equal(self.id_rank[order], np.arange(ids.size)):
            return None  # numpy orders these strings otherwise than Python: keep the rows
        brand_spellings, brand_text = _distinct_codes(list(self.brands), "")
        paths, path_codes = _distinct_codes(list(self.categories), ())
        cat_keys, cat_offsets, cat_items = _groups_csr(self._by_category)
        brand_keys, brand_offsets, brand_items = _groups_csr(self._by_brand)
        titles = self.titles if isinstance(self.titles, TextColumn) else TextColumn.of(self.titles)
        descriptions = (
            self.descriptions
            if isinstance(self.descriptions, TextColumn)
            else TextColumn.of(self.descriptions)
        )
        arrays: dict[str, npt.NDArray[Any]] = {
            "ids": ids,
            "id_order": order,
            "titles.data": titles.data,
            "titles.offsets": titles.offsets,
            "descriptions.data": descriptions.data,
            "descriptions.offsets": descriptions.offsets,
            "brands": brand_text,
            "brand_codes": self.brand_codes,
            "paths": path_codes,
            "leaf_codes": self.leaf_codes,
            "category_offsets": cat_offsets,
            "category_items": cat_items,
            "brand_offsets": brand_offsets,
            "brand_items": brand_items,
            "available": self.available,
            "listed": self.listed,
            "prices": self.prices,
        }
        tables = {
            "format": COLUMNS_FORMAT,
            "n_items": self.n_items,
            "brands": brand_spellings,
            "brand_names": self.brand_names,
            "paths": [list(p) for p in paths],
            "leaf_names": self.leaf_names,
            "category_keys": cat_keys,
            "brand_keys": brand_keys,
        }
        return arrays, tables

    @classmethod
    def from_columns(
        cls,
        arrays: Mapping[str, npt.NDArray[Any]],
        tables: Mapping[str, Any],
        *,
        item_ids: list[str] | None = None,
    ) -> CatalogIndex:
        """The catalogue :meth:`to_columns` described, over its arrays as given (memory-mapped ones stay
        mapped: text is decoded when read, names are found by binary search). Every array's shape, the
        codes' ranges and the id order are checked with vectorised passes; a problem raises
        :class:`ColumnsError` naming the column. ``item_ids``: the ids as a list, when the caller has it."""
        if tables.get("format") != COLUMNS_FORMAT:
            raise ColumnsError(f"'format' is {tables.get('format')!r}, this shoprec reads {COLUMNS_FORMAT}")
        missing = sorted(set(COLUMN_NAMES) - set(arrays))
        if missing:
            raise ColumnsError(f"missing column(s) {', '.join(missing)}")
        ids = arrays["ids"]
        n = int(ids.shape[0]) if ids.ndim == 1 else -1
        if ids.dtype.kind != "U" or n != tables.get("n_items"):
            raise ColumnsError(f"'ids' must be {tables.get('n_items')} strings, got {ids.dtype} {ids.shape}")
        for name, kind in _ITEM_COLUMNS.items():
            arr = arrays[name]
            if arr.shape != (n,) or arr.dtype.kind != kind:
                raise ColumnsError(f"'{name}' has {arr.dtype} {arr.shape}, expected kind {kind!r} ({n},)")
        order = np.asarray(arrays["id_order"], dtype=np.int64)
        if order.min(initial=0) < 0 or order.max(initial=-1) >= n:
            raise ColumnsError(f"'id_order' must hold item indices in [0, {n})")
        sorted_ids = ids[order]
        if n > 1 and not bool(np.all(sorted_ids[1:] > sorted_ids[:-1])):
            raise ColumnsError("'id_order' does not sort the ids, or the ids repeat")
        ids_list = ids.tolist() if item_ids is None else item_ids
        if len(ids_list) != n:
            raise ColumnsError(f"'ids' has {n} ids, the bundle {len(ids_list)}")
        texts = {}
        for name in TEXT_COLUMNS:
            data, offsets = arrays[f"{name}.data"], arrays[f"{name}.offsets"]
            if data.ndim != 1 or data.dtype != np.uint8 or offsets.shape != (n + 1,):
                raise ColumnsError(f"'{name}' must be uint8 bytes and {n + 1} offsets")
            if offsets[0] != 0 or offsets[-1] != data.size or bool(np.any(offsets[1:] < offsets[:-1])):
                raise ColumnsError(f"'{name}.offsets' must rise from 0 to the size of '{name}.data'")
            texts[name] = TextColumn(data, offsets.astype(np.int64, copy=False))
        names: dict[str, list[Any]] = {}
        for key in ("brands", "brand_names", "leaf_names", "category_keys", "brand_keys"):
            value = tables.get(key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ColumnsError(f"table '{key}' must be a list of strings")
            names[key] = value
        raw_paths = tables.get("paths")
        if not isinstance(raw_paths, list) or not all(
            isinstance(p, list) and all(isinstance(v, str) for v in p) for p in raw_paths
        ):
            raise ColumnsError("table 'paths' must be a list of lists of strings")
        paths = [tuple(p) for p in raw_paths]
        for column, table in (
            ("brands", names["brands"]),
            ("brand_codes", names["brand_names"]),
            ("paths", paths),
            ("leaf_codes", names["leaf_names"]),
        ):
            codes = arrays[column]
            if n and (int(codes.min()) < -1 or int(codes.max()) >= len(table)):
                raise ColumnsError(f"'{column}' codes must lie in [-1, {len(table)})")
        groups = {}
        for prefix, keys in (("category", names["category_keys"]), ("brand", names["brand_keys"])):
            offsets, items = arrays[f"{prefix}_offsets"], arrays[f"{prefix}_items"]
            if offsets.shape != (len(keys) + 1,) or items.ndim != 1 or items.dtype.kind != "i":
                raise ColumnsError(f"'{prefix}_offsets' must have {len(keys) + 1} entries over 1-d items")
            if (
                offsets[0] != 0
                or offsets[-1] != items.size
                or bool(np.any(offsets[1:] < offsets[:-1]))
                or (items.size and (int(items.min()) < 0 or int(items.max()) >= n))
            ):
                raise ColumnsError(f"'{prefix}_offsets' / '{prefix}_items' do not index the items")
            groups[prefix] = Groups(keys, offsets.astype(np.int64, copy=False), items)
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n, dtype=np.int64)
        titles = texts["titles"]
        return cls(
            item_ids=ids_list,
            index_of=SortedIds(ids_list, sorted_ids, order),
            titles=titles,
            short_titles=MappedColumn(titles, shorten),
            brands=CodedColumn(arrays["brands"], names["brands"], ""),
            descriptions=texts["descriptions"],
            categories=CodedColumn(arrays["paths"], paths, ()),
            brand_names=names["brand_names"],
            brand_codes=arrays["brand_codes"],
            leaf_names=names["leaf_names"],
            leaf_codes=arrays["leaf_codes"],
            id_rank=rank,
            _by_category=groups["category"],
            _by_brand=groups["brand"],
            available=arrays["available"],
            listed=arrays["listed"],
            prices=arrays["prices"],
            n_base=n,
        )

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


T = TypeVar("T")

COLUMNS_FORMAT: Final = 1
"""Version of the columnar catalogue's layout (:meth:`CatalogIndex.to_columns`)."""
TEXT_COLUMNS: Final = ("titles", "descriptions")
"""The catalogue's free-text fields, each stored as UTF-8 bytes back to back plus offsets."""


_ITEM_COLUMNS: Final = {
    "brands": "i",
    "brand_codes": "i",
    "paths": "i",
    "leaf_codes": "i",
    "available": "b",
    "listed": "b",
    "prices": "f",
}
"""The per-item columns besides ids and texts, with their numpy dtype kind."""
COLUMN_NAMES: Final = CATALOG_COLUMNS
"""Every array of a columnar catalogue (the bundle stores each as ``catalog/<name>.npy``)."""


_ITER_CHUNK: Final = 4096


class LazySequence(Sequence[T]):
    """A sequence whose items are made when read: a subclass gives ``__len__`` and ``_at(j)`` for
    ``0 <= j < len``; indexing (negative indices, ``IndexError``) and slices are this class's."""

    __slots__ = ()

    def _at(self, j: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self)))]
        return self._at(_position(operator.index(i), len(self)))


class TextColumn(LazySequence[str]):
    """Strings stored as UTF-8 bytes back to back: string ``i`` is ``data[offsets[i]:offsets[i + 1]]``,
    decoded when it is read. Both arrays may be memory-mapped, so a million titles cost nothing until
    requests read a few of them."""

    __slots__ = ("_data", "_offsets")

    def __init__(self, data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> None:
        self._data = data
        self._offsets = offsets

    @classmethod
    def of(cls, texts: Iterable[str]) -> TextColumn:
        """The column of ``texts`` (in memory)."""
        encoded = [t.encode("utf-8") for t in texts]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    @property
    def data(self) -> npt.NDArray[np.uint8]:
        return self._data

    @property
    def offsets(self) -> npt.NDArray[np.int64]:
        return self._offsets

    def __len__(self) -> int:
        return int(self._offsets.size) - 1

    def _at(self, j: int) -> str:
        lo, hi = int(self._offsets[j]), int(self._offsets[j + 1])
        # The writer stores valid UTF-8 and checksums guard it; a damaged byte must not fail a request.
        return self._data[lo:hi].tobytes().decode("utf-8", errors="replace")

    def __iter__(self) -> Iterator[str]:
        n = len(self)
        for start in range(0, n, _ITER_CHUNK):  # a chunk at a time: any(titles) reads one chunk
            offsets = self._offsets[start : min(start + _ITER_CHUNK, n) + 1].tolist()
            data = self._data[offsets[0] : offsets[-1]].tobytes()
            base = offsets[0]
            for lo, hi in itertools.pairwise(offsets):
                yield data[lo - base : hi - base].decode("utf-8", errors="replace")


class CodedColumn(LazySequence[T]):
    """A column of few distinct values: ``values[codes[i]]``, ``missing`` where the code is ``-1``."""

    __slots__ = ("_codes", "_missing", "_values")

    def __init__(self, codes: npt.NDArray[np.int32], values: Sequence[T], missing: T) -> None:
        self._codes = codes
        self._values = values
        self._missing = missing

    def __len__(self) -> int:
        return int(self._codes.size)

    def _at(self, j: int) -> T:
        code = int(self._codes[j])
        return self._values[code] if code >= 0 else self._missing

    def __iter__(self) -> Iterator[T]:
        values, missing = self._values, self._missing
        for code in self._codes.tolist():
            yield values[code] if code >= 0 else missing


class MappedColumn(Sequence[str]):
    """``fn(base[i])``, computed when read (the short titles of a columnar catalogue)."""

    __slots__ = ("_base", "_fn")

    def __init__(self, base: Sequence[str], fn: Callable[[str], str]) -> None:
        self._base = base
        self._fn = fn

    def __len__(self) -> int:
        return len(self._base)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._fn(t) for t in self._base[i]]
        return self._fn(self._base[i])

    def __iter__(self) -> Iterator[str]:
        return map(self._fn, self._base)


MAX_CACHED_IDS: Final = 200_000
"""How many looked-up ids a :class:`SortedIds` remembers before it starts over."""


class SortedIds(Mapping[str, int]):
    """Item id -> index by binary search in the ids sorted as strings (``ids[order]``): what a dict of a
    million ids would give, without building one at every cold start (about 0.4 s and 100 MB)."""

    __slots__ = ("_found", "_ids", "_order", "_sorted")

    def __init__(self, ids: list[str], sorted_ids: npt.NDArray[np.str_], order: IntArray) -> None:
        self._ids = ids
        self._sorted = sorted_ids
        self._order = order
        self._found: dict[str, int] = {}
        """The ids looked up so far: requests keep asking about the same (popular, recent) items."""

    def __getitem__(self, key: str) -> int:
        found = self._found.get(key)
        if found is not None:
            return found
        # A fixed-width numpy string drops trailing NULs: such a key can never be one of the ids.
        if not isinstance(key, str) or key.endswith("\0") or not self._sorted.size:
            raise KeyError(key)
        pos = int(np.searchsorted(self._sorted, key))
        if pos < self._sorted.size and self._sorted[pos] == key:
            index = int(self._order[pos])
            if len(self._found) >= MAX_CACHED_IDS:
                self._found = {}
            self._found[key] = index  # racing threads store the same value
            return index
        raise KeyError(key)

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)


class Groups(Mapping[str, IntArray]):
    """Name key -> the items it holds, from CSR arrays: ``items[offsets[k]:offsets[k + 1]]`` for the
    ``k``-th key."""

    __slots__ = ("_items", "_key", "_offsets")

    def __init__(self, keys: Sequence[str], offsets: IntArray, items: IntArray) -> None:
        self._key = {key: k for k, key in enumerate(keys)}
        self._offsets = offsets
        self._items = items

    def __getitem__(self, key: str) -> IntArray:
        k = self._key[key]
        out: IntArray = self._items[int(self._offsets[k]) : int(self._offsets[k + 1])]
        return out

    def __len__(self) -> int:
        return len(self._key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._key)


def _position(i: int, n: int) -> int:
    j = i + n if i < 0 else i
    if not 0 <= j < n:
        raise IndexError(f"index {i} out of range for {n} items")
    return j


def _distinct_codes(values: Sequence[T], empty: T) -> tuple[list[T], npt.NDArray[np.int32]]:
    """Exact distinct values in order of first appearance and each value's code; ``empty`` gets ``-1``."""
    table: list[T] = []
    code_of: dict[T, int] = {}
    codes = np.full(len(values), -1, dtype=np.int32)
    for i, value in enumerate(values):
        if value == empty:
            continue
        code = code_of.get(value)
        if code is None:
            code = code_of[value] = len(table)
            table.append(value)
        codes[i] = code
    return table, codes


def _groups_csr(groups: Mapping[str, IntArray]) -> tuple[list[str], IntArray, IntArray]:
    keys = list(groups)
    sizes = [groups[k].size for k in keys]
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    parts = [np.asarray(groups[k], dtype=np.int64) for k in keys]
    items = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return keys, offsets, items


class ColumnsError(ValueError):
    """A columnar catalogue that does not hold together; the message names the column."""


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
