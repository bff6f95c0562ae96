"""Notify settings: environment variables prefixed ``BILLING_NOTIFY_``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from billing_notify.adapters.mailer import SmtpSecurity
from billing_notify.domain.delivery import RetryPolicy
from billing_notify.domain.errors import NotificationError
from billing_notify.domain.recipients import EntitySender, Mailbox, parse_mailbox
from billing_runtime.settings import ServiceSettings
from billing_schemas.events import REJECTED_ROWS_CARRIED


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_mailbox(setting: str, text: str) -> None:
    """Refuse a mailbox the mailer could not use, naming the setting it came from."""
    try:
        parse_mailbox(text)
    except NotificationError as exc:
        msg = f"{setting}: {exc}"
        raise ValueError(msg) from None


class NotifySettings(ServiceSettings):
    """Settings of the notify service; a sender or operator that is not a valid mailbox, or an
    SMTP password without a user name, fails at start."""

    model_config = SettingsConfigDict(env_prefix="BILLING_NOTIFY_", extra="ignore", frozen=True)

    http_port: int = 8104
    consumer_group: str = "billing-notify"
    # Each email is an SMTP conversation: small batches keep what a redelivery repeats small.
    batch_max_records: int = Field(default=50, ge=1)
    send_concurrency: int = Field(
        default=8,
        ge=1,
        description="Emails of a batch sent at once (one SMTP connection and delivery-log "
        "record each; those of one customer in order).",
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_security: SmtpSecurity = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    sender: str = Field(
        default="Billing <billing@example.com>",
        description="From of the operators' reports, and every email's envelope sender "
        "(bounces); customer emails are from their invoicing entity (entity_sender).",
    )
    entity_sender: EntitySender = Field(
        default=EntitySender.FROM,
        description="'from': customer emails are From the invoicing entity's name and address; "
        "'reply_to': From the sender above (a relay that requires its own), Reply-To the "
        "entity.",
    )
    operators: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Who gets the bill-processed reports: comma-separated addresses "
        "('ops@example.com, Finance <fin@example.com>'); none: no reports.",
    )
    send_zero_amount_invoices: bool = False
    overdue_reminder_days: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [7, 14, 30],
        description="Days after the due date on which a reminder is sent, e.g. '7,14,30'.",
    )
    rejected_rows_listed: int = Field(
        default=REJECTED_ROWS_CARRIED,
        ge=0,
        le=REJECTED_ROWS_CARRIED,
        description="Rejected rows listed in the operators' bill report (the bill's event "
        "carries the first ones).",
    )
    invoicing_url: str = Field(
        default="http://127.0.0.1:8103",
        description="Invoicing's API, where the PDFs to attach are read (GET /v1/documents/...).",
    )
    invoicing_token: SecretStr | None = Field(
        default=None,
        description="The bearer token notify reads documents with: one of invoicing's "
        "BILLING_INVOICING_DOCUMENT_READER_TOKENS (it may read documents and nothing else).",
    )
    invoicing_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long one request for a document may take."
    )
    retry_backoff_seconds: float = Field(
        default=30.0, gt=0, description="Wait before the first retry; doubled for each next."
    )
    retry_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    retry_max_retries: int = Field(
        default=8, ge=0, description="Retries after which an email is failed and dead-lettered."
    )
    retry_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often the re-driver looks for due retries."
    )
    retry_lease_seconds: float = Field(
        default=300.0, gt=0, description="How long a taken retry is hidden from other replicas."
    )

    @field_validator("operators", "overdue_reminder_days", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("sender")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        _check_mailbox("sender", value)
        return value

    @field_validator("operators")
    @classmethod
    def _valid_operators(cls, value: list[str]) -> list[str]:
        for text in value:
            _check_mailbox("operators", text)
        return value

    @field_validator("overdue_reminder_days")
    @classmethod
    def _valid_schedule(cls, value: list[int]) -> list[int]:
        if any(day < 1 for day in value):
            msg = f"overdue_reminder_days: days after the due date are 1 or more, not {value}"
            raise ValueError(msg)
        return sorted(set(value))

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

    @property
    def operator_mailboxes(self) -> tuple[Mailbox, ...]:
        """The operators' mailboxes (validated when the settings were read)."""
        return tuple(parse_mailbox(text) for text in self.operators)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry schedule these settings describe."""
        return RetryPolicy(
            base=timedelta(seconds=self.retry_backoff_seconds),
            maximum=timedelta(seconds=self.retry_max_backoff_seconds),
            max_retries=self.retry_max_retries,
        )
