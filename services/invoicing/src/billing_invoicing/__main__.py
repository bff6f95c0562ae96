"""Run the invoicing service (HTTP health/metrics plus its Kafka consumer)."""

from billing_invoicing.app import create_app
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.service import serve

settings = InvoicingSettings()
serve(create_app(settings), settings, "invoicing")
