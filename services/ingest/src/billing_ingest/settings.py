"""Ingest settings: environment variables prefixed ``BILLING_INGEST_``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from billing_runtime.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    """Settings of the ingest service and of ``billing ingest``."""

    model_config = SettingsConfigDict(env_prefix="BILLING_INGEST_", extra="ignore", frozen=True)

    http_port: int = 8101
    consumer_group: str = "billing-ingest"
    publish_batch_rows: int = Field(
        default=5_000, ge=1, description="Rows published (and acknowledged) per batch."
    )
    api_token: str | None = Field(
        default=None,
        description="Bearer token POST /v1/usage-events requires (none: the network decides).",
    )
    max_events_per_request: int = Field(default=10_000, ge=1)
