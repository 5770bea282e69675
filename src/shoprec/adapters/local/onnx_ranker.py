"""The ``Ranker`` port in process: the bundle's ONNX ranker run by onnxruntime on dataset item ids."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from shoprec.artifacts import Bundle
from shoprec.errors import ArtifactError, RankerUnavailableError
from shoprec.ports import Instance
from shoprec.ranking.onnx_ranker import CPU_PROVIDERS, OnnxRanker

log = logging.getLogger(__name__)

RANKER_VARIANT_SETTING = "SHOPREC_RANKER_VARIANT"
"""The environment variable that picks the ranker variant, in the API's process and the endpoint alike."""


class LocalOnnxRanker:
    """Scores candidates with :class:`shoprec.ranking.onnx_ranker.OnnxRanker`, translating item ids.

    History ids the bundle does not know are skipped (new items are simply not part of the model's
    vocabulary); unknown candidate ids raise ``ValueError``, because a score for them would be invented.

    ``timeout_s`` is not enforced: an onnxruntime call cannot be interrupted, and on the request thread
    the score is ready the moment the budget could be checked. The latency is measured and an overrun is
    logged; the scores are still returned and the caller decides whether it is too late to use them.
    """

    def __init__(
        self,
        model_path: Path,
        item_ids: Sequence[str],
        *,
        max_len: int,
        threads: int = 1,
        providers: Sequence[str] = CPU_PROVIDERS,
        model_version: str = "",
        index: Mapping[str, int] | None = None,
    ) -> None:
        """The ONNX ranker at ``model_path`` over the catalogue ``item_ids`` (position = item index).
        ``index``: id -> position of ``item_ids`` when the caller has it (the catalogue's ``index_of``),
        instead of a dict of every id (0.4 s at a million items)."""
        self.max_len = max_len
        self.model_version = model_version
        self._model_path = model_path
        self._ranker = OnnxRanker(
            model_path, n_items=len(item_ids), max_len=max_len, threads=threads, providers=providers
        )
        self._index: Mapping[str, int] = (
            index if index is not None else {item_id: i for i, item_id in enumerate(item_ids)}
        )

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle,
        *,
        threads: int = 1,
        providers: Sequence[str] = CPU_PROVIDERS,
        variant: str | None = None,
        index: Mapping[str, int] | None = None,
    ) -> LocalOnnxRanker:
        """The bundle's ranker (``pipeline.ranker``) in its ``variant`` (``None``: the bundle's default one,
        ``default_variant``); :class:`ArtifactError` naming ``SHOPREC_RANKER_VARIANT`` and the bundle's
        variants when it has no such variant."""
        spec = bundle.pipeline.ranker
        if spec is None:
            raise ArtifactError(f"{bundle.path}: the bundle's pipeline has no ranker")
        try:
            name = spec.variant_file(variant)
        except ValueError as exc:
            raise ArtifactError(f"{bundle.path}: {RANKER_VARIANT_SETTING}: {exc}") from None
        return cls(
            bundle.file(name),
            bundle.item_ids,
            max_len=spec.max_len,
            threads=threads,
            providers=providers,
            model_version=bundle.model_version,
            index=index,
        )

    @property
    def providers(self) -> list[str]:
        """onnxruntime execution providers in use, preferred first."""
        return self._ranker.providers

    def unknown_items(self, item_ids: Sequence[str]) -> list[str]:
        """The ids in ``item_ids`` that are not in the bundle (each once, in first-seen order)."""
        return list(dict.fromkeys(i for i in item_ids if i not in self._index))

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float = math.inf) -> list[list[float]]:
        """Scores for several (history, candidates) pairs in one onnxruntime call.

        Candidate lists are padded to the longest with item 0 and the padding cut off again; a score
        depends only on its own history and candidate, so padding never changes a result.
        """
        if not instances:
            return []
        histories = [
            np.fromiter((self._index[i] for i in history if i in self._index), dtype=np.int64)
            for history, _ in instances
        ]
        rows = [self._candidate_indices(candidates) for _, candidates in instances]
        width = max(len(r) for r in rows)
        if width == 0:
            return [[] for _ in instances]
        matrix = np.zeros((len(rows), width), dtype=np.int64)
        for b, row in enumerate(rows):
            matrix[b, : len(row)] = row
        start = time.perf_counter()
        try:
            scores = self._ranker.score(histories, matrix)
        except Exception as exc:  # onnxruntime's own exception types do not share a narrower base
            raise RankerUnavailableError(f"{self.describe()}: inference failed: {exc}") from exc
        elapsed = time.perf_counter() - start
        if elapsed > timeout_s:
            log.warning(
                "ranker took %.1f ms for %d instances, over its %.1f ms budget",
                elapsed * 1000,
                len(instances),
                timeout_s * 1000,
            )
        return [scores[b, : len(row)].tolist() for b, row in enumerate(rows)]

    def describe(self) -> str:
        return f"onnxruntime://{self._model_path}"

    def _candidate_indices(self, candidates: Sequence[str]) -> list[int]:
        unknown = self.unknown_items(candidates)
        if unknown:
            shown = ", ".join(unknown[:10]) + (f" (+{len(unknown) - 10} more)" if len(unknown) > 10 else "")
            raise ValueError(f"unknown candidate item ids: {shown}")
        return [self._index[i] for i in candidates]
