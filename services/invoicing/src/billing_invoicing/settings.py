"""Invoicing settings: environment variables prefixed ``BILLING_INVOICING_``."""

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from billing_invoicing.domain.access import (
    MIN_SIGNING_KEY_LENGTH,
    Scope,
    TokenConfigError,
    parse_document_reader_tokens,
    parse_tokens,
)
from billing_runtime.settings import ServiceSettings


class InvoicingSettings(ServiceSettings):
    """Settings of the invoicing service and of the ``billing invoices`` commands."""

    model_config = SettingsConfigDict(env_prefix="BILLING_INVOICING_", extra="ignore", frozen=True)

    http_port: int = 8103
    consumer_group: str = "billing-invoicing"
    pdf_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="WeasyPrint worker processes (default: one per CPU; a close renders the "
        "invoices of a batch together).",
    )
    charge_batch_max_records: int = Field(
        default=5000,
        ge=1,
        description="Charges read per batch of the charge stream: each batch writes each draft "
        "it touches once, so larger batches mean fewer writes per charge.",
    )
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest HTTP API request body (a catalog is the largest): beyond, 413.",
    )
    api_tokens: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description=(
            'HTTP API bearer tokens as JSON: {"<token>": "operator" | "customer:<id>"}. '
            "Without any token the API answers 401 to everything."
        ),
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="A JSON file of the same shape (a mounted Kubernetes Secret); merged in.",
    )

    portal_token_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key shared with the portal (its BILLING_PORTAL_API_SIGNING_KEY), at least 32 "
            "characters: the API then also accepts the portal's short-lived signed tokens."
        ),
    )

    document_reader_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated bearer tokens (16+ characters) that may read issued documents by "
            "file id (GET /v1/documents/{file_id}) and nothing else: notify's "
            "BILLING_NOTIFY_INVOICING_TOKEN. Two during a rotation."
        ),
    )

    @field_validator("document_reader_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def document_readers(self) -> tuple[bytes, ...]:
        """The document-reader tokens (a short one is refused)."""
        return parse_document_reader_tokens(
            [token.get_secret_value() for token in self.document_reader_tokens]
        )

    def portal_signing_key(self) -> bytes | None:
        """The key the portal's signed tokens are checked with (None: not accepted)."""
        if self.portal_token_key is None:
            return None
        key = self.portal_token_key.get_secret_value().encode()
        if len(key) < MIN_SIGNING_KEY_LENGTH:
            msg = f"BILLING_INVOICING_PORTAL_TOKEN_KEY is shorter than {MIN_SIGNING_KEY_LENGTH}"
            raise TokenConfigError(msg)
        return key

    def api_scopes(self) -> dict[bytes, Scope]:
        """Every configured token with its scope (the file's and the variable's)."""
        tokens = dict(self.api_tokens)
        if self.api_tokens_file is not None:
            try:
                loaded = json.loads(self.api_tokens_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                msg = f"BILLING_INVOICING_API_TOKENS_FILE {self.api_tokens_file}: {exc}"
                raise TokenConfigError(msg) from None
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
            ):
                msg = (
                    f"BILLING_INVOICING_API_TOKENS_FILE {self.api_tokens_file}: not a JSON "
                    'object {"<token>": "<scope>"}'
                )
                raise TokenConfigError(msg)
            tokens.update(loaded)
        return parse_tokens(tokens)
