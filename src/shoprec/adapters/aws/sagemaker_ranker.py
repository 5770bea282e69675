"""The ``Ranker`` port on a SageMaker real-time endpoint running the ranking container."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.http_ranker import CONTENT_TYPE, decode_scores, encode_request, score_in_chunks
from shoprec.errors import RankerUnavailableError
from shoprec.ports import Instance


class SageMakerRanker:
    """Calls ``InvokeEndpoint`` on ``endpoint_name`` with the JSON contract of docs/ranking-endpoint.md.

    Without an injected ``client`` a client is taken from :func:`aws_client` per distinct ``timeout_s``
    (cached), with that read timeout and no retries: within a latency budget a retry would only turn a
    fallback into a late fallback. An injected client keeps its own timeouts. Errors, throttling and
    timeouts all become :class:`RankerUnavailableError`; the caller falls back to recall scores.
    """

    def __init__(self, endpoint_name: str, client: Any = None) -> None:
        self.endpoint_name = endpoint_name
        self._client = client

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
        return score_in_chunks(instances, lambda part: self._invoke(part, timeout_s))

    def _invoke(self, instances: Sequence[Instance], timeout_s: float) -> list[list[float]]:
        client = self._client
        if client is None:
            client = aws_client("sagemaker-runtime", timeout_s=timeout_s, max_attempts=1)
        try:
            response = client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType=CONTENT_TYPE,
                Accept=CONTENT_TYPE,
                Body=encode_request(instances),
            )
            body = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise RankerUnavailableError(f"{self.describe()}: {exc}") from exc
        return decode_scores(body, instances, source=self.describe())

    def describe(self) -> str:
        return f"sagemaker://{self.endpoint_name}"
