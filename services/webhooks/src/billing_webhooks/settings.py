"""Webhooks settings: environment variables prefixed ``BILLING_WEBHOOKS_``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from billing_runtime.access import Scope, parse_tokens, read_tokens_file
from billing_runtime.settings import ServiceSettings
from billing_webhooks.domain.deliveries import RetryPolicy
from billing_webhooks.service.deliver import DeliveryPolicy


class WebhooksSettings(ServiceSettings):
    """Settings of the webhooks service and of the ``billing webhooks`` and ``billing audit``
    commands."""

    model_config = SettingsConfigDict(env_prefix="BILLING_WEBHOOKS_", extra="ignore", frozen=True)

    http_port: int = 8105
    consumer_group: str = "billing-webhooks"
    batch_max_records: int = Field(default=200, ge=1)
    allow_http_urls: bool = Field(
        default=False,
        description="Accept plain-HTTP endpoint URLs (a receiver on the same host; never in "
        "production: deliveries carry invoice data).",
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    retry_backoff_seconds: float = Field(
        default=5.0, gt=0, description="Wait after the first failed attempt; doubled each time."
    )
    retry_max_backoff_seconds: float = Field(default=6 * 3600.0, gt=0)
    max_attempts: int = Field(
        default=18,
        ge=1,
        description="Attempts after which a delivery fails for good (default: about 2 days).",
    )
    disable_after_days: float = Field(
        default=5.0,
        gt=0,
        description="An endpoint whose every attempt failed for this long is disabled and the "
        "operators emailed.",
    )
    order_window_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a new delivery waits before its first attempt, so that an "
        "earlier event of the same invoice from another topic goes first.",
    )
    poll_seconds: float = Field(default=1.0, gt=0, description="How often the queue is read.")
    lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a delivery being sent is hidden from replicas."
    )
    concurrency: int = Field(default=16, ge=1, description="Deliveries sent at once.")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_start_tls: bool | None = Field(
        default=None, description="None: STARTTLS when the server offers it."
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    sender: str = "Billing <billing@example.com>"
    operators: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Who is emailed when an endpoint is disabled: comma-separated addresses.",
    )
    api_tokens: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description='HTTP API bearer tokens as JSON: {"<token>": "operator" | "customer:<id>"} '
        "(the same tokens and scopes as the invoicing API's).",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="A JSON file of the same shape (a mounted Kubernetes Secret); merged in.",
    )

    @field_validator("operators", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> WebhooksSettings:
        if (self.smtp_username is None) != (self.smtp_password is None):
            msg = "set both smtp_username and smtp_password, or neither"
            raise ValueError(msg)
        return self

    def api_scopes(self) -> dict[bytes, Scope]:
        """Every configured token with its scope (the file's and the variable's)."""
        tokens = dict(self.api_tokens)
        if self.api_tokens_file is not None:
            tokens.update(
                read_tokens_file(self.api_tokens_file, "BILLING_WEBHOOKS_API_TOKENS_FILE")
            )
        return parse_tokens(tokens)

    @property
    def delivery_policy(self) -> DeliveryPolicy:
        """Retries, disabling, leases and concurrency as these settings say."""
        return DeliveryPolicy(
            retry=RetryPolicy(
                base=timedelta(seconds=self.retry_backoff_seconds),
                maximum=timedelta(seconds=self.retry_max_backoff_seconds),
                max_attempts=self.max_attempts,
                order_window=timedelta(seconds=self.order_window_seconds),
            ),
            disable_after=timedelta(days=self.disable_after_days),
            lease=timedelta(seconds=self.lease_seconds),
            concurrency=self.concurrency,
        )
