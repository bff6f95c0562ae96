"""Run the webhooks service (HTTP API, health/metrics, its Kafka consumer and dispatcher)."""

from billing_runtime.service import serve
from billing_webhooks.app import create_app
from billing_webhooks.settings import WebhooksSettings

settings = WebhooksSettings()
serve(create_app(settings), settings, "webhooks")
