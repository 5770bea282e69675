"""The ``Ranker`` port over HTTP: the ranking endpoint's JSON contract (see docs/ranking-endpoint.md).

Also holds the request/response codec that :mod:`shoprec.adapters.aws.sagemaker_ranker` shares, since a
SageMaker endpoint runs the very same container.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from shoprec.errors import RankerUnavailableError

CONTENT_TYPE = "application/json"


def encode_request(history: Sequence[str], candidates: Sequence[str]) -> bytes:
    """The request body for one instance."""
    return json.dumps({"instances": [{"history": list(history), "candidates": list(candidates)}]}).encode()


def decode_scores(body: bytes, n_candidates: int, *, source: str) -> list[float]:
    """The first prediction's scores; ``RankerUnavailableError`` naming ``source`` if malformed."""
    try:
        payload: Any = json.loads(body)
        scores = payload["predictions"][0]["scores"]
        result = [float(s) for s in scores]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise RankerUnavailableError(f"{source}: malformed response: {exc}") from exc
    if len(result) != n_candidates:
        raise RankerUnavailableError(f"{source}: {len(result)} scores for {n_candidates} candidates")
    return result


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
        if not candidates:
            return []
        url = f"{self.base_url}/invocations"
        request = urllib.request.Request(
            url,
            data=encode_request(history, candidates),
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
        return decode_scores(body, len(candidates), source=url)

    def describe(self) -> str:
        return self.base_url
