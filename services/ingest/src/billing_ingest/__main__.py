"""Run the ingest service (HTTP health/metrics plus its Kafka consumer)."""

from billing_ingest.app import create_app
from billing_ingest.settings import IngestSettings
from billing_runtime.service import serve

settings = IngestSettings()
serve(create_app(settings), settings, "ingest")
