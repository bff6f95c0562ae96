"""HTTP entrypoint: the invoicing API under ``/v1`` (customer panel and operators).

(No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations.)

Every route needs a bearer token (``BILLING_INVOICING_API_TOKENS``): 401 without one or with an
unknown one; 404, as for something that does not exist, when a customer-scoped token asks for
another customer's resources (naming no one); 403 when it asks for what only operators may do.
Routes decode, call a use case of ``service/`` and encode; the rules live there. Money is a
decimal string. OpenAPI at ``/v1/openapi.json``, docs at ``/v1/docs``;
``docs/api.md`` describes every route with examples.
"""

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, EmailStr, Field

from billing_catalog.models import (
    Catalog,
    Contact,
    ContactRole,
    Customer,
    EInvoiceFormat,
    Name,
    PaymentMethod,
)
from billing_invoicing.adapters.catalog_repo import CatalogConflictError
from billing_invoicing.adapters.documents import InvoicePdfCorruptError, InvoicePdfNotFoundError
from billing_invoicing.adapters.settlement_repo import amount_of
from billing_invoicing.domain.access import (
    ForbiddenError,
    OutOfScopeError,
    Scope,
    authenticate,
    is_document_reader,
    require_customer,
    require_operator,
    verify_signed_token,
)
from billing_invoicing.domain.contacts import (
    ContactChange,
    ContactConflictError,
    ContactError,
    ContactNotFoundError,
    contact_id,
)
from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.domain.one_off import OneOffCharge, OneOffChargeError, OneOffTax
from billing_invoicing.domain.settlement import SettlementError
from billing_invoicing.ports import ContactBook
from billing_invoicing.service import audit_entries
from billing_invoicing.service import contacts as contact_cases
from billing_invoicing.service.contacts import CustomerNotFoundError
from billing_invoicing.service.customer_accounts import (
    CustomerAccounts,
    UnsupportedLanguageError,
    correct_invoice,
    customer_account,
    customer_credit_notes,
    set_customer_language,
)
from billing_invoicing.service.customer_credit import credit_statement
from billing_invoicing.service.einvoices import (
    EInvoicePorts,
    EInvoiceUnavailableError,
    einvoice_file,
)
from billing_invoicing.service.focus_export import FocusUnavailableError, invoice_focus
from billing_invoicing.service.generate_invoices import InvoicingPorts, preview, request_close
from billing_invoicing.service.invoice_queries import (
    MAX_OFFSET,
    InvoiceFilter,
    QueryPorts,
    find_invoices,
    invoice_csv,
    invoice_detail,
    invoice_dues,
    invoice_pdf,
    margin_report,
    pay_invoice,
)
from billing_invoicing.service.one_off_charges import (
    OneOffPorts,
    UnknownCustomerError,
    add_one_off_charge,
)
from billing_invoicing.service.settle_invoices import (
    CreditNoteOutcome,
    Dues,
    InvoiceNotFoundError,
)
from billing_runtime.audit import AuditTrail
from billing_schemas.events import PERIOD_PATTERN, today_utc
from billing_schemas.money import MoneyError, WireDecimal, parse_decimal

# --- answers ------------------------------------------------------------------------------


class InvoiceOut(BaseModel):
    """An invoice as the list shows it; amounts as decimal strings in ``currency``."""

    invoice_id: str = Field(description="customer:period")
    number: str | None = Field(description="None while a draft.")
    customer_id: str
    period: str
    status: str
    currency: str | None
    total: WireDecimal | None = Field(description="Tax included; None while a draft.")
    outstanding: WireDecimal | None = Field(description="What is still to be paid.")
    draft_total: WireDecimal | None = Field(description="Usage so far, before tax (drafts).")
    issue_date: str | None = Field(description="The invoice date, YYYY-MM-DD.")
    due_date: str | None
    has_pdf: bool


class InvoicePageOut(BaseModel):
    """A page of invoices; ask again with ``offset=next_offset`` while it is not null."""

    items: list[InvoiceOut]
    offset: int
    limit: int
    next_offset: int | None


class InvoiceDetailOut(InvoiceOut):
    """One invoice: its row, and the finalized document (lines, netting, taxes) or the draft's
    lines so far."""

    document: dict[str, Any] | None = Field(description="The finalized invoice, as issued.")
    draft_lines: list["DraftLineOut"] | None = Field(description="A draft's lines so far.")


class DraftLineOut(BaseModel):
    """A draft's line so far: usage of one period, provider and service."""

    period: str
    provider: str
    service_name: str
    charge_count: int
    price: WireDecimal
    cost: WireDecimal | None = Field(default=None, description="Operators only.")


class TaxOut(BaseModel):
    """One tax line of the invoice."""

    label: str
    tax: WireDecimal


