"""Wiring of invoicing's adapters into its use cases, for the service and for the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.customer_accounts_repo import MongoCustomerAccountBook
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.einvoice_documents import MongoIssuedDocuments
from billing_invoicing.adapters.einvoice_renderer import CustomerPdfRenderer
from billing_invoicing.adapters.events import KafkaInvoiceEvents
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.service.credit_note_documents import CreditNotePdfPorts
from billing_invoicing.service.customer_accounts import CustomerAccounts
from billing_invoicing.service.einvoices import EInvoicePorts
from billing_invoicing.service.generate_invoices import InvoicingPorts
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import SettlementPorts
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.audit import AuditTrail, KafkaAuditTrail
from billing_runtime.kafka import EventPublisher, Publisher
from billing_runtime.mongo import make_mongo_client


def build_ports(
    db: AsyncDatabase[dict[str, Any]],
    publisher: Publisher,
    renderer: PdfRenderer,
    settings: InvoicingSettings,
) -> InvoicingPorts:
    """The use cases' ports over MongoDB, Kafka and the PDF pool (which renders the
    Factur-X PDF for the customers who receive it, ``adapters/einvoice_renderer.py``)."""
    catalog = MongoCatalogRepository(db)
    return InvoicingPorts(
        catalog=catalog,
        invoices=MongoInvoiceRepository(db),
        renderer=CustomerPdfRenderer(renderer, catalog),
        pdfs=InvoicePdfStore(db),
        events=KafkaInvoiceEvents(publisher, settings.topic_namespace),
        credits=MongoSettlementRepository(db),
    )


def query_ports(
    db: AsyncDatabase[dict[str, Any]],
    ports: InvoicingPorts,
    settings: InvoicingSettings,
    publisher: Publisher,
    renderer: PdfRenderer | None = None,
) -> QueryPorts:
    """The HTTP API's ports: the invoicing ones plus settlements and the stored PDFs (credit
    notes issued through it get their PDF when given the renderer's pool)."""
    settlement = SettlementPorts(
        ports.catalog,
        ports.invoices,
        MongoSettlementRepository(db),
        KafkaInvoiceEvents(publisher, settings.topic_namespace),
        None if renderer is None else credit_note_pdf_ports(ports, renderer),
    )
    return QueryPorts(ports.invoices, settlement, InvoicePdfStore(db))


def credit_note_pdf_ports(ports: InvoicingPorts, renderer: PdfRenderer) -> CreditNotePdfPorts:
    """Credit notes' PDFs: rendered in the PDF pool as the customer receives its invoices
    (Factur-X or plain) and kept in the invoice PDF store."""
    return CreditNotePdfPorts(CustomerPdfRenderer(renderer, ports.catalog), ports.pdfs)


def einvoice_ports(
    db: AsyncDatabase[dict[str, Any]], ports: InvoicingPorts, renderer: PdfRenderer
) -> EInvoicePorts:
    """The e-invoice use case's ports: the catalog, the issued documents, the PDF pool."""
    return EInvoicePorts(ports.catalog, MongoIssuedDocuments(db), renderer)


def pdf_renderer(settings: InvoicingSettings) -> PdfRenderer:
    """The pool of PDF processes (``start`` it early: each imports WeasyPrint)."""
    return PdfRenderer(max_workers=settings.pdf_workers)


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], ports: InvoicingPorts) -> None:
    """The indexes of the invoices and of the settlement records."""
    await ports.invoices.ensure_indexes()
    await MongoSettlementRepository(db).ensure_indexes()


def contact_book(db: AsyncDatabase[dict[str, Any]]) -> MongoContactBook:
    """The customers' contacts and their roles (the API's contact routes)."""
    return MongoContactBook(db)


def customer_accounts(
    db: AsyncDatabase[dict[str, Any]], settlement: SettlementPorts
) -> CustomerAccounts:
    """The customer's account settings and dues (the API's account routes)."""
    return CustomerAccounts(MongoCustomerAccountBook(db), settlement)


@dataclass
class CliContext:
    """What the ``billing invoices``/``billing catalog`` commands work with."""

    settings: InvoicingSettings
    db: AsyncDatabase[dict[str, Any]]
    ports: InvoicingPorts
    settlement: SettlementPorts
    einvoices: EInvoicePorts
    audit: AuditTrail


@asynccontextmanager
async def cli_context(settings: InvoicingSettings | None = None) -> AsyncIterator[CliContext]:
    """Connect to the database and the broker for one command, and clean up after."""
    settings = settings or InvoicingSettings()
    client = make_mongo_client(settings.mongodb_url)
    publisher = EventPublisher(settings.kafka_bootstrap_servers, "billing-cli")
    renderer = PdfRenderer(max_workers=settings.pdf_workers)
    try:
        await publisher.start()
        db = client[settings.mongodb_database]
        ports = build_ports(db, publisher, renderer, settings)
        await ports.invoices.ensure_indexes()
        settlements = MongoSettlementRepository(db)
        await settlements.ensure_indexes()
        settlement = SettlementPorts(
            ports.catalog,
            ports.invoices,
            settlements,
            KafkaInvoiceEvents(publisher, settings.topic_namespace),
            credit_note_pdf_ports(ports, renderer),
        )
        audit = KafkaAuditTrail(
            publisher, settings.topic_namespace, "invoicing", settings.kafka_bootstrap_servers
        )
        einvoices = einvoice_ports(db, ports, renderer)
        yield CliContext(settings, db, ports, settlement, einvoices, audit)
    finally:
        await renderer.aclose()
        await publisher.stop()
        await client.close()
