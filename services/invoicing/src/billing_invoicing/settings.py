"""Invoicing settings: environment variables prefixed ``BILLING_INVOICING_``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from billing_runtime.settings import ServiceSettings


class InvoicingSettings(ServiceSettings):
    """Settings of the invoicing service and of the ``billing invoices`` commands."""

    model_config = SettingsConfigDict(env_prefix="BILLING_INVOICING_", extra="ignore", frozen=True)

    http_port: int = 8103
    consumer_group: str = "billing-invoicing"
    pdf_workers: int = Field(default=1, ge=1, description="WeasyPrint worker processes.")
