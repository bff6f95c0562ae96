"""What invoicing records in the audit trail (``billing_runtime.audit``), built from its use
cases' results at the entrypoints (CLI commands, API routes) once an action succeeded.

Each builder returns ``(audit id, entry)``; the id is the action's own stable id where it has
one (a payment, a credit note), so an action retried (the same payment posted twice) is
recorded once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from billing_catalog.models import Catalog, Contact
from billing_catalog.pricing import PriceList
from billing_invoicing.adapters.catalog_repo import ApplyResult
from billing_invoicing.service.one_off_charges import OneOffOutcome
from billing_invoicing.service.settle_invoices import CreditNoteOutcome, PaymentOutcome
from billing_runtime.audit import as_json
from billing_schemas.events import AuditEntry

Audited = tuple[str | None, AuditEntry]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def catalog_applied(
    catalog: Catalog, result: ApplyResult, before: dict[str, PriceList], actor: str
) -> list[Audited]:
    """``catalog.applied`` (what the file held, what it changed) and one
    ``price_list.versions_changed`` per price list whose versions are not what they were."""
    content = catalog.model_dump(mode="json")
    digest = _digest(content)
    entries: list[Audited] = [
        (
            None,
            AuditEntry(
                action="catalog.applied",
                actor=actor,
                subject=f"catalog:{digest[:12]}",
                summary=(
                    f"catalog applied: {result.customers} customers, {result.accounts} accounts, "
                    f"{result.price_lists} price lists, {result.plans} plans, "
                    f"{result.tax_rates} tax rates, {result.fx_rates} FX rates"
                ),
                after={"sha256": digest, **asdict(result)},
            ),
        )
    ]
    for price_list in catalog.price_lists:
        old = before.get(price_list.id)
        old_versions = None if old is None else [as_json(v) for v in old.versions]
        new_versions = [as_json(v) for v in price_list.versions]
        if old_versions == new_versions:
            continue
        entries.append(
            (
                f"price-list:{price_list.id}:{_digest(new_versions)[:16]}",
                AuditEntry(
                    action="price_list.versions_changed",
                    actor=actor,
                    subject=f"price_list:{price_list.id}",
                    summary=(
                        f"price list {price_list.id}: {len(old_versions or [])} -> "
                        f"{len(new_versions)} versions"
                    ),
                    before=None if old_versions is None else {"versions": old_versions},
                    after={"versions": new_versions},
                ),
            )
        )
    return entries


def close_requested(
    period: str, customer_id: str | None, invoice_ids: Sequence[str], actor: str
) -> Audited:
    """``invoices.close_requested``: a period's invoices are to be finalized."""
    who = f"customer {customer_id}" if customer_id else "all customers"
    return (
        None,
        AuditEntry(
            action="invoices.close_requested",
            actor=actor,
            subject=f"period:{period}",
            customer_id=customer_id,
            summary=f"close of {period} requested ({who}): {len(invoice_ids)} invoices",
            after={"period": period, "customer_id": customer_id, "invoices": list(invoice_ids)},
        ),
    )


def payment_recorded(outcome: PaymentOutcome, actor: str) -> Audited:
    """``payment.recorded`` (the payment and the invoice's status after it)."""
    payment = outcome.payment
    return (
        f"payment:{payment.payment_id}",
        AuditEntry(
            action="payment.recorded",
            actor=actor,
            subject=f"invoice:{payment.invoice_number}",
            customer_id=payment.customer_id,
            summary=(
                f"payment {payment.amount} {payment.currency} on {payment.invoice_number} "
                f"({payment.method}, {payment.reference})"
            ),
            before={"outstanding": str(payment.outstanding_after + payment.amount)},
            after={
                **as_json(payment),
                "status": str(outcome.status),
                "customer_credit_added": str(outcome.customer_credit_added),
            },
        ),
    )


def one_off_charge_added(outcome: OneOffOutcome, customer_id: str, actor: str) -> Audited:
    """``charge.added``: a one-off charge an operator put on a customer's open invoice (under
    the charge's id, so adding it again is recorded once)."""
    return (
        f"charge.added:{outcome.charge_id}",
        AuditEntry(
            action="charge.added",
            actor=actor,
            subject=f"invoice:{outcome.invoice_id}",
            customer_id=customer_id,
            summary=(
                f"one-off charge {outcome.description!r}: {outcome.quantity} x "
                f"{outcome.unit_price} = {outcome.amount} {outcome.currency} "
                f"on {outcome.invoice_id}"
            ),
            after={
                "charge_id": outcome.charge_id,
                "description": outcome.description,
                "quantity": str(outcome.quantity),
                "unit_price": str(outcome.unit_price),
                "amount": str(outcome.amount),
                "currency": outcome.currency,
            },
        ),
    )


def credit_note_issued(outcome: CreditNoteOutcome, actor: str, *, void: bool) -> Audited:
    """``credit_note.issued``, or ``invoice.voided`` when the note cancels the invoice."""
    note = outcome.credit_note
    action = "invoice.voided" if void else "credit_note.issued"
    what = "voided" if void else f"credit note {note.credit_note_number} of {note.total}"
    return (
        f"{action}:{note.credit_note_id}",
        AuditEntry(
            action=action,
            actor=actor,
            subject=f"invoice:{note.invoice_number}",
            customer_id=note.customer_id,
            summary=f"{note.invoice_number} {what} {note.currency}: {note.reason}",
            after={
                **as_json(note),
                "status": str(outcome.status),
                "customer_credit_added": str(outcome.customer_credit_added),
            },
        ),
    )


def contact_changed(
    customer_id: str, before: Contact | None, after: Contact | None, actor: str
) -> Audited:
    """``contact.added``, ``contact.changed`` or ``contact.removed``, with the contact (its
    address, name, roles) before and after."""
    action = (
        "contact.added"
        if before is None
        else "contact.removed"
        if after is None
        else "contact.changed"
    )
    shown = after or before
    email = "" if shown is None else shown.email
    old = None if before is None else as_json(before)
    new = None if after is None else as_json(after)
    return (
        f"{action}:{customer_id}:{_digest([old, new])[:16]}",
        AuditEntry(
            action=action,
            actor=actor,
            subject=f"customer:{customer_id}",
            customer_id=customer_id,
            summary=f"{action.split('.')[1]} contact {email} of {customer_id}",
            before=old,
            after=new,
        ),
    )
