"""Settings every service shares, read from the environment with one prefix per service.

A service subclasses :class:`ServiceSettings` and sets ``env_prefix`` (``BILLING_RATING_`` ...).
The defaults point at the local stack that ``scripts/infra.sh up`` starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection and runtime settings of one service."""

    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    mongodb_url: str = "mongodb://127.0.0.1:27117/"
    mongodb_database: str = "billing"
    topic_namespace: str = Field(
        default="",
        description="Prefix of every topic and consumer-group name (pipelines sharing a broker).",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8100
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    graceful_timeout_seconds: float = Field(
        default=20.0, description="How long shutdown waits for in-flight batches."
    )
    batch_max_records: int = Field(default=500, ge=1)
    batch_timeout_ms: int = Field(default=200, ge=1)
