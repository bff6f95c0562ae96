"""Run the rating service (HTTP health/metrics plus its Kafka consumer)."""

from billing_rating.app import create_app
from billing_rating.settings import RatingSettings
from billing_runtime.heap import settle_heap
from billing_runtime.service import serve

settings = RatingSettings()
app = create_app(settings)
settle_heap()
serve(app, settings, "rating")
