"""Run the notify service (HTTP health/metrics plus its Kafka consumer)."""

from billing_notify.app import create_app
from billing_notify.settings import NotifySettings
from billing_runtime.service import serve

settings = NotifySettings()
serve(create_app(settings), settings, "notify")
