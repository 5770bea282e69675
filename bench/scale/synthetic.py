"""A synthetic catalogue for the scale benchmarks: power-law popularity, clustered item vectors, sequences
that wander within a few clusters, and titles, brands and categories that follow the clusters.

Used by ``bench/bench_scale.py`` and ``bench/scale/compare_ann.py`` only, never by the quality tables: the
numbers it yields are about size and speed (build time, cold start, latency, memory, ANN recall against
exact search), not about recommendation quality.

Every array is a function of ``(n_items, seed)``, so two runs measure the same catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

_ADJECTIVES = (
    "compact",
    "digital",
    "precision",
    "heavy-duty",
    "portable",
    "wireless",
    "stainless",
    "magnetic",
)
_NOUNS = ("caliper", "microscope", "scale", "thermometer", "beaker", "pipette", "multimeter", "magnifier")
_NOUNS += ("centrifuge", "flask", "stirrer", "balance", "timer", "spectrometer", "oscilloscope", "clamp")
_DEPARTMENTS = ("Lab Equipment", "Measurement", "Electronics", "Tools", "Optics", "Safety", "Chemistry")


@dataclass(frozen=True, eq=False)
class SyntheticCatalogue:
    """Everything a bundle needs, for ``n_items`` items."""

    item_ids: list[str]
    popularity: npt.NDArray[np.float32]  # interaction counts, power law
    cluster: npt.NDArray[np.int32]  # each item's cluster (its leaf category)
    embeddings: npt.NDArray[np.float32]  # [n_items, dim], clustered, norm growing with popularity
    sequences: list[npt.NDArray[np.int64]]  # user histories, oldest first

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def catalog_rows(self) -> list[dict[str, Any]]:
        """One catalogue row per item: a title, a brand and a category path that follow the item's cluster."""
        n_clusters = int(self.cluster.max()) + 1 if self.cluster.size else 0
        rng = np.random.default_rng(n_clusters)
        leaf_noun = rng.integers(0, len(_NOUNS), size=n_clusters)
        dept = rng.integers(0, len(_DEPARTMENTS), size=n_clusters)
        adjective = np.random.default_rng(1).integers(0, len(_ADJECTIVES), size=self.n_items)
        brand = np.random.default_rng(2).integers(0, max(n_clusters // 4, 1), size=self.n_items)
        rows = []
        for i, (item_id, c) in enumerate(zip(self.item_ids, self.cluster.tolist(), strict=True)):
            noun = _NOUNS[leaf_noun[c]]
            rows.append(
                {
                    "item_id": item_id,
                    "title": f"{_ADJECTIVES[adjective[i]].capitalize()} {noun} model {i % 997}",
                    "brand": f"Brand{brand[i]}",
                    "categories": [_DEPARTMENTS[dept[c]], f"{noun.capitalize()}s {c}"],
                    "price": float(5 + (i * 7919) % 500),
                }
            )
        return rows


def power_law_popularity(
    n_items: int, rng: np.random.Generator, *, exponent: float = 1.0, interactions: int | None = None
) -> npt.NDArray[np.float32]:
    """Interaction counts whose rank-frequency curve is ``rank ** -exponent`` (Zipf), in random item order;
    ``interactions`` in all (default 10 per item). Most items end with 0 or 1, a few with thousands."""
    total = interactions if interactions is not None else 10 * n_items
    weights = np.arange(1, n_items + 1, dtype=np.float64) ** -exponent
    counts = rng.multinomial(total, weights / weights.sum()).astype(np.float32)
    return counts[rng.permutation(n_items)]


def clustered_embeddings(
    n_items: int,
    dim: int,
    rng: np.random.Generator,
    *,
    n_clusters: int,
    popularity: npt.NDArray[np.float32],
    spread: float = 0.6,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """Item vectors around ``n_clusters`` centres (cluster sizes themselves power-law), with a norm that
    grows with the log of the item's popularity, as a trained item table's does. Returns the vectors and
    each item's cluster."""
    sizes = np.arange(1, n_clusters + 1, dtype=np.float64) ** -0.8
    cluster = rng.choice(n_clusters, size=n_items, p=sizes / sizes.sum()).astype(np.int32)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.empty((n_items, dim), dtype=np.float32)
    step = 1 << 16  # in slices: the noise of 1M x 64 at once would be another 0.5 GB of float64
    for start in range(0, n_items, step):
        stop = min(start + step, n_items)
        noise = rng.standard_normal((stop - start, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        block = centres[cluster[start:stop]] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        scale = 1.0 + 0.25 * np.log1p(popularity[start:stop])
        vectors[start:stop] = block * scale[:, None]
    return vectors, cluster


def plausible_sequences(
    cluster: npt.NDArray[np.int32],
    popularity: npt.NDArray[np.float32],
    rng: np.random.Generator,
    *,
    n_users: int,
    mean_length: float = 8.0,
    stay: float = 0.8,
) -> list[npt.NDArray[np.int64]]:
    """User histories that stay in the current cluster with probability ``stay`` per step (else jump to an
    item drawn by popularity), picking items within a cluster by popularity: the co-occurrences that
    item-CF finds in real logs, in miniature."""
    weight = popularity.astype(np.float64) + 0.5
    order = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[order], np.arange(int(cluster.max()) + 2))
    cum_global = np.cumsum(weight)
    cum_sorted = np.cumsum(weight[order])
    lengths = np.maximum(2, rng.poisson(mean_length, size=n_users))
    sequences = []
    for length in lengths.tolist():
        seq = np.empty(length, dtype=np.int64)
        item = int(np.searchsorted(cum_global, rng.random() * cum_global[-1]))
        seq[0] = item
        for t in range(1, length):
            if rng.random() < stay:
                lo, hi = bounds[cluster[item]], bounds[cluster[item] + 1]
                base = cum_sorted[lo - 1] if lo > 0 else 0.0
                pos = int(
                    np.searchsorted(cum_sorted[lo:hi], base + rng.random() * (cum_sorted[hi - 1] - base))
                )
                item = int(order[lo + min(pos, hi - lo - 1)])
            else:
                item = int(np.searchsorted(cum_global, rng.random() * cum_global[-1]))
            seq[t] = item
        sequences.append(seq)
    return sequences


def synthetic_catalogue(
    n_items: int, *, dim: int = 64, n_users: int | None = None, seed: int = 0
) -> SyntheticCatalogue:
    """The synthetic catalogue of ``n_items`` items with ``dim``-dimensional vectors; ``n_users`` histories
    (default: one per 10 items, at least 1,000)."""
    rng = np.random.default_rng(seed)
    popularity = power_law_popularity(n_items, rng)
    n_clusters = max(8, round(float(np.sqrt(n_items))))
    embeddings, cluster = clustered_embeddings(
        n_items, dim, rng, n_clusters=n_clusters, popularity=popularity
    )
    users = n_users if n_users is not None else max(1000, n_items // 10)
    sequences = plausible_sequences(cluster, popularity, rng, n_users=users)
    return SyntheticCatalogue(
        item_ids=[f"S{i:07d}" for i in range(n_items)],
        popularity=popularity,
        cluster=cluster,
        embeddings=embeddings,
        sequences=sequences,
    )
