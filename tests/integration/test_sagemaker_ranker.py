"""SageMakerRanker through boto3's sagemaker-runtime client against a local ranking endpoint.

AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME points the client at the endpoint app, which serves the SageMaker
runtime path ``/endpoints/{name}/invocations``; nothing in the adapter knows it is not AWS.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from shoprec.adapters.aws.sagemaker_ranker import SageMakerRanker
from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle
from shoprec.errors import RankerUnavailableError
from shoprec.ports import Ranker


@pytest.fixture
def endpoint(aws_env: None, ranking_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", ranking_endpoint)
    return ranking_endpoint


@pytest.fixture(scope="module")
def local(bundle: Bundle) -> LocalOnnxRanker:
    return LocalOnnxRanker.from_bundle(bundle)


@pytest.mark.parametrize(("start", "n_history", "n_candidates"), [(0, 0, 1), (40, 5, 120), (900, 60, 1000)])
def test_scores_equal_the_local_ranker(
    endpoint: str, bundle: Bundle, local: LocalOnnxRanker, start: int, n_history: int, n_candidates: int
) -> None:
    ids = bundle.item_ids
    history = ids[start : start + n_history]
    candidates = ids[-n_candidates:]
    ranker = SageMakerRanker("shoprec-ranker", timeout_s=10)
    assert isinstance(ranker, Ranker)
    got = ranker.score(history, candidates, timeout_s=10)
    np.testing.assert_allclose(got, local.score(history, candidates, timeout_s=10), atol=1e-5)


def test_no_candidates_need_no_call(aws_env: None, nowhere: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", nowhere)
    assert SageMakerRanker("shoprec-ranker").score(["1"], [], timeout_s=1) == []


def test_a_rejected_request_is_ranker_unavailable(endpoint: str, bundle: Bundle) -> None:
    with pytest.raises(RankerUnavailableError, match="sagemaker://shoprec-ranker"):
        SageMakerRanker("shoprec-ranker", timeout_s=10).score(
            bundle.item_ids[:2], ["not-an-item"], timeout_s=10
        )


def test_a_slow_endpoint_is_ranker_unavailable_after_the_timeout(
    aws_env: None, black_hole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", black_hole)
    ranker = SageMakerRanker("shoprec-ranker")  # its one client is built here, not inside the call
    start = time.monotonic()
    with pytest.raises(RankerUnavailableError, match="timeout"):
        ranker.score(["1"], ["2"], timeout_s=0.2)
    assert time.monotonic() - start < 0.2 + 0.3  # the deadline, not botocore's default retries of a 60 s read


def test_an_unreachable_endpoint_is_ranker_unavailable(
    aws_env: None, nowhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", nowhere)
    with pytest.raises(RankerUnavailableError):
        SageMakerRanker("shoprec-ranker").score(["1"], ["2"], timeout_s=0.5)


def test_describe_names_the_endpoint() -> None:
    assert SageMakerRanker("shoprec-ranker", client=object()).describe() == "sagemaker://shoprec-ranker"
