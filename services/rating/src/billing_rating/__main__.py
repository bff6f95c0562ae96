"""Run the rating service (HTTP health/metrics plus its Kafka consumer)."""

from billing_rating.app import create_app
from billing_rating.settings import RatingSettings
from billing_runtime.service import serve

settings = RatingSettings()
serve(create_app(settings), settings, "rating")
