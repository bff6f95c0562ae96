"""Restated bills (pure): what supersedes what, and the correction that takes a line back.

A provider restates a bill by issuing a new version of it: the same provider, billing account
and period (the bill's *scope*), other lines. Lines are identified by their content (see
:func:`billing_ingest.domain.cells.record_id_for`), so between two versions:

* a line in both is the same record: it is not published again;
* a line only in the new version is a new record;
* a line only in the earlier version is taken back by a *reversal*: a copy with every quantity
  and amount negated, ``charge_class`` ``correction`` and ``corrects_record_id`` naming it.

A changed line is therefore a reversal of the old line plus the new line, and what flows on
is exactly the difference: the sum of everything published equals the latest version. A line
that was reversed and comes back in a later version is published under a new id
(``<id>~v<version>``), since its first id is already taken.
"""

from __future__ import annotations

from billing_schemas.events import UsageRecord

_NEGATED = (
    "pricing_quantity",
    "consumed_quantity",
    "list_cost",
    "on_demand_cost",
    "billed_cost",
    "effective_cost",
)


def reversal_id(record_id: str) -> str:
    """The id of the reversal of ``record_id`` (a line is reversed at most once)."""
    return f"{record_id}~rev"


def reversal_of(record: UsageRecord, *, bill_id: str) -> UsageRecord:
    """The correction that cancels ``record``, issued by the restating bill ``bill_id``."""
    negated = {name: -value for name in _NEGATED if (value := getattr(record, name)) is not None}
    return record.model_copy(
        update={
            **negated,
            "record_id": reversal_id(record.record_id),
            "bill_id": bill_id,
            "source_ref": None,
            "charge_class": "correction",
            "corrects_record_id": record.record_id,
        }
    )