class PaymentOut(BaseModel):
    """A payment recorded against the invoice."""

    payment_id: str
    amount: WireDecimal
    method: str
    reference: str
    paid_on: str


class CreditNoteOut(BaseModel):
    """A credit note issued on the invoice."""

    credit_note_id: str
    number: str
    amount: WireDecimal
    reason: str
    issue_date: str


class DuesOut(BaseModel):
    """What "Pay this invoice" shows: the invoice, what happened since, and how to pay."""

    invoice_id: str
    number: str
    customer_id: str
    customer_name: str
    currency: str
    status: str
    issue_date: str
    due_date: str
    subtotal: WireDecimal
    taxes: list[TaxOut]
    total: WireDecimal
    paid: WireDecimal
    credited: WireDecimal
    outstanding: WireDecimal
    payments: list[PaymentOut]
    credit_notes: list[CreditNoteOut]
    customer_credit: WireDecimal = Field(description="The customer's credit in this currency.")
    credit_applied: WireDecimal = Field(
        default=Decimal(0), description="Customer credit taken off the invoice at finalization."
    )
    payment_methods: list[PaymentMethod]
    payment_reference: str = Field(description="What to quote when paying: the number.")


class PaymentIn(BaseModel):
    """A payment received (operators)."""

    amount: WireDecimal = Field(description="Decimal string in the invoice's currency.")
    method: str = Field(min_length=1, description="One of the seller's payment methods.")
    reference: str = Field(min_length=1, description="The bank's or card processor's reference.")
    paid_on: date | None = Field(default=None, description="Default: today (UTC).")


class PaymentAnswer(BaseModel):
    """What recording the payment did, and the dues after it."""

    payment_id: str
    already_recorded: bool = Field(description="True when this payment was recorded before.")
    status: str
    outstanding_after: WireDecimal
    customer_credit_added: WireDecimal
    dues: DuesOut


class ContactOut(BaseModel):
    """A contact; ``contact_id`` is its address, lower-cased."""

    contact_id: str
    email: str
    name: str | None
    roles: list[ContactRole]
    primary: bool


class ContactIn(BaseModel):
    """A new contact."""

    email: EmailStr
    name: Name | None = None
    roles: list[ContactRole] = Field(default_factory=list)
    primary: bool = False


class ContactPatch(BaseModel):
    """A change of a contact: fields left out stay as they are."""

    email: EmailStr | None = None
    name: Name | None = None
    roles: list[ContactRole] | None = None
    primary: bool | None = None


class MarginRowOut(BaseModel):
    """Cost against price for one customer, provider and service (exact sums, unrounded)."""

    customer_id: str
    provider: str = Field(description="The cloud provider that billed the usage.")
    service_name: str
    currency: str = Field(description="The invoice currency: price, margin, cost_converted.")
    cost_currency: str
    charge_count: int
    cost: WireDecimal = Field(description="What the provider billed, in cost_currency.")
    cost_converted: WireDecimal = Field(description="The cost in the invoice currency.")
    price: WireDecimal
    margin: WireDecimal
    margin_percent: WireDecimal | None = Field(description="margin / price, in %, 2 decimals.")


class MarginReportOut(BaseModel):
    """The margin report of a usage period."""

    period: str
    rows: list[MarginRowOut]


class CloseIn(BaseModel):
    """Close a period (all customers, or one); ``dry_run`` shows what would be issued."""

    customer_id: str | None = None
    dry_run: bool = False


class CloseOutcomeOut(BaseModel):
    """One invoice of a dry run."""

    invoice_id: str
    customer_id: str
    number: str | None
    total: WireDecimal
    currency: str
    status: str
    action: str


class CloseAnswer(BaseModel):
    """Closing asked (202): the invoices being closed; a dry run (200): what would be issued."""

    period: str
    dry_run: bool
    closing: list[str] = Field(description="Invoice ids whose close marker was published.")
    preview: list[CloseOutcomeOut] = Field(description="The dry run's outcome per invoice.")


class CatalogAnswer(BaseModel):
    """What applying the catalog wrote (entries upserted)."""

    invoicing_entities: int
    customers: int
    accounts: int
    price_lists: int
    fx_rates: int
    tax_rates: int
    plans: int


# --- encoding -----------------------------------------------------------------------------


