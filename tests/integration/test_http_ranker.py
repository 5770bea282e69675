"""HttpRanker against the ranking endpoint served over HTTP."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.adapters.http_ranker import HttpRanker
from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle
from shoprec.errors import RankerUnavailableError
from shoprec.ports import Ranker


def test_scores_equal_the_local_ranker(ranking_endpoint: str, bundle: Bundle) -> None:
    ranker = HttpRanker(ranking_endpoint + "/")
    assert isinstance(ranker, Ranker)
    history, candidates = bundle.item_ids[30:45], bundle.item_ids[:300]
    expected = LocalOnnxRanker.from_bundle(bundle).score(history, candidates, timeout_s=10)
    np.testing.assert_allclose(ranker.score(history, candidates, timeout_s=10), expected, atol=1e-5)


def test_a_rejected_request_is_ranker_unavailable_with_the_reason(ranking_endpoint: str) -> None:
    with pytest.raises(RankerUnavailableError, match=r"HTTP 400.*not-an-item"):
        HttpRanker(ranking_endpoint).score([], ["not-an-item"], timeout_s=10)


def test_a_slow_endpoint_is_ranker_unavailable(black_hole: str) -> None:
    with pytest.raises(RankerUnavailableError, match="timed out"):
        HttpRanker(black_hole).score(["1"], ["2"], timeout_s=0.2)


def test_an_unreachable_endpoint_is_ranker_unavailable(nowhere: str) -> None:
    with pytest.raises(RankerUnavailableError, match="refused"):
        HttpRanker(nowhere).score(["1"], ["2"], timeout_s=1)


def test_no_candidates_need_no_call(nowhere: str) -> None:
    assert HttpRanker(nowhere).score(["1"], [], timeout_s=1) == []
