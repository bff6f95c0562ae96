"""A batch of emails: sent concurrently, at most ``limit`` at once, and what they share.

Emails of one partition key (a customer, a bill) are sent one after another in the batch's
order, as they were before: the same event twice in a batch is settled by the first before the
second looks at the delivery log, so concurrency never makes two attempts at one Message-ID.
Emails of different keys run side by side: each is its own delivery-log record and SMTP
conversation, so exactly-once per recipient holds for each as it does alone.

Once the SMTP server as a whole failed in the batch (:attr:`DeliveryOutcome.server_unavailable`),
every email that has not *started* yet is scheduled for retry without trying
(:attr:`Mode.DEFER`); those already talking to the server finish their own attempt (each is
scheduled for retry on its own failure). So a failing server is tried by at most ``limit``
emails of a batch, in parallel: the batch holds its partitions for about one SMTP timeout.

A step that fails with the database or the network (raised) stops new steps from starting; the
others in flight finish (none is cancelled half-way through an SMTP conversation), then the
first such error is raised and the whole batch is redelivered, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import replace
from typing import TypeVar

from billing_catalog.models import Customer, InvoicingEntity
from billing_notify.ports import CustomerDirectory
from billing_notify.service.deliver import DeliveryOutcome, Mode, NotifyPorts

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchDirectory:
    """The catalog's customers and invoicing entities read at most once per batch (a batch
    mails many customers billed by the same few entities). A customer changed in the catalog
    applies from the next batch on; only the batch's own emails share what was read."""

    def __init__(self, catalog: CustomerDirectory) -> None:
        self._catalog = catalog
        self._customers: dict[str, asyncio.Task[Customer | None]] = {}
        self._entities: dict[str, asyncio.Task[InvoicingEntity | None]] = {}

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerDirectory`."""
        return await _once(self._customers, customer_id, self._catalog.customer)

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """See :class:`CustomerDirectory`."""
        return await _once(self._entities, entity_id, self._catalog.invoicing_entity)


async def _once(known: dict[K, asyncio.Task[V]], key: K, read: Callable[[K], Awaitable[V]]) -> V:
    """``read(key)``, shared by every caller of the batch (concurrent ones included)."""
    task = known.get(key)
    if task is None:
        task = known[key] = asyncio.ensure_future(read(key))
    return await asyncio.shield(task)


def cached_per_batch(ports: NotifyPorts) -> NotifyPorts:
    """The ports for one batch: catalog reads shared by the batch's emails."""
    return replace(ports, customers=BatchDirectory(ports.customers))


class SmtpGate:
    """Whether the batch's next email may talk to the SMTP server (see the module docstring)."""

    def __init__(self) -> None:
        self.server_failed = False

    @property
    def mode(self) -> Mode:
        """How the email starting now is delivered."""
        return Mode.DEFER if self.server_failed else Mode.SEND

    def saw(self, outcome: DeliveryOutcome) -> None:
        """Note an email's outcome: a server that failed defers the emails not started yet."""
        self.server_failed = self.server_failed or outcome.server_unavailable


async def run_by_key(
    keys: Sequence[Hashable], step: Callable[[int], Awaitable[None]], limit: int
) -> None:
    """Run ``step(i)`` for every index of ``keys``: the indexes of one key one after another in
    order, different keys concurrently, at most ``limit`` steps at once.

    An exception of a step stops the steps not started yet; those running finish; then the
    first exception is raised.
    """
    if limit < 1:
        msg = f"the send concurrency is 1 or more, not {limit}"
        raise ValueError(msg)
    chains: dict[Hashable, list[int]] = {}
    for index, key in enumerate(keys):
        chains.setdefault(key, []).append(index)
    slots = asyncio.Semaphore(limit)
    errors: list[BaseException] = []

    async def chain(indexes: list[int]) -> None:
        for index in indexes:
            async with slots:
                if errors:
                    return
                try:
                    await step(index)
                except Exception as exc:  # noqa: BLE001 - raised below, once the others finish
                    errors.append(exc)
                    return

    await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
    if errors:
        raise errors[0]