def _dues_out(d: Dues) -> DuesOut:
    return DuesOut(
        invoice_id=d.invoice_id,
        number=d.number,
        customer_id=d.customer_id,
        customer_name=d.customer_name,
        currency=d.currency,
        status=d.status,
        issue_date=d.issue_date,
        due_date=d.due_date,
        subtotal=d.subtotal,
        taxes=[TaxOut(label=label, tax=tax) for label, tax in d.taxes],
        total=d.total,
        paid=d.paid,
        credited=d.credited,
        outstanding=d.outstanding,
        payments=[
            PaymentOut(
                payment_id=p.payment_id,
                amount=p.amount,
                method=p.method,
                reference=p.reference,
                paid_on=p.paid_on.isoformat(),
            )
            for p in d.payments
        ],
        credit_notes=[
            CreditNoteOut(
                credit_note_id=n.credit_note_id,
                number=n.number,
                amount=n.amount,
                reason=n.reason,
                issue_date=n.issue_date.isoformat(),
            )
            for n in d.credit_notes
        ],
        customer_credit=d.customer_credit,
        credit_applied=d.credit_applied,
        payment_methods=d.payment_methods,
        payment_reference=d.number,
    )


def _units(units: Any, currency: str) -> Decimal:
    return amount_of(units, currency)


def _contact_out(c: Contact) -> ContactOut:
    return ContactOut(
        contact_id=contact_id(c),
        email=str(c.email),
        name=c.name,
        roles=list(c.roles),
        primary=c.primary,
    )


def _field_error(where: str, field: str, message: str, code: int) -> HTTPException:
    """An error in FastAPI's validation shape, so clients find the field the same way."""
    return HTTPException(code, [{"loc": [where, field], "msg": message, "type": "value_error"}])


