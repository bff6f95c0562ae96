"""Rating settings: environment variables prefixed ``BILLING_RATING_``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from billing_runtime.settings import ServiceSettings


class RatingSettings(ServiceSettings):
    """Settings of the rating service."""

    model_config = SettingsConfigDict(env_prefix="BILLING_RATING_", extra="ignore", frozen=True)

    http_port: int = 8102
    consumer_group: str = "billing-rating"
    catalog_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a priced account and FX rates read from the catalog are reused: "
        "a catalog apply is seen by rating at most this much later.",
    )
