"""The one place boto3 clients are built: explicit timeouts, standard retries, TCP keep-alive.

Endpoints are never passed here: botocore reads ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``
itself, which is how tests and local stacks point the same code at moto or a local ranking endpoint.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_MAX_ATTEMPTS = 3
MAX_CONNECT_TIMEOUT_S = 1.0
"""Connecting never needs longer than this inside a region; a slow connect means the service is unwell."""

# boto3's default session is not thread-safe to create clients from; a private session under a lock is.
_lock = threading.Lock()


def aws_region() -> str | None:
    """``AWS_REGION`` (set by Lambda) or ``AWS_DEFAULT_REGION``; ``None`` leaves it to botocore's config."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def aws_client(
    service: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> Any:
    """A client for ``service`` (e.g. ``"dynamodb"``), cached per service, timeout and retry budget.

    ``timeout_s`` is the read timeout; the connect timeout is the smaller of it and
    :data:`MAX_CONNECT_TIMEOUT_S`. ``max_attempts`` counts the first try (1 = no retries).
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    # The region and endpoint variables are part of the key so that a changed environment (a test pointing
    # at another local server) gets a new client instead of one bound to the old endpoint.
    env_key = (
        aws_region(),
        os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"),
    )
    return _cached_client(service, round(float(timeout_s), 3), int(max_attempts), env_key)


def dynamodb_clients(client: Any, read_client: Any, read_timeout_s: float) -> tuple[Any, Any]:
    """A DynamoDB store's two clients: ``client`` for writes (default: the patient :func:`aws_client`) and
    ``read_client`` for request-path reads (default: ``client`` when one was given, else a client with
    ``read_timeout_s`` and no retries)."""
    writes = client if client is not None else aws_client("dynamodb")
    if read_client is None:
        read_client = (
            client if client is not None else aws_client("dynamodb", timeout_s=read_timeout_s, max_attempts=1)
        )
    return writes, read_client


@lru_cache(maxsize=64)
def _cached_client(
    service: str, timeout_s: float, max_attempts: int, env_key: tuple[str | None, str | None, str | None]
) -> Any:
    config = Config(
        connect_timeout=min(timeout_s, MAX_CONNECT_TIMEOUT_S),
        read_timeout=timeout_s,
        # total_max_attempts counts the first try; botocore's "max_attempts" would count the retries only.
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )
    with _lock:
        session = boto3.session.Session()
        return session.client(service, region_name=env_key[0], config=config)
