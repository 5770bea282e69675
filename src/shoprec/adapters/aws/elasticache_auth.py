"""IAM authentication to ElastiCache: a Redis client whose password is a short-lived SigV4 token.

The stack gives the cache a user group whose one enabled user authenticates with IAM (``template.yaml``,
``CacheAppUser``): a connection sends ``AUTH <user> <token>``, where the token is a presigned
``GET http://<cache-name>/?Action=connect&User=<user>[&ResourceType=ServerlessCache]`` request for the
``elasticache`` service, valid for 15 minutes, without its scheme. Signing is local (no AWS call), so a
token costs microseconds; it is still kept for ten minutes, since every new connection asks for one. A
connection stays authenticated after its token expires (ElastiCache drops IAM-authenticated connections
after 12 hours, and redis-py reconnects with a fresh token).

The caller's role needs ``elasticache:Connect`` on the cache and on the user.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import botocore.session
import redis
from botocore.model import ServiceId
from botocore.signers import RequestSigner

TOKEN_LIFETIME_S = 900
"""ElastiCache accepts a token for at most 15 minutes after it was signed."""
TOKEN_REUSE_S = 600.0
"""A token is reused for ten minutes, so it never reaches a connect with less than five left."""


class ElastiCacheIamAuth(redis.CredentialProvider):
    """Credentials of ``user_id`` for the cache named ``cache_name`` (serverless unless told otherwise)."""

    def __init__(
        self,
        user_id: str,
        cache_name: str,
        *,
        serverless: bool = True,
        region: str | None = None,
        session: botocore.session.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        session = session or botocore.session.get_session()
        self.user_id = user_id
        self.cache_name = cache_name
        self.serverless = serverless
        self.region = region or session.get_config_variable("region") or "us-east-1"
        self._session = session
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, when it was signed)
        self._lock = threading.Lock()

    def get_credentials(self) -> tuple[str, str]:
        """``(user, token)`` for ``AUTH``; a new token once the last one is ``TOKEN_REUSE_S`` old."""
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._token[1] >= TOKEN_REUSE_S:
                self._token = (self.token(), now)
            return self.user_id, self._token[0]

    def token(self) -> str:
        """A freshly signed token (the current credentials of the session: a Lambda's role)."""
        query: dict[str, str] = {"Action": "connect", "User": self.user_id}
        if self.serverless:
            query["ResourceType"] = "ServerlessCache"
        signer = RequestSigner(
            ServiceId("elasticache"),
            self.region,
            "elasticache",
            "v4",
            self._session.get_credentials(),
            self._session.get_component("event_emitter"),
        )
        url = signer.generate_presigned_url(
            {
                "method": "GET",
                "url": f"https://{self.cache_name}/?{urlencode(query)}",
                "body": {},
                "headers": {},
                "context": {},
            },
            operation_name="connect",
            expires_in=TOKEN_LIFETIME_S,
            region_name=self.region,
        )
        # The signer wants a URL with a scheme; ElastiCache wants the token without one.
        return str(url).removeprefix("https://")


def iam_redis_client(url: str, auth: ElastiCacheIamAuth, *, timeout_s: float) -> Any:
    """A client for ``url`` (``rediss://host:port/db``, no credentials in it) that authenticates with
    ``auth``; ``timeout_s`` bounds connecting and each reply, as :class:`RedisCache` sets for a URL."""
    return redis.Redis.from_url(
        url,
        credential_provider=auth,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
