"""The ``Ranker`` port over HTTP: the ranking endpoint's JSON contract (see docs/ranking-endpoint.md).

Also holds the request/response codec that :mod:`shoprec.adapters.aws.sagemaker_ranker` shares, since a
SageMaker endpoint runs the very same container.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from shoprec.errors import RankerUnavailableError
from shoprec.ports import Instance

CONTENT_TYPE = "application/json"
MAX_INSTANCES_PER_CALL = 64
"""The endpoint's limit of instances per request (``shoprec.endpoint.app.MAX_INSTANCES``)."""


def encode_request(instances: Sequence[Instance]) -> bytes:
    """The request body for ``instances``."""
    body = {"instances": [{"history": list(h), "candidates": list(c)} for h, c in instances]}
    return json.dumps(body).encode()


def decode_scores(body: bytes, instances: Sequence[Instance], *, source: str) -> list[list[float]]:
    """One score list per instance; ``RankerUnavailableError`` naming ``source`` if malformed."""
    try:
        payload: Any = json.loads(body)
        predictions = payload["predictions"]
        result = [[float(s) for s in p["scores"]] for p in predictions]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise RankerUnavailableError(f"{source}: malformed response: {exc}") from exc
    if len(result) != len(instances):
        raise RankerUnavailableError(f"{source}: {len(result)} predictions for {len(instances)} instances")
    for scores, (_, candidates) in zip(result, instances, strict=True):
        if len(scores) != len(candidates):
            raise RankerUnavailableError(f"{source}: {len(scores)} scores for {len(candidates)} candidates")
    return result


def score_in_chunks(
    instances: Sequence[Instance], invoke: Callable[[Sequence[Instance]], list[list[float]]]
) -> list[list[float]]:
    """Scores of ``instances`` through ``invoke`` (one endpoint request), at most
    ``MAX_INSTANCES_PER_CALL`` instances per request; instances without candidates are not sent."""
    out: list[list[float]] = [[] for _ in instances]
    asked = [i for i, (_, candidates) in enumerate(instances) if candidates]
    for start in range(0, len(asked), MAX_INSTANCES_PER_CALL):
        part = asked[start : start + MAX_INSTANCES_PER_CALL]
        for i, scores in zip(part, invoke([instances[i] for i in part]), strict=True):
            out[i] = scores
    return out


class HttpRanker:
    """POSTs to ``{base_url}/invocations`` of a ranking endpoint (a local one, or any HTTP deployment).

    ``timeout_s`` bounds connecting and each socket read (urllib has no total deadline); every failure,
    non-2xx answer or timeout becomes :class:`RankerUnavailableError`. Proxy variables are ignored: the
    endpoint is an internal service, never reached through an egress proxy.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
        return score_in_chunks(instances, lambda part: self._invoke(part, timeout_s))

    def _invoke(self, instances: Sequence[Instance], timeout_s: float) -> list[list[float]]:
        url = f"{self.base_url}/invocations"
        request = urllib.request.Request(
            url,
            data=encode_request(instances),
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            raise RankerUnavailableError(f"{url}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise RankerUnavailableError(f"{url}: {exc}") from exc
        return decode_scores(body, instances, source=url)

    def describe(self) -> str:
        return self.base_url
