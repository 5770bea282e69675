"""A ``Cache`` on Redis: ElastiCache (Serverless or a node-based cluster) in AWS, any redis-server locally.

ElastiCache Serverless only accepts TLS connections, so its URL must use the ``rediss://`` scheme
(``rediss://<name>.serverless.<region>.cache.amazonaws.com:6379/0``); ``redis://`` is plain TCP.

Commands are sent in non-transactional pipelines (no ``MULTI``) so that a cluster-mode client
(``redis.RedisCluster``, passed in as the client) can spread the entry keys and tag sets over slots.
Tag sets are kept alive at least as long as their longest-lived entry with ``PEXPIRE ... NX`` then
``PEXPIRE ... GT``, which needs Redis 7 (ElastiCache Serverless runs Redis OSS 7.1 / Valkey).

A tag's generation is the string ``<prefix>gen:<tag>`` holds: a random 64-bit token written by every
invalidation (``"0"`` while the key is absent). Tokens are never reused, and a token key lives
``GENERATION_TTL_S`` (a week), far longer than any entry keyed by an earlier generation can live
(tagged entries are capped at ``MAX_TAGGED_TTL_S``), so a generation never comes back while entries
keyed by it exist. Each of these keys is read or written alone: no multi-key atomicity is needed, which
keeps every command valid in cluster mode.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.exceptions import RedisError

from shoprec.errors import BackendUnavailableError

DEFAULT_PREFIX = "shoprec:"
DEFAULT_SOCKET_TIMEOUT_S = 0.25
"""The cache must never cost more than a miss would: a slow Redis is treated as unavailable."""
GENERATION_TTL_S = 7 * 24 * 3600
"""How long a tag's generation token outlives the invalidation that wrote it."""
MAX_TAGGED_TTL_S = 24 * 3600
"""Longest life of a tagged entry: far below ``GENERATION_TTL_S``, leaving room for the request that
computed it."""
NO_GENERATION = "0"
"""The generation of a tag that was never invalidated (or whose token expired)."""
_POP_BATCH = 500


class RedisCache:
    """A byte cache with TTLs and tags in Redis; every error becomes :class:`BackendUnavailableError`.

    ``url_or_client`` is a ``redis://`` / ``rediss://`` URL or a ready ``redis.Redis``-compatible client
    (it must return bytes, i.e. ``decode_responses=False``). Keys are ``<prefix><key>``; the keys stored
    with tag ``t`` are remembered in the set ``<prefix>tag:<t>``.
    """

    def __init__(
        self,
        url_or_client: str | Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
    ) -> None:
        self.prefix = prefix
        if isinstance(url_or_client, str):
            scheme = urlsplit(url_or_client).scheme
            if scheme not in ("redis", "rediss"):
                raise ValueError(
                    f"cache URL must be redis:// or rediss://, got {redact_url(url_or_client)!r}"
                )
            self._client: Any = redis.Redis.from_url(
                url_or_client,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                health_check_interval=30,
            )
            self._description = redact_url(url_or_client)
        else:
            self._client = url_or_client
            kwargs = getattr(getattr(url_or_client, "connection_pool", None), "connection_kwargs", {})
            self._description = "redis://{}:{}/{}".format(
                kwargs.get("host", "?"), kwargs.get("port", "?"), kwargs.get("db", 0)
            )

    def get(self, key: str) -> bytes | None:
        try:
            value = self._client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise self._unavailable("GET", exc) from exc
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    def set(self, key: str, value: bytes, ttl_seconds: float, *, tags: Sequence[str] = ()) -> None:
        full_key = self.prefix + key
        ttl_ms = int(min(ttl_seconds, MAX_TAGGED_TTL_S) * 1000 if tags else ttl_seconds * 1000)
        try:
            if ttl_ms <= 0:
                self._client.delete(full_key)
                return
            pipe = self._client.pipeline(transaction=False)
            pipe.set(full_key, value, px=ttl_ms)
            for tag in dict.fromkeys(tags):
                tag_key = self._tag_key(tag)
                pipe.sadd(tag_key, full_key)
                pipe.pexpire(tag_key, ttl_ms, nx=True)  # a new set gets the entry's TTL ...
                pipe.pexpire(tag_key, ttl_ms, gt=True)  # ... an existing one is only ever extended
            pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable("SET", exc) from exc

    def generation(self, tag: str) -> str:
        try:
            value = self._client.get(self._generation_key(tag))
        except (RedisError, OSError) as exc:
            raise self._unavailable("GET generation", exc) from exc
        if value is None:
            return NO_GENERATION
        return value.decode() if isinstance(value, bytes) else str(value)

    def invalidate_tag(self, tag: str) -> int:
        tag_key = self._tag_key(tag)
        dropped = 0
        try:
            # The new generation first, in the same round trip as the first SPOP: from then on no reader
            # looks under an earlier generation, whatever happens to the rest of the invalidation.
            pipe = self._client.pipeline(transaction=False)
            pipe.set(self._generation_key(tag), secrets.token_hex(8), px=GENERATION_TTL_S * 1000)
            pipe.spop(tag_key, _POP_BATCH)
            _, members = pipe.execute()
            # SPOP rather than SMEMBERS + DEL of the set: a key added concurrently is either popped here
            # or stays in the set for the next invalidation, never forgotten while its entry lives on.
            while members:
                dropped += int(self._client.delete(*members))
                members = self._client.spop(tag_key, _POP_BATCH)
        except (RedisError, OSError) as exc:
            raise self._unavailable("invalidate", exc) from exc
        return dropped

    def describe(self) -> str:
        return self._description

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}tag:{tag}"

    def _generation_key(self, tag: str) -> str:
        return f"{self.prefix}gen:{tag}"

    def _unavailable(self, what: str, exc: Exception) -> BackendUnavailableError:
        return BackendUnavailableError(f"{self._description}: {what} failed: {type(exc).__name__}: {exc}")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs and /v1/health)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
