"""Settings: one pydantic model read from ``SHOPREC_*`` environment variables, loaded lazily.

Backends are DSN-style strings whose prefix picks the adapter (see :mod:`shoprec.container`):

============  =====================================================================================
``state``     ``sqlite:///path/to/file.db`` · ``dynamodb://table-name``
``cache``     ``memory://`` · ``redis://host:port/db`` · ``rediss://host:port/db`` (TLS, ElastiCache)
``ranker``    ``onnx`` (in process) · ``sagemaker://endpoint-name`` · ``http://host:port``
``artifacts`` a local folder · ``s3://bucket/prefix``
``event_log`` ``file:///absolute/folder`` · ``firehose://stream-name`` · ``none`` (default: a folder
              beside a sqlite state file, none beside DynamoDB; ``docs/event-log.md``)
============  =====================================================================================

With ``model_version_parameter`` (an SSM parameter name) the version served is read from the parameter,
cached for ``model_version_max_age_s``, and loaded from its folder under ``artifacts``: with
``artifacts=s3://bucket/models`` and the parameter at ``<hex>``, from ``s3://bucket/models/<hex>``.
Promoting a version needs no redeploy (see ``docs/deploy.md``).

Every validator names the field and the accepted forms, so a typo in a Lambda's environment fails the
cold start with a message that says what to fix.
"""

from __future__ import annotations

import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_FORMS: Final = "sqlite:///path or dynamodb://table"
CACHE_FORMS: Final = "memory://, redis://host:port/db or rediss://host:port/db"
RANKER_FORMS: Final = "onnx, sagemaker://endpoint-name or http(s)://host:port"
EVENT_LOG_FORMS: Final = "file:///absolute/folder, firehose://stream-name or none"
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_PARAMETER_CHARS: Final = _NAME_CHARS | {"/"}
_ELASTICACHE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,39}")


def _default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "shoprec-artifacts"


