"""Settings: one pydantic model read from ``SHOPREC_*`` environment variables, loaded lazily."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable at run time. Backends are DSN-style strings chosen by their prefix."""

    model_config = SettingsConfigDict(env_prefix="SHOPREC_", extra="ignore")

    data_root: Path = Field(
        default=Path("../shared/data"),
        description="Folder that relative --dataset paths are resolved against.",
    )
    artifacts: str = Field(default="artifacts/scientific", description="Bundle folder or s3://bucket/prefix.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use (never at import time)."""
    return Settings()
