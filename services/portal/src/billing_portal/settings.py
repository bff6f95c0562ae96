"""Portal settings: environment variables prefixed ``BILLING_PORTAL_``."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from billing_portal.domain.api_tokens import MIN_KEY_LENGTH
from billing_runtime.settings import ServiceSettings


class PortalConfigError(ValueError):
    """A setting the portal cannot run with (the message names it, never its value)."""


class PortalSettings(ServiceSettings):
    """Settings of the portal and of the ``billing users`` commands."""

    model_config = SettingsConfigDict(env_prefix="BILLING_PORTAL_", extra="ignore", frozen=True)

    http_port: int = 8106
    invoicing_url: str = Field(default="http://127.0.0.1:8103", description="Invoicing's API.")
    ingest_url: str = Field(default="http://127.0.0.1:8101", description="Ingest's API.")
    public_url: str = Field(
        default="http://127.0.0.1:8106",
        description="Where users reach the portal (the set-password links point there).",
    )
    api_signing_key: SecretStr | None = Field(
        default=None,
        description="Key shared with invoicing (its BILLING_INVOICING_PORTAL_TOKEN_KEY), at "
        "least 32 characters: signs the short-lived tokens the portal calls the API with.",
    )
    session_key: SecretStr | None = Field(
        default=None,
        description="Signs the session cookies, at least 32 characters. Required unless "
        "local_dev, where a random one is made per start (sessions end at a restart).",
    )
    local_dev: bool = Field(
        default=False,
        description="Local development over plain HTTP: cookies without Secure; a missing "
        "session key is generated. Never in production.",
    )
    session_minutes: int = Field(default=480, ge=5, description="A session's lifetime.")
    trusted_proxies: str = Field(
        default="127.0.0.1",
        description="Addresses whose X-Forwarded-For is believed (uvicorn's "
        "forwarded_allow_ips): failed sign-ins are counted per client address, so behind an "
        "ingress controller this must name it, or every user shares its address.",
    )
    api_token_seconds: int = Field(default=60, ge=5, le=600)

    def signing_key(self) -> bytes:
        """The API signing key (refused when missing or short)."""
        key = self.api_signing_key.get_secret_value() if self.api_signing_key else ""
        if len(key) < MIN_KEY_LENGTH:
            msg = f"BILLING_PORTAL_API_SIGNING_KEY must be set, at least {MIN_KEY_LENGTH} chars"
            raise PortalConfigError(msg)
        return key.encode()

    def cookie_key(self) -> str:
        """The session key; in local development only, a random one when none is set."""
        key = self.session_key.get_secret_value() if self.session_key else ""
        if not key and self.local_dev:
            return secrets.token_urlsafe(32)
        if len(key) < MIN_KEY_LENGTH:
            msg = f"BILLING_PORTAL_SESSION_KEY must be set, at least {MIN_KEY_LENGTH} chars"
            raise PortalConfigError(msg)
        return key
