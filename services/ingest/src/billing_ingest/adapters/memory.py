"""In-memory fakes of ingest's ports (``billing_ingest.ports``), for fast tests of the use
cases; ``tests/test_ingest_ports_contract.py`` holds them to what the MongoDB adapters do."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator

from billing_ingest.ports import PreviousBill
from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    RejectedRow,
    UsageRecorded,
    UsageRejected,
)


class InMemoryBillRegistry:
    """Fake of :class:`BillRegistry` for unit tests."""

    def __init__(self) -> None:
        self.done: dict[str, BillSummary] = {}
        self.chains: dict[str, str] = {}
        self.rejections: dict[str, list[RejectedRow]] = defaultdict(list)
        self.begun: list[str] = []
        self.chunks: dict[str, dict[int, tuple[list[str], bytes]]] = defaultdict(dict)
        self.reversed: dict[str, set[str]] = defaultdict(set)
        self.failed: dict[str, str] = {}

    async def processed(self, bill_id: str) -> BillSummary | None:
        return self.done.get(bill_id)

    async def begin(self, *, bill_id: str, file_name: str, checksum: str, fmt: str) -> None:
        self.begun.append(bill_id)

    async def add_rejections(self, bill_id: str, rows: list[RejectedRow]) -> None:
        self.rejections[bill_id] += rows

    async def finish(self, summary: BillSummary, *, chain: str) -> None:
        self.done[summary.bill_id] = summary
        self.chains[summary.bill_id] = chain

    async def fail(self, bill_id: str, error: str) -> None:
        self.failed[bill_id] = error

    async def previous_version(self, scope_entry: str, *, exclude: str) -> PreviousBill | None:
        found = [s for s in self.done.values() if scope_entry in s.scope and s.bill_id != exclude]
        if not found:
            return None
        latest = max(found, key=lambda s: s.version)
        return PreviousBill(
            latest.bill_id, latest.version, self.chains[latest.bill_id], latest.scope
        )

    async def latest_in_chain(self, bill_id: str) -> BillSummary | None:
        chain = self.chains.get(bill_id)
        found = [self.done[b] for b, c in self.chains.items() if c == chain and b in self.done]
        return max(found, key=lambda s: s.version) if chain is not None and found else None

    async def add_lines(self, bill_id: str, chunk: int, ids: list[str], payloads: bytes) -> None:
        self.chunks[bill_id].setdefault(chunk, (ids, payloads))

    async def line_ids(self, bill_id: str) -> set[str]:
        return {i for ids, _ in self.chunks[bill_id].values() for i in ids}

    async def lines(self, bill_id: str) -> AsyncIterator[tuple[list[str], bytes]]:
        for chunk in sorted(self.chunks[bill_id]):
            yield self.chunks[bill_id][chunk]

    async def reversed_ids(self, chain: str) -> set[str]:
        return set(self.reversed[chain])

    async def add_reversed(self, chain: str, bill_id: str, ids: list[str]) -> None:
        self.reversed[chain].update(ids)


class InMemoryCatalogCurrencies:
    """Fake of the port: provider -> currencies."""

    def __init__(self, currencies: dict[str, set[str]] | None = None) -> None:
        self.currencies = dict(currencies or {})

    async def invoicing_currencies(self, provider: str) -> set[str]:
        """See :class:`CatalogCurrencies`."""
        return set(self.currencies.get(provider, set()))


class InMemorySubmittedEvents:
    """Fake of the port for unit tests."""

    def __init__(self) -> None:
        self.events: dict[str, str] = {}

    async def claim(self, claims: dict[str, str]) -> dict[str, str]:
        before = {rid: self.events[rid] for rid in claims if rid in self.events}
        for rid, fp in claims.items():
            self.events.setdefault(rid, fp)
        return before


class InMemoryUsagePublisher:
    """Fake of :class:`UsagePublisher` for unit tests: keeps what was published."""

    def __init__(self) -> None:
        self.usage_events: list[tuple[str, UsageRecorded]] = []
        self.rejected_events: list[tuple[str, UsageRejected]] = []
        self.processed: list[BillProcessed] = []

    async def usage(self, events: list[tuple[str, UsageRecorded]]) -> None:
        self.usage_events += events

    async def usage_serialized(self, records: list[tuple[str, bytes]], correlation_id: str) -> None:
        del correlation_id  # carried in each event too
        self.usage_events += [(k, UsageRecorded.model_validate_json(v)) for k, v in records]

    async def rejected(self, events: list[tuple[str, UsageRejected]]) -> None:
        self.rejected_events += events

    async def bill_processed(self, event: BillProcessed) -> None:
        self.processed.append(event)
