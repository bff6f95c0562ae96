"""HTTP entrypoint: ``POST /v1/usage-events`` takes a batch of upstream usage events.

(No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations.)

The body is a JSON array of CloudEvents-style events (the same JSON the
``billing.usage.submitted.v1`` topic takes). The answer has a verdict per event, in order
(see :mod:`billing_ingest.service.accept_events`); one bad event never rejects its neighbours.
The status is 200 when the batch was processed, whatever the verdicts; 400 when the body is
not a JSON array, 413 when it holds more than ``max_events_per_request`` events, 401 without
the bearer token when ``BILLING_INGEST_API_TOKEN`` is set. The OpenAPI document is served at
``/v1/openapi.json`` and the interactive docs at ``/v1/docs``.
"""

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from billing_ingest.service.accept_events import EventResult, Verdict
from billing_schemas.events import UsageSubmitted

Accept = Callable[[list[bytes]], Awaitable[list[EventResult]]]


class EventVerdict(BaseModel):
    """The verdict on one event."""

    index: int
    verdict: Verdict
    id: str | None = None
    source: str | None = None
    record_id: str | None = None
    field: str | None = None
    reason: str | None = None


class BatchAnswer(BaseModel):
    """Counts per verdict, then the verdict on each event in the batch's order."""

    accepted: int
    duplicate: int
    conflict: int
    rejected: int
    results: list[EventVerdict]


def _count(results: list[EventResult], verdict: Literal[Verdict]) -> int:
    return sum(1 for r in results if r.verdict == verdict)


def usage_events_api(accept: Accept, *, api_token: str | None, max_events: int) -> FastAPI:
    """The HTTP API of ingest; ``accept`` is the use case bound to its ports."""
    api = FastAPI(
        title="billing ingest",
        summary="Usage events from upstream systems, in batches.",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False)

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if api_token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), api_token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @api.post(
        "/v1/usage-events",
        response_model=BatchAnswer,
        dependencies=[Depends(authorized)],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/UsageSubmitted"},
                        }
                    }
                },
            }
        },
    )
    async def post_usage_events(request: Request) -> BatchAnswer:
        """Validate, record and publish a batch of usage events; a verdict per event."""
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not JSON: {exc}") from None
        if not isinstance(body, list):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body must be a JSON array")
        if len(body) > max_events:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"{len(body)} events; at most {max_events} per request",
            )
        results = await accept([json.dumps(item).encode() for item in body])
        return BatchAnswer(
            accepted=_count(results, "accepted"),
            duplicate=_count(results, "duplicate"),
            conflict=_count(results, "conflict"),
            rejected=_count(results, "rejected"),
            results=[
                EventVerdict(
                    index=r.index,
                    verdict=r.verdict,
                    id=r.event_id,
                    source=r.source,
                    record_id=r.record_id,
                    field=r.field,
                    reason=r.reason,
                )
                for r in results
            ],
        )

    def openapi() -> dict[str, Any]:
        # the body is read raw (a verdict per event), so FastAPI cannot see its schema: add it
        if api.openapi_schema is None:
            document = get_openapi(title=api.title, version=api.version, routes=api.routes)
            event = UsageSubmitted.model_json_schema(ref_template=_REF)
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(event.pop("$defs", {}))
            components["UsageSubmitted"] = event
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


_REF = "#/components/schemas/{model}"
