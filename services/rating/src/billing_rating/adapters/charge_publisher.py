"""Where corrections go: the charge stream, keyed by customer like every charge."""

from __future__ import annotations

from collections.abc import Sequence

from billing_runtime.kafka import Publisher
from billing_schemas.channels import CHARGE_RATED
from billing_schemas.events import ChargeRated


class KafkaChargePublisher:
    """Charges onto the charge-rated topic of a namespace."""

    def __init__(self, publisher: Publisher, namespace: str) -> None:
        self._publisher = publisher
        self._topic = CHARGE_RATED.name(namespace)

    async def publish(self, charges: Sequence[ChargeRated]) -> None:
        """See :class:`ChargePublisher`."""
        await self._publisher.publish(self._topic, CHARGE_RATED.keyed(charges))
