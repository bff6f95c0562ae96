"""Notify settings: environment variables prefixed ``BILLING_NOTIFY_``."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from billing_notify.adapters.mailer import SmtpSecurity
from billing_notify.domain.errors import NotificationError
from billing_notify.domain.recipients import Mailbox, parse_mailbox
from billing_runtime.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    """Settings of the notify service; a sender that is not a valid mailbox fails at start."""

    model_config = SettingsConfigDict(env_prefix="BILLING_NOTIFY_", extra="ignore", frozen=True)

    http_port: int = 8104
    consumer_group: str = "billing-notify"
    # Each email is an SMTP conversation: small batches keep what a redelivery repeats small.
    batch_max_records: int = Field(default=50, ge=1)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_security: SmtpSecurity = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    sender: str = "Billing <billing@example.com>"
    send_zero_amount_invoices: bool = False
    retry_backoff_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Pause before a batch is redelivered after a transient SMTP failure.",
    )

    @field_validator("sender")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        try:
            parse_mailbox(value)
        except NotificationError as exc:
            msg = f"sender: {exc}"
            raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> NotifySettings:
        if (self.smtp_username is None) != (self.smtp_password is None):
            msg = "set both smtp_username and smtp_password, or neither"
            raise ValueError(msg)
        return self

    @property
    def sender_mailbox(self) -> Mailbox:
        """The From mailbox (validated when the settings were read)."""
        return parse_mailbox(self.sender)