def _decimal_query(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_decimal(value)
    except MoneyError as exc:
        raise _field_error("query", name, str(exc), 422) from None


# --- the app ------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


def caller_scope(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    """The scope of the bearer token given: a static token, or a short-lived token signed
    with the key shared with the portal (401 without one, or with an unknown or expired one)."""
    given = credentials.credentials if credentials else None
    scope = authenticate(request.app.state.tokens, given)
    if scope is None and request.app.state.signing_key:
        scope = verify_signed_token(request.app.state.signing_key, given, now=time.time())
    if scope is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return scope


Caller = Annotated[Scope, Depends(caller_scope)]

ERRORS: list[tuple[type[Exception], int]] = [
    (ForbiddenError, status.HTTP_403_FORBIDDEN),
    (InvoiceNotFoundError, status.HTTP_404_NOT_FOUND),
    (OutOfScopeError, status.HTTP_404_NOT_FOUND),
    (InvoicePdfNotFoundError, status.HTTP_404_NOT_FOUND),
    (CustomerNotFoundError, status.HTTP_404_NOT_FOUND),
    (ContactNotFoundError, status.HTTP_404_NOT_FOUND),
    (ContactConflictError, status.HTTP_409_CONFLICT),
    (CatalogConflictError, status.HTTP_409_CONFLICT),
    (SettlementError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (UnknownCustomerError, status.HTTP_404_NOT_FOUND),
    (OneOffChargeError, status.HTTP_422_UNPROCESSABLE_CONTENT),
]
"""Which use-case error answers which status."""


async def _record(api: FastAPI, audited: audit_entries.Audited) -> None:
    """Record an action in the audit trail, when the API has one."""
    trail: AuditTrail | None = api.state.audit
    if trail is not None:
        audit_id, entry = audited
        await trail.record(entry, audit_id=audit_id)


async def _stored_contact(book: ContactBook, customer_id: str, cid: str) -> Contact | None:
    """A contact as it is now (what the audit trail shows as "before")."""
    for contact in await contact_cases.list_contacts(book, customer_id):
        if contact_id(contact) == cid.casefold():
            return contact
    return None


def _handler(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        del request
        if isinstance(exc, ContactError):
            detail: Any = [{"loc": ["body", exc.field], "msg": str(exc), "type": "conflict"}]
        else:
            detail = str(exc)
        return JSONResponse({"detail": detail}, status_code=code)

    return handle


def invoicing_api(
    *,
    tokens: Mapping[bytes, Scope],
    queries: QueryPorts,
    invoicing: InvoicingPorts,
    contacts: ContactBook,
    einvoices: EInvoicePorts | None = None,
    audit: AuditTrail | None = None,
    signing_key: bytes | None = None,
    accounts: CustomerAccounts | None = None,
    max_request_bytes: int = 16 * 1024 * 1024,
    document_readers: tuple[bytes, ...] = (),
) -> FastAPI:
    """The invoicing HTTP API over its use cases' ports (with ``einvoices``, the e-invoice
    route too; with ``audit``, what changes money or access is recorded there; with
    ``signing_key``, the portal's signed tokens are accepted too; with ``accounts``, the
    customer account and the portal's settlement routes). A request body over
    ``max_request_bytes`` is refused (413) as it is read, before it is parsed;
    ``document_readers`` are the tokens that may read issued documents by file id and
    nothing else (notify's)."""
    api = FastAPI(
        title="billing invoicing",
        summary="Invoices, payments, contacts, margin report, period close, catalog.",
        description=(
            "Bearer tokens: `operator` tokens see every customer; `customer:<id>` tokens only "
            "that customer's invoices, dues and contacts (another customer's answer 404). "
            "Money is a decimal string in the invoice's currency."
        ),
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
        max_body_size=max_request_bytes,
    )
    api.state.tokens = tokens
    api.state.audit = audit
    api.state.signing_key = signing_key
    api.state.document_readers = document_readers
    for error, code in ERRORS:
        api.add_exception_handler(error, _handler(code))
    _invoice_routes(api, queries)
    _invoice_file_routes(api, queries)
    _payment_routes(api, queries)
    _contact_routes(api, contacts)
    _credit_routes(api, queries)
    _one_off_charge_routes(api, invoicing)
    _margin_report_routes(api, queries)
    _period_close_routes(api, invoicing)
    _catalog_routes(api, invoicing)
    if einvoices is not None:
        _einvoice_routes(api, einvoices)
    if accounts is not None:
        _customer_account_routes(api, accounts)
        _correction_routes(api, accounts)
    _document_routes(api, queries)
    return api


def _einvoice_routes(api: FastAPI, einvoices: EInvoicePorts) -> None:
    @api.get(
        "/v1/invoices/{number}/einvoice",
        response_class=Response,
        responses={
            200: {"content": {"application/pdf": {}, "application/xml": {}}},
            422: {"description": "Not available in that format (the detail says why)."},
        },
        tags=["invoices"],
    )
    async def get_einvoice(
        scope: Caller,
        number: str,
        fmt: Annotated[EInvoiceFormat, Query(alias="format")] = EInvoiceFormat.FACTURX,
    ) -> Response:
        """An invoice or credit note as an EN 16931 e-invoice (docs/einvoice.md): `facturx`
        (the PDF/A-3 carrying its CII XML), `xrechnung` (CII) or `peppol` (UBL)."""
        try:
            found = await einvoice_file(einvoices, scope, number, fmt)
        except EInvoiceUnavailableError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        return Response(
            found.content,
            media_type=found.media_type,
            headers={"Content-Disposition": f'attachment; filename="{found.name}"'},
        )


def _invoice_routes(api: FastAPI, queries: QueryPorts) -> None:
    # --- invoices ---------------------------------------------------------------------

    @api.get("/v1/invoices", response_model=InvoicePageOut, tags=["invoices"])
    async def list_invoices(
        *,
        scope: Caller,
        customer: Annotated[str | None, Query(description="Customer id.")] = None,
        period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
        invoice_status: Annotated[InvoiceStatus | None, Query(alias="status")] = None,
        min_total: Annotated[str | None, Query(description="Decimal string.")] = None,
        max_total: Annotated[str | None, Query(description="Decimal string.")] = None,
        adjusted: Annotated[
            bool | None,
            Query(description="Only invoices carrying netting or credit notes (false: without)."),
        ] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> InvoicePageOut:
        """Invoices newest period first; a customer token sees only its customer's."""
        page = await find_invoices(
            queries,
            scope,
            InvoiceFilter(
                customer_id=customer,
                period=period,
                status=invoice_status,
                min_total=_decimal_query(min_total, "min_total"),
                max_total=_decimal_query(max_total, "max_total"),
                adjusted=adjusted,
            ),
            offset=offset,
            limit=limit,
        )
        return InvoicePageOut(
            items=[InvoiceOut(**asdict(s)) for s in page.items],
            offset=page.offset,
            limit=page.limit,
            next_offset=page.next_offset,
        )

    @api.get("/v1/invoices/{number}", response_model=InvoiceDetailOut, tags=["invoices"])
    async def get_invoice(scope: Caller, number: str) -> InvoiceDetailOut:
        """One invoice by number (a draft by its id, ``customer:period``)."""
        detail = await invoice_detail(queries, scope, number)
        return InvoiceDetailOut(
            **asdict(detail.summary),
            document=detail.document,
            draft_lines=None
            if detail.draft_lines is None
            else [DraftLineOut(**line) for line in detail.draft_lines],
        )


def _invoice_file_routes(api: FastAPI, queries: QueryPorts) -> None:
    # --- an invoice's files: its PDF, usage CSV and FOCUS dataset -----------------------

    @api.get(
        "/v1/invoices/{number}/pdf",
        response_class=Response,
        responses={200: {"content": {"application/pdf": {}}}},
        tags=["invoices"],
    )
    async def get_pdf(scope: Caller, number: str) -> Response:
        """The invoice's PDF, byte for byte as issued (404 for a draft)."""
        name, pdf = await invoice_pdf(queries, scope, number)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @api.get(
        "/v1/invoices/{number}/csv",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
        tags=["invoices"],
    )
    async def get_csv(scope: Caller, number: str) -> Response:
        """Every rated usage line behind the invoice: cost, price, margin, rule."""
        name, text = await invoice_csv(queries, scope, number)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @api.get(
        "/v1/invoices/{number}/focus",
        response_class=Response,
        responses={
            200: {"content": {"text/csv": {}}},
            409: {"description": "A draft: no dataset before the invoice is finalized."},
        },
        tags=["invoices"],
    )
    async def get_focus(scope: Caller, number: str) -> Response:
        """The invoice's charges as a FOCUS 1.2 dataset (CSV) for the customer's FinOps tools:
        BilledCost is our price, ListCost the public on-demand price, we are the issuer."""
        try:
            name, text = await invoice_focus(queries, scope, number)
        except FocusUnavailableError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def _payment_routes(api: FastAPI, queries: QueryPorts) -> None:
    # --- an invoice's dues and payments -------------------------------------------------

    @api.get("/v1/invoices/{number}/dues", response_model=DuesOut, tags=["payments"])
    async def get_dues(scope: Caller, number: str) -> DuesOut:
        """The dues breakdown and the ways to pay ("Pay this invoice")."""
        return _dues_out(await invoice_dues(queries, scope, number))

    @api.post(
        "/v1/invoices/{number}/payments",
        response_model=PaymentAnswer,
        status_code=status.HTTP_201_CREATED,
        responses={200: {"description": "This payment was recorded before: nothing changed."}},
        tags=["payments"],
    )
    async def post_payment(
        scope: Caller, number: str, body: PaymentIn, response: Response
    ) -> PaymentAnswer:
        """Record a payment (operators); the same invoice, method and reference again
        records nothing (200). Publishes PaymentRecorded (and InvoicePaid when paid)."""
        outcome, owed = await pay_invoice(
            queries,
            scope,
            number=number,
            amount=body.amount,
            method=body.method,
            reference=body.reference,
            paid_on=body.paid_on or today_utc(),
            correlation_id=f"api-payment:{uuid.uuid4().hex[:12]}",
        )
        await _record(api, audit_entries.payment_recorded(outcome, scope.actor))
        if outcome.already_recorded:
            response.status_code = status.HTTP_200_OK
        return PaymentAnswer(
            payment_id=outcome.payment.payment_id,
            already_recorded=outcome.already_recorded,
            status=outcome.status.value,
            outstanding_after=outcome.payment.outstanding_after,
            customer_credit_added=outcome.customer_credit_added,
            dues=_dues_out(owed),
        )


class CreditEntryOut(BaseModel):
    """One entry of a customer's credit ledger."""

    entry_id: str
    kind: str = Field(description="overpayment, negative_total or applied (negative).")
    currency: str
    amount: WireDecimal = Field(description="Positive: credit granted; negative: credit used.")
    reason: str
    invoice_id: str | None
    invoice_number: str | None
    recorded_at: str | None


class CreditsOut(BaseModel):
    """A customer's credit balance per currency and the entries that add up to it."""

    customer_id: str
    balances: dict[str, WireDecimal]
    entries: list[CreditEntryOut]


class ChargeIn(BaseModel):
    """A one-off charge (operators): added to the customer's open invoice for the period."""

    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM.")
    description: str = Field(min_length=1, max_length=200, description="Printed on the line.")
    quantity: WireDecimal = Field(description="How many, positive.")
    unit_price: WireDecimal = Field(description="Price of one in the customer's currency.")
    tax: OneOffTax = Field(default=OneOffTax.STANDARD, description="standard or exempt.")
    charge_id: str | None = Field(
        default=None, max_length=100, description="Your id for it (default: derived from it)."
    )


class ChargeOut(BaseModel):
    """What adding the charge did."""

    charge_id: str
    invoice_id: str
    description: str
    amount: WireDecimal
    currency: str
    on_draft: bool = Field(description="False: sent, not on the draft yet (consumer behind).")
    already_added: bool


def _credit_routes(api: FastAPI, queries: QueryPorts) -> None:
    @api.get("/v1/customers/{customer_id}/credits", response_model=CreditsOut, tags=["credits"])
    async def get_credits(scope: Caller, customer_id: str) -> CreditsOut:
        """The customer's credit balance and its ledger (a customer sees only its own)."""
        found = await credit_statement(queries.settlement.settlements, scope, customer_id)
        return CreditsOut(
            customer_id=found.customer_id,
            balances=found.balances,
            entries=[
                CreditEntryOut(
                    entry_id=e.entry_id,
                    kind=e.kind.value,
                    currency=e.currency,
                    amount=e.amount,
                    reason=e.reason,
                    invoice_id=e.invoice_id,
                    invoice_number=e.invoice_number,
                    recorded_at=None if e.recorded_at is None else e.recorded_at.isoformat(),
                )
                for e in found.entries
            ],
        )


def _one_off_charge_routes(api: FastAPI, invoicing: InvoicingPorts) -> None:
    @api.post(
        "/v1/customers/{customer_id}/charges",
        response_model=ChargeOut,
        status_code=status.HTTP_201_CREATED,
        responses={
            200: {"description": "This charge was added before: nothing changed."},
            202: {"description": "Sent; not on the draft yet (the consumer is behind)."},
        },
        tags=["charges"],
    )
    async def post_charge(
        scope: Caller, customer_id: str, body: ChargeIn, response: Response
    ) -> ChargeOut:
        """Add a one-off charge to the customer's open invoice (operators); the same charge
        again adds nothing (200)."""
        outcome = await add_one_off_charge(
            OneOffPorts(invoicing.catalog, invoicing.invoices, invoicing.events),
            scope,
            OneOffCharge(
                customer_id=customer_id,
                period=body.period,
                description=body.description,
                quantity=body.quantity,
                unit_price=body.unit_price,
                tax=body.tax,
                charge_id=body.charge_id,
            ),
            correlation_id=f"api-charge:{uuid.uuid4().hex[:12]}",
        )
        if outcome.already_added:
            response.status_code = status.HTTP_200_OK
        else:
            await _record(
                api, audit_entries.one_off_charge_added(outcome, customer_id, scope.actor)
            )
        if not outcome.already_added and not outcome.on_draft:
            response.status_code = status.HTTP_202_ACCEPTED
        return ChargeOut(
            charge_id=outcome.charge_id,
            invoice_id=outcome.invoice_id,
            description=outcome.description,
            amount=outcome.amount,
            currency=outcome.currency,
            on_draft=outcome.on_draft,
            already_added=outcome.already_added,
        )


def _contact_routes(api: FastAPI, contacts: ContactBook) -> None:
    contacts_path = "/v1/customers/{customer_id}/contacts"

    @api.get(contacts_path, response_model=list[ContactOut], tags=["contacts"])
    async def get_contacts(scope: Caller, customer_id: str) -> list[ContactOut]:
        """The customer's contacts and their roles."""
        require_customer(scope, customer_id)
        return [_contact_out(c) for c in await contact_cases.list_contacts(contacts, customer_id)]

    @api.post(
        contacts_path,
        response_model=ContactOut,
        status_code=status.HTTP_201_CREATED,
        tags=["contacts"],
    )
    async def post_contact(scope: Caller, customer_id: str, body: ContactIn) -> ContactOut:
        """Add a contact (409 if the address is taken)."""
        require_customer(scope, customer_id)
        new = Contact(email=body.email, name=body.name, roles=body.roles, primary=body.primary)
        added = await contact_cases.add(contacts, customer_id, new)
        await _record(api, audit_entries.contact_changed(customer_id, None, added, scope.actor))
        return _contact_out(added)

    @api.patch(contacts_path + "/{contact_id}", response_model=ContactOut, tags=["contacts"])
    async def patch_contact(
        scope: Caller, customer_id: str, contact_id: str, body: ContactPatch
    ) -> ContactOut:
        """Change a contact's address, name, roles or primary flag (409 if that would leave
        the customer without a Billing contact, or the address is taken)."""
        require_customer(scope, customer_id)
        change = ContactChange(
            email=None if body.email is None else str(body.email),
            name=body.name,
            roles=body.roles,
            primary=body.primary,
        )
        before = await _stored_contact(contacts, customer_id, contact_id)
        after = await contact_cases.change(contacts, customer_id, contact_id, change)
        await _record(api, audit_entries.contact_changed(customer_id, before, after, scope.actor))
        return _contact_out(after)

    @api.delete(
        contacts_path + "/{contact_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        tags=["contacts"],
    )
    async def delete_contact(scope: Caller, customer_id: str, contact_id: str) -> Response:
        """Remove a contact (409 if it is the last Billing contact)."""
        require_customer(scope, customer_id)
        before = await _stored_contact(contacts, customer_id, contact_id)
        await contact_cases.remove(contacts, customer_id, contact_id)
        await _record(api, audit_entries.contact_changed(customer_id, before, None, scope.actor))
        return Response(status_code=status.HTTP_204_NO_CONTENT)


def _margin_report_routes(api: FastAPI, queries: QueryPorts) -> None:
    @api.get("/v1/reports/margin", response_model=MarginReportOut, tags=["operators"])
    async def get_margin(
        scope: Caller,
        period: Annotated[str, Query(pattern=PERIOD_PATTERN)],
        customer: Annotated[str | None, Query()] = None,
    ) -> MarginReportOut:
        """Cost against price per customer, provider and service for a usage period
        (operators)."""
        rows = await margin_report(queries, scope, period=period, customer_id=customer)
        return MarginReportOut(period=period, rows=[MarginRowOut(**asdict(r)) for r in rows])


def _period_close_routes(api: FastAPI, invoicing: InvoicingPorts) -> None:
    @api.post(
        "/v1/periods/{period}/close",
        response_model=CloseAnswer,
        status_code=status.HTTP_202_ACCEPTED,
        responses={200: {"description": "The dry run: nothing was issued."}},
        tags=["operators"],
    )
    async def close_period(
        scope: Caller,
        period: Annotated[str, Depends(_period_path)],
        response: Response,
        body: CloseIn | None = None,
    ) -> CloseAnswer:
        """Close a period (operators): the same close markers as ``billing invoices
        generate``; the running service finalizes each invoice after the charges before it.
        Poll ``GET /v1/invoices?period=P`` for the numbers."""
        require_operator(scope, "closing a period")
        body = body or CloseIn()
        if body.dry_run:
            response.status_code = status.HTTP_200_OK
            found = await preview(invoicing, period=period, customer_id=body.customer_id)
            return CloseAnswer(
                period=period,
                dry_run=True,
                closing=[],
                preview=[CloseOutcomeOut(**asdict(o)) for o in found],
            )
        closing = await request_close(
            invoicing,
            period=period,
            customer_id=body.customer_id,
            issue_date=today_utc(),
            correlation_id=f"close:{period}:{uuid.uuid4().hex[:12]}",
        )
        await _record(
            api,
            audit_entries.close_requested(period, body.customer_id, sorted(closing), scope.actor),
        )
        return CloseAnswer(period=period, dry_run=False, closing=closing, preview=[])


def _catalog_routes(api: FastAPI, invoicing: InvoicingPorts) -> None:
    @api.put("/v1/catalog", response_model=CatalogAnswer, tags=["operators"])
    async def put_catalog(scope: Caller, catalog: Catalog) -> CatalogAnswer:
        """Apply a catalog (operators), the same as ``billing catalog apply`` with the file
        as JSON: entries upserted, others left alone; 409 if a price-list version in effect
        would change; 422 naming the field of an invalid entry."""
        require_operator(scope, "applying the catalog")
        before = await invoicing.catalog.price_lists([p.id for p in catalog.price_lists])
        result = await invoicing.catalog.apply(catalog)
        for audited in audit_entries.catalog_applied(catalog, result, before, scope.actor):
            await _record(api, audited)
        return CatalogAnswer(**asdict(result))


def _period_path(period: str) -> str:
    if not re.match(PERIOD_PATTERN, period):
        raise _field_error("path", "period", f"{period!r} is not YYYY-MM", 422)
    return period


# --- the portal's routes: the customer's account, corrections -------------------------------


class CustomerAccountOut(BaseModel):
    """The customer's own record ("Customer Info" and "Settings" of the account pane)."""

    customer_id: str
    name: str
    address_lines: list[str]
    city: str | None
    postal_code: str | None
    country: str
    vat_id: str | None
    currency: str
    payment_terms_days: int
    language: str = Field(description="Of the next invoices and emails: en, de or fr.")


class IssuedCreditNoteOut(BaseModel):
    """A credit note issued to the customer (the panel lists them beside its invoices)."""

    credit_note_id: str
    number: str
    invoice_number: str
    currency: str
    amount: WireDecimal = Field(description="Credited, tax included, positive.")
    issue_date: str
    reason: str


class CustomerSettingsIn(BaseModel):
    """The customer's settings that its own users may change."""

    language: str = Field(description="en, de or fr: the next invoices and emails.")


class CreditNoteIn(BaseModel):
    """A credit note on a finalized invoice (operators)."""

    amount: WireDecimal = Field(description="Decimal string, positive, at most what is owed.")
    reason: str = Field(min_length=1)


class VoidIn(BaseModel):
    """Void a finalized invoice (operators): credits everything not credited yet."""

    reason: str = Field(min_length=1)


class CorrectionAnswer(BaseModel):
    """What the credit note (or void) did."""

    credit_note_id: str
    credit_note_number: str
    amount: WireDecimal
    status: str
    customer_credit_added: WireDecimal
    already_issued: bool


def _account_out(c: Customer) -> CustomerAccountOut:
    return CustomerAccountOut(
        customer_id=c.id,
        name=c.name,
        address_lines=list(c.address.lines),
        city=c.address.city,
        postal_code=c.address.postal_code,
        country=c.address.country,
        vat_id=c.vat_id,
        currency=c.currency,
        payment_terms_days=c.payment_terms_days,
        language=c.language,
    )


def _correction_answer(outcome: CreditNoteOutcome) -> CorrectionAnswer:
    note = outcome.credit_note
    return CorrectionAnswer(
        credit_note_id=note.credit_note_id,
        credit_note_number=note.credit_note_number,
        amount=note.total,
        status=outcome.status.value,
        customer_credit_added=outcome.customer_credit_added,
        already_issued=outcome.already_issued,
    )


def _customer_account_routes(api: FastAPI, accounts: CustomerAccounts) -> None:
    api.add_exception_handler(
        UnsupportedLanguageError, _handler(status.HTTP_422_UNPROCESSABLE_CONTENT)
    )

    @api.get("/v1/customers/{customer_id}", response_model=CustomerAccountOut, tags=["customers"])
    async def get_customer(scope: Caller, customer_id: str) -> CustomerAccountOut:
        """The customer's record: name, address, VAT id, currency, payment terms, language."""
        return _account_out(await customer_account(accounts, scope, customer_id))

    @api.get(
        "/v1/customers/{customer_id}/credit-notes",
        response_model=list[IssuedCreditNoteOut],
        tags=["customers"],
    )
    async def get_credit_notes(scope: Caller, customer_id: str) -> list[IssuedCreditNoteOut]:
        """The credit notes issued to the customer, newest first."""
        notes = await customer_credit_notes(accounts, scope, customer_id)
        return [IssuedCreditNoteOut(**asdict(n)) for n in notes]

    @api.patch(
        "/v1/customers/{customer_id}/settings",
        response_model=CustomerAccountOut,
        tags=["customers"],
    )
    async def patch_settings(
        scope: Caller, customer_id: str, body: CustomerSettingsIn
    ) -> CustomerAccountOut:
        """Change the language of the customer's next invoices and emails (422 for a language
        they are not written in)."""
        found = await set_customer_language(accounts, scope, customer_id, body.language)
        return _account_out(found)


def _correction_routes(api: FastAPI, accounts: CustomerAccounts) -> None:
    @api.post(
        "/v1/invoices/{number}/credit-notes",
        response_model=CorrectionAnswer,
        status_code=status.HTTP_201_CREATED,
        tags=["payments"],
    )
    async def post_credit_note(scope: Caller, number: str, body: CreditNoteIn) -> CorrectionAnswer:
        """Issue a credit note on a finalized invoice (operators). Publishes
        CreditNoteIssued."""
        outcome = await correct_invoice(
            accounts,
            scope,
            number=number,
            amount=body.amount,
            reason=body.reason,
            issue_date=today_utc(),
            correlation_id=f"api-credit:{uuid.uuid4().hex[:12]}",
        )
        return _correction_answer(outcome)

    @api.post(
        "/v1/invoices/{number}/void",
        response_model=CorrectionAnswer,
        status_code=status.HTTP_201_CREATED,
        tags=["payments"],
    )
    async def post_void(scope: Caller, number: str, body: VoidIn) -> CorrectionAnswer:
        """Void a finalized invoice (operators): a credit note for everything not credited
        yet; the invoice becomes void."""
        outcome = await correct_invoice(
            accounts,
            scope,
            number=number,
            amount=None,
            reason=body.reason,
            issue_date=today_utc(),
            correlation_id=f"api-void:{uuid.uuid4().hex[:12]}",
        )
        return _correction_answer(outcome)


# --- issued documents by file id (notify's attachments) -----------------------------------


def document_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who reads a document by file id: a document-reader token (notify), else an operator
    (401 without a valid token, 403 for a customer's)."""
    given = credentials.credentials if credentials else None
    if is_document_reader(request.app.state.document_readers, given):
        return "document-reader"
    scope = caller_scope(request, credentials)
    require_operator(scope, "reading a document by file id")
    return scope.actor


DocumentReader = Annotated[str, Depends(document_reader)]


def _document_routes(api: FastAPI, queries: QueryPorts) -> None:
    @api.get(
        "/v1/documents/{file_id:path}",
        response_class=Response,
        responses={
            200: {"content": {"application/pdf": {}}},
            409: {"description": "The stored bytes no longer match their recorded checksum."},
        },
        tags=["documents"],
    )
    async def get_document(reader: DocumentReader, file_id: str) -> Response:
        """An issued invoice's or credit note's PDF (the Factur-X PDF/A-3 for a customer who
        receives Factur-X) by the file id its event carries (``pdf_file_id``), byte for byte
        as stored: notify attaches it to the email after checking the event's checksum."""
        del reader
        try:
            pdf = await queries.pdfs.load(file_id)
        except InvoicePdfCorruptError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return Response(pdf, media_type="application/pdf", headers={"Cache-Control": "no-store"})
