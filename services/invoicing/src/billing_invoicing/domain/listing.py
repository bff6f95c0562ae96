"""How the invoice list is ordered and paged from keys, and what the total filter's buckets are.

The list (``GET /v1/invoices``) shows invoices newest period first, then by customer and id.
A page must read a bounded number of documents, each by ``_id`` (the one filter every FerretDB
backend answers without reading a growing collection whole), so the repository keeps the keys
of the list in a few documents, maintained on write: per customer, per period, per total
bucket. A key is ``(period, customer id, invoice id)``; :func:`in_list_order` sorts keys as the
list shows them.

Totals are bucketed twice by their integer part's number of digits and first digits: a fine
bucket by two digits (``105.30`` -> ``+3:10``, covering ``[100, 110)``) and a coarse one by
one (``+3:1``, ``[100, 200)``). A total range reads the coarse buckets that lie inside it and
the fine ones at its edges (:func:`buckets_to_read`): at most 9 coarse and 18 fine buckets per
decade the range spans, each holding only totals of the range but at its edges, where a fine
bucket spans a tenth of its magnitude. Negative totals (an invoice whose credit exceeded it)
have buckets of their own (``-``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

Key = tuple[str, str, str]
"""``(period, customer id, invoice id)`` of one invoice in the list."""


def in_list_order(keys: Iterable[Key]) -> list[Key]:
    """Keys as the list shows them: newest period first, then by customer, then by id
    (duplicates dropped)."""
    ordered = sorted(set(keys), key=lambda k: (k[1], k[2]))
    ordered.sort(key=lambda k: k[0], reverse=True)  # stable: customer, id stay ascending
    return ordered


_DESCENDING = str.maketrans("0123456789", "9876543210")


def _list_position(invoice_id: str) -> tuple[str, str]:
    # a period's digits inverted sort ascending as the periods descending (same-length
    # ``YYYY-MM`` periods); then the customer (an id is ``<customer>:<period>``)
    customer, _, period = invoice_id.rpartition(":")
    return period.translate(_DESCENDING), customer


def ids_in_list_order(invoice_ids: Iterable[str]) -> list[Key]:
    """The keys of invoice ids as :func:`in_list_order` orders them (duplicates dropped), in
    one sort on a string key: a customer's 10,000 ids in a third of the time."""
    ordered = sorted(dict.fromkeys(invoice_ids), key=_list_position)
    keys = []
    for invoice_id in ordered:
        customer, _, period = invoice_id.rpartition(":")
        keys.append((period, customer, invoice_id))
    return keys


def total_buckets(total: Decimal) -> list[str]:
    """The buckets of an invoice total, coarse then fine: sign, the integer part's digit
    count, its first digit, then its first two (``105.30`` -> ``+3:1``, ``+3:10``; a total
    below 10 has one bucket: ``0.99`` -> ``+1:0``; ``-42`` -> ``-2:4``, ``-2:42``)."""
    digits = str(int(abs(total)))
    prefix = f"{'-' if total < 0 else '+'}{len(digits)}:"
    return list(dict.fromkeys((prefix + digits[:1], prefix + digits[:2])))


def bucket_bounds(bucket: str) -> tuple[Decimal, Decimal]:
    """The closed range ``[low, high]`` that holds every total of ``bucket`` (its upper end is
    open in truth; closed here, so an overlap test is never too narrow)."""
    sign, rest = bucket[0], bucket[1:]
    count, head = rest.split(":")
    scale = Decimal(10) ** (int(count) - len(head))
    low, high = Decimal(head) * scale, (Decimal(head) + 1) * scale
    return (-high, -low) if sign == "-" else (low, high)


def _inside(bucket: str, low: Decimal | None, high: Decimal | None) -> bool:
    lowest, highest = bucket_bounds(bucket)
    return (low is None or lowest >= low) and (high is None or highest <= high)


def _coarse(bucket: str) -> str:
    prefix, head = bucket.split(":")
    return f"{prefix}:{head[:1]}"


def buckets_to_read(
    existing: Iterable[str], low: Decimal | None, high: Decimal | None
) -> list[str]:
    """Which of the ``existing`` buckets a total range ``[low, high]`` reads: the coarse ones
    inside it, and the fine ones that overlap it where their coarse one is not inside."""
    found = set(existing)
    inside = {b for b in found if b == _coarse(b) and _inside(b, low, high)}
    fine = {
        b
        for b in found
        if (b != _coarse(b) or b.split(":")[0][1:] == "1")
        and _coarse(b) not in inside
        and bucket_may_hold(b, low, high)
    }
    return sorted(inside | fine)


def bucket_may_hold(bucket: str, low: Decimal | None, high: Decimal | None) -> bool:
    """Whether a total of ``bucket`` may lie in ``[low, high]`` (None: unbounded). A bucket's
    far end from zero is open: ``+3:10`` holds ``[100, 110)``, ``-3:10`` holds ``(-110, -100]``."""
    lowest, highest = bucket_bounds(bucket)
    if bucket.startswith("-"):
        return (low is None or highest >= low) and (high is None or lowest < high)
    return (low is None or highest > low) and (high is None or lowest <= high)
