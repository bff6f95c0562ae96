"""Ingest's ports: what loading a bill and accepting upstream events need from the bill
registry, the catalog, the accepted-events store and the broker, each with a real adapter
(``adapters/``) and an in-memory fake (``adapters/memory.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    RejectedRow,
    UsageRecorded,
    UsageRejected,
)


class BillRegistry(Protocol):
    """Port: remember which bills were loaded, their figures and their rejected rows."""

    async def processed(self, bill_id: str) -> BillSummary | None:
        """The summary of a bill that was loaded to the end, else None."""
        ...

    async def begin(self, *, bill_id: str, file_name: str, checksum: str, fmt: str) -> None:
        """Record that loading started (status processing)."""
        ...

    async def add_rejections(self, bill_id: str, rows: list[RejectedRow]) -> None:
        """Keep rejected rows (idempotent per bill and row)."""
        ...

    async def finish(self, summary: BillSummary, *, chain: str) -> None:
        """Record the final figures and status (``chain``: the first version's bill id)."""
        ...

    async def fail(self, bill_id: str, error: str) -> None:
        """Record that a load stopped on an error (status failed; loading again resumes)."""
        ...

    async def previous_version(self, scope_entry: str, *, exclude: str) -> PreviousBill | None:
        """The latest loaded bill whose scope holds ``scope_entry`` (not ``exclude``)."""
        ...

    async def latest_in_chain(self, bill_id: str) -> BillSummary | None:
        """The latest loaded version of the chain ``bill_id`` belongs to (None if unknown)."""
        ...

    async def add_lines(self, bill_id: str, chunk: int, ids: list[str], payloads: bytes) -> None:
        """Keep a chunk of a bill's accepted lines: their ids and their JSON, compressed."""
        ...

    def lines(self, bill_id: str) -> AsyncIterator[tuple[list[str], bytes]]:
        """A bill's line chunks in order: (ids, compressed JSON lines)."""
        ...

    async def line_ids(self, bill_id: str) -> set[str]:
        """The ids of a bill's lines (without their JSON)."""
        ...

    async def reversed_ids(self, chain: str) -> set[str]:
        """Record ids a restatement of this chain ever reversed."""
        ...

    async def add_reversed(self, chain: str, bill_id: str, ids: list[str]) -> None:
        """Remember reversed record ids (idempotent)."""
        ...


@dataclass(frozen=True)
class PreviousBill:
    """A loaded bill a new one may restate."""

    bill_id: str
    version: int
    chain: str
    scope: list[str]


class CatalogCurrencies(Protocol):
    """Port: the invoicing currencies of the customers owning a provider's accounts."""

    async def invoicing_currencies(self, provider: str) -> set[str]:
        """Every currency a customer with an account of ``provider`` is invoiced in."""
        ...


class UsagePublisher(Protocol):
    """Port: where accepted and rejected usage goes."""

    async def usage_serialized(self, records: list[tuple[str, bytes]], correlation_id: str) -> None:
        """Publish accepted records as ``UsageRecorded`` JSON (key: sub-account); wait for acks."""
        ...

    async def rejected(self, events: list[tuple[str, UsageRejected]]) -> None:
        """Publish rejected rows (key: bill id) and wait for the broker's ack."""
        ...

    async def bill_processed(self, event: BillProcessed) -> None:
        """Publish the bill's final figures."""
        ...


class SubmittedEvents(Protocol):
    """Port: which upstream events were accepted, and with what content."""

    async def claim(self, claims: dict[str, str]) -> dict[str, str]:
        """Claim ``record id -> fingerprint`` pairs; return the fingerprints already stored for
        the ids that were claimed before (the others are now claimed)."""
        ...


class EventsPublisher(Protocol):
    """Port: where accepted and rejected events go (ingest's usage publisher)."""

    async def usage(self, events: list[tuple[str, UsageRecorded]]) -> None: ...

    async def rejected(self, events: list[tuple[str, UsageRejected]]) -> None: ...
