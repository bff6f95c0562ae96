"""HTTP entrypoint: ``GET /v1/bills``, the bills ingest loaded, for the operator console.

(No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations.)

Only the portal's short-lived signed tokens with the ``operator`` scope are taken (audience
``billing-ingest``, the key in ``BILLING_INGEST_PORTAL_TOKEN_KEY``): the upstream systems'
usage-event tokens are scoped to sources and must not read what other sources loaded.
Without a key the route answers 401 to everything.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from billing_runtime.signed_tokens import verify_scope
from billing_schemas.events import PERIOD_PATTERN

AUDIENCE = "billing-ingest"

ListBills = Callable[[int, str | None], Awaitable[list[dict[str, Any]]]]
"""The bill registry's newest bills, at most that many (those billing a period, if given)."""


class BillOut(BaseModel):
    """A loaded bill: its file, format, status, rows read, accepted and rejected."""

    bill_id: str
    file_name: str | None
    format: str | None
    status: str | None
    rows_read: int | None
    rows_accepted: int | None
    rows_rejected: int | None
    billing_periods: list[str]


def _bill_out(doc: dict[str, Any]) -> BillOut:
    summary = doc.get("summary") or {}
    return BillOut(
        bill_id=str(doc["_id"]),
        file_name=doc.get("file_name"),
        format=doc.get("format"),
        status=doc.get("status"),
        rows_read=doc.get("rows_read"),
        rows_accepted=doc.get("rows_accepted"),
        rows_rejected=doc.get("rows_rejected"),
        billing_periods=list(summary.get("billing_periods") or []),
    )


def bills_api(list_bills: ListBills, *, signing_key: bytes | None) -> FastAPI:
    """The bills route over the bill registry."""
    api = FastAPI(title="billing ingest: bills", docs_url=None, redoc_url=None, openapi_url=None)
    bearer = HTTPBearer(auto_error=False)

    def operator(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = credentials.credentials if credentials else None
        scope = (
            verify_scope(signing_key, given, audience=AUDIENCE, now=time.time())
            if signing_key
            else None
        )
        if scope is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope != "operator":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the bills need an operator token")

    @api.get("/v1/bills", response_model=list[BillOut], dependencies=[Depends(operator)])
    async def get_bills(
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        period: Annotated[
            str | None, Query(pattern=PERIOD_PATTERN, description="Only bills of this period.")
        ] = None,
    ) -> list[BillOut]:
        """The newest bills loaded, newest first, with their row counts and periods (only
        those whose rows bill ``period``, when given)."""
        return [_bill_out(doc) for doc in await list_bills(limit, period)]

    return api