class Settings(BaseSettings):
    """Everything configurable at run time. Backends are DSN-style strings chosen by their prefix."""

    model_config = SettingsConfigDict(env_prefix="SHOPREC_", extra="ignore", frozen=True)

    # Relative --dataset paths are resolved by shoprec.data.loaders (SHOPREC_DATA_ROOT or ../shared/data).
    artifacts: str = Field(default="artifacts/scientific", description="Bundle folder or s3://bucket/prefix.")
    artifact_cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where bundles from S3 are downloaded to (Lambda: under /tmp).",
    )
    verify_artifacts: bool = Field(
        default=True, description="Check every bundle file's sha256 against the manifest when loading."
    )
    state: str = Field(
        default="sqlite:///./shoprec-state.db", description=f"User-state store: {STATE_FORMS}."
    )
    cache: str = Field(default="memory://", description=f"Result cache: {CACHE_FORMS}.")
    cache_max_entries: int = Field(default=10_000, ge=1, description="Capacity of the in-process cache.")
    cache_iam_user: str | None = Field(
        default=None,
        description="ElastiCache user that a rediss:// cache is connected to as, with IAM authentication "
        "(the password is a SigV4 token signed with the process's AWS credentials); unset: none.",
    )
    cache_name: str | None = Field(
        default=None,
        description="The ElastiCache serverless cache's name, which IAM tokens are signed for (with "
        "cache_iam_user).",
    )
    ranker: str = Field(default="onnx", description=f"Ranking backend: {RANKER_FORMS}.")
    ranker_threads: int = Field(default=1, ge=1, le=64, description="onnxruntime threads of the ranker.")
    ranker_variant: str | None = Field(
        default=None,
        min_length=1,
        description="Which of the bundle's ranker files the in-process ranker loads (fp32, int8, or a "
        "variant the manifest lists, docs/compression.md); unset: the bundle's default_variant. The "
        "ranking endpoint reads the same variable.",
    )
    search_semantic: bool = Field(
        default=True,
        description="Fuse the semantic channel (query embedding vs the items' text embeddings) into search "
        "when the bundle has text embeddings; false: BM25 alone.",
    )
    latency_budget_ms: float = Field(
        default=150.0, gt=0, le=30_000, description="Time the ranker may take before recall scores are used."
    )
    cache_timeout_s: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="Connect and read timeout of a Redis cache. A cache must cost less than a miss: in the "
        "VPC a round trip takes about a millisecond and a TLS connect a few, so 50 ms is ten times a slow "
        "answer and a third of the default latency budget.",
    )
    state_read_timeout_s: float = Field(
        default=0.1,
        gt=0,
        le=5,
        description="Connect and read timeout, without retries, of a DynamoDB state store's read of a user's "
        "recent items on the recommendation path (a failed read serves the user as new, degraded). Writes "
        "and deletions keep the patient client (3 s, 3 attempts). A GetItem takes a few milliseconds in "
        "the region.",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        le=1_000,
        description="Consecutive failures of a Redis cache or a remote ranker that open its circuit breaker.",
    )
    breaker_open_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="How long an open circuit refuses calls before it lets one probe call through.",
    )
    readiness_timeout_s: float = Field(
        default=0.5,
        gt=0,
        le=30,
        description="How long GET /v1/health/ready waits for its dependency probes (they run at once).",
    )
    candidates: int | None = Field(
        default=None,
        ge=1,
        le=5_000,
        description="Recall candidates passed to ranking (default: the bundle's recall budget, 300 when "
        "trained with the defaults; the fusion model was fitted on that many).",
    )
    cache_ttl_s: float = Field(default=300.0, ge=0, description="How long cached result lists live.")
    catalog_read_timeout_s: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="Timeout of the item store's version check (DynamoDB), which runs on the request path "
        "at most every catalog_refresh_s; when it fails the catalogue last read keeps serving.",
    )
    rules_refresh_s: float = Field(
        default=5.0,
        ge=0,
        description="How often (at most) a process reads the merchandising rules again; a rule changed "
        "through another process applies within about this long.",
    )
    catalog_refresh_s: float = Field(
        default=0.5,
        ge=0,
        description="How often (at most) a process asks the item store whether the live catalogue changed "
        "(PUT/DELETE /v1/items); a change is served everywhere within about this long.",
    )
    online_updates: bool = Field(
        default=True,
        description="Learn item co-occurrence and trending popularity from the event stream between "
        "retrains, beside the user state (docs/online-updates.md), and blend them into the item-CF and "
        "popularity channels.",
    )
    online_half_life_s: float = Field(
        default=86_400.0,
        gt=0,
        description="Half-life of the live co-occurrence and trending counts: a view counts half as much "
        "this long after it happened.",
    )
    online_refresh_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long a process serves the live counts it read before reading them again: pairs "
        "viewed together show up in each other's similar items within about this long.",
    )
    online_itemcf_weight: float = Field(
        default=1.0,
        ge=0,
        description="What an item's strongest live co-occurrence pair adds to item-CF, as a multiple of its "
        "best similarity in the bundle (0 turns the blend off).",
    )
    online_popularity_weight: float = Field(
        default=1.0,
        ge=0,
        description="What the most trending item adds to popularity, as a multiple of the bundle's best "
        "seller's count (0 turns the blend off).",
    )
    online_min_count: float = Field(
        default=3.0,
        ge=0,
        description="Decayed weight below which a live pair or trending count is ignored (a few users, "
        "not one, must view two items together).",
    )
    max_body_bytes: int = Field(
        default=262_144, ge=1_024, description="Largest accepted request body; larger ones get 413."
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins (e.g. https://shop.example.com) whose pages may call the API "
        "from a browser (CORS); empty: none (a page served by the API itself needs none).",
    )
    audit_key: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Secret key of the HMAC that names users in deletion audit records (at least 16 "
        "characters; the deploy stack generates one in Secrets Manager). Unset: a built-in key, with which "
        "anyone can test a guessed id against the log.",
    )
    model_version_parameter: str | None = Field(
        default=None,
        description="SSM parameter naming the version folder to serve, under artifacts "
        "(artifacts/{version}); unset: artifacts is the bundle served.",
    )
    model_version_max_age_s: int = Field(
        default=60, ge=0, le=3_600, description="How long a looked-up served version is cached."
    )
    idempotency_table: str | None = Field(
        default=None,
        description="DynamoDB table of the ingest function's idempotency records (Powertools' shape: key "
        "'id', TTL 'expiration'); unset: duplicates are caught by event id in the state store alone.",
    )
    idempotency_expiry_s: int = Field(
        default=3_600,
        ge=60,
        le=7 * 24 * 3_600,
        description="How long an applied SQS message body is remembered and not applied again.",
    )

    event_log: str | None = Field(
        default=None,
        description=f"Event log of every accepted event: {EVENT_LOG_FORMS}. Unset: the folder beside a "
        "sqlite state file (<name>-events), none with DynamoDB state.",
    )

    experiment: str | None = Field(
        default=None,
        description="The A/B experiment served: its JSON, or the path of a JSON file (name, salt, variants "
        "with weights and changes; docs/experiments.md). Unset: no experiment.",
    )

    @field_validator("experiment")
    @classmethod
    def _check_experiment(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from shoprec.experiments import parse_experiment

        parse_experiment(value)  # fails the start with every invalid field named
        return value.strip()

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"cors_origins: {origin!r} is not an origin (scheme://host[:port], no path)")
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("event_log")
    @classmethod
    def _check_event_log(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value == "none":
            return value
        if value.startswith("file:///"):
            return value
        if value.startswith("firehose://"):
            _check_name("event_log", value.removeprefix("firehose://"), value, EVENT_LOG_FORMS)
            return value
        raise ValueError(f"event_log: unknown backend {value!r}; expected {EVENT_LOG_FORMS}")

    @field_validator("model_version_parameter")
    @classmethod
    def _check_model_version_parameter(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if len(value) > 2_048 or not set(value) <= _PARAMETER_CHARS:
            raise ValueError(
                f"model_version_parameter: {value!r} is not an SSM parameter name "
                "(letters, digits and _ . - /, e.g. /shoprec/prod/model-version)"
            )
        return value

    @field_validator("idempotency_table")
    @classmethod
    def _check_idempotency_table(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not 3 <= len(value) <= 255 or not set(value) <= _NAME_CHARS:
            raise ValueError(
                f"idempotency_table: {value!r} is not a DynamoDB table name "
                "(3 to 255 letters, digits, '-', '_' or '.')"
            )
        return value

    @field_validator("artifacts")
    @classmethod
    def _check_artifacts(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("artifacts must be a bundle folder or s3://bucket/prefix, got an empty string")
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme != "s3":
                raise ValueError(
                    f"artifacts: unknown scheme '{parts.scheme}://' in {value!r}; "
                    "expected a local folder or s3://bucket/prefix"
                )
            if not parts.netloc:
                raise ValueError(f"artifacts: {value!r} names no bucket; expected s3://bucket/prefix")
        return value

    @field_validator("state")
    @classmethod
    def _check_state(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("sqlite:///"):
            if not value.removeprefix("sqlite:///"):
                raise ValueError(f"state: {value!r} names no database file; expected {STATE_FORMS}")
            return value
        if value.startswith("dynamodb://"):
            _check_name("state", value.removeprefix("dynamodb://"), value, STATE_FORMS)
            return value
        raise ValueError(f"state: unknown backend {value!r}; expected {STATE_FORMS}")

    @field_validator("cache")
    @classmethod
    def _check_cache(cls, value: str) -> str:
        value = value.strip()
        if value == "memory://":
            return value
        if value.startswith(("redis://", "rediss://")):
            if not urlsplit(value).hostname:
                raise ValueError(f"cache: {value!r} names no host; expected {CACHE_FORMS}")
            return value
        raise ValueError(f"cache: unknown backend {value!r}; expected {CACHE_FORMS}")

    @field_validator("cache_iam_user", "cache_name")
    @classmethod
    def _check_cache_auth_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not _ELASTICACHE_NAME.fullmatch(value):
            raise ValueError(
                f"{info.field_name}: {value!r} is not an ElastiCache name "
                "(a letter, then up to 39 letters, digits or '-', e.g. shoprec-prod-app)"
            )
        return value

    @model_validator(mode="after")
    def _check_cache_auth(self) -> Settings:
        if self.cache_iam_user is None and self.cache_name is None:
            return self
        if self.cache_iam_user is None or self.cache_name is None:
            raise ValueError("cache_iam_user and cache_name: IAM authentication to the cache needs both")
        if not self.cache.startswith("rediss://"):
            raise ValueError(
                f"cache_iam_user: IAM authentication needs a TLS cache (rediss://), not {self.cache!r}"
            )
        return self

    @field_validator("ranker")
    @classmethod
    def _check_ranker(cls, value: str) -> str:
        value = value.strip()
        if value == "onnx":
            return value
        if value.startswith("sagemaker://"):
            _check_name("ranker", value.removeprefix("sagemaker://"), value, RANKER_FORMS)
            return value
        if value.startswith(("http://", "https://")):
            if not urlsplit(value).hostname:
                raise ValueError(f"ranker: {value!r} names no host; expected {RANKER_FORMS}")
            return value
        raise ValueError(f"ranker: unknown backend {value!r}; expected {RANKER_FORMS}")

    def overridden(self, **changes: object) -> Settings:
        """A validated copy with ``changes`` applied (``None`` values are ignored), e.g. from CLI flags."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return Settings.model_validate(data)


def _check_name(field: str, name: str, value: str, forms: str) -> None:
    if not name or not set(name) <= _NAME_CHARS:
        raise ValueError(
            f"{field}: {value!r} needs a name of letters, digits, '-', '_' or '.'; expected {forms}"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use (never at import time)."""
    return Settings()
