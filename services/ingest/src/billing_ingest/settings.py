"""Ingest settings: environment variables prefixed ``BILLING_INGEST_``."""

import json
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from billing_ingest.domain.access import SourceScope, TokenConfigError, parse_tokens
from billing_runtime.settings import ServiceSettings
from billing_runtime.signed_tokens import MIN_KEY_LENGTH


class IngestSettings(ServiceSettings):
    """Settings of the ingest service and of ``billing ingest``."""

    model_config = SettingsConfigDict(env_prefix="BILLING_INGEST_", extra="ignore", frozen=True)

    http_port: int = 8101
    consumer_group: str = "billing-ingest"
    publish_batch_rows: int = Field(
        default=5_000, ge=1, description="Rows published (and acknowledged) per batch."
    )
    api_tokens: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,
        description=(
            "POST /v1/usage-events bearer tokens as JSON, one per upstream system: "
            '{"<token>": {"name": "...", "sources": [...], "providers": [...], '
            '"accounts": [...]}} ("*" in a list: any).'
        ),
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="A JSON file of the same shape (a mounted Kubernetes Secret); merged in.",
    )
    allow_anonymous: bool = Field(
        default=False,
        description=(
            "Local development only: take usage events without a token (unscoped). Without "
            "it, the service refuses to start when no token is configured."
        ),
    )
    portal_token_key: SecretStr | None = Field(
        default=None,
        description="Key shared with the portal (its BILLING_PORTAL_API_SIGNING_KEY): GET "
        "/v1/bills then takes its short-lived operator tokens.",
    )
    max_events_per_request: int = Field(default=10_000, ge=1)
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest POST /v1/usage-events body, by Content-Length and as read (413).",
    )

    def api_scopes(self) -> dict[bytes, SourceScope]:
        """Every configured token with its scope (the file's and the variable's)."""
        tokens = dict(self.api_tokens)
        if self.api_tokens_file is not None:
            try:
                loaded = json.loads(self.api_tokens_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                msg = f"BILLING_INGEST_API_TOKENS_FILE {self.api_tokens_file}: {exc}"
                raise TokenConfigError(msg) from None
            if not isinstance(loaded, dict):
                msg = (
                    f"BILLING_INGEST_API_TOKENS_FILE {self.api_tokens_file}: not a JSON "
                    'object {"<token>": {<scope>}}'
                )
                raise TokenConfigError(msg)
            tokens.update(loaded)
        return parse_tokens(tokens)

    def usage_api_scopes(self) -> dict[bytes, SourceScope]:
        """The tokens of the usage-events API; none at all is refused unless anonymous use was
        allowed explicitly (local development), so the API is never open by default."""
        scopes = self.api_scopes()
        if not scopes and not self.allow_anonymous:
            msg = (
                "no API token for POST /v1/usage-events: set BILLING_INGEST_API_TOKENS or "
                "BILLING_INGEST_API_TOKENS_FILE (docs/operations.md), or "
                "BILLING_INGEST_ALLOW_ANONYMOUS=true on a development machine"
            )
            raise TokenConfigError(msg)
        return scopes

    def portal_signing_key(self) -> bytes | None:
        """The key the portal's signed tokens are checked with (None: none accepted)."""
        if self.portal_token_key is None:
            return None
        key = self.portal_token_key.get_secret_value().encode()
        if len(key) < MIN_KEY_LENGTH:
            msg = f"BILLING_INGEST_PORTAL_TOKEN_KEY is shorter than {MIN_KEY_LENGTH}"
            raise TokenConfigError(msg)
        return key
