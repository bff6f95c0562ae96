"""HTTP entrypoint: ``POST /v1/usage-events`` takes a batch of upstream usage events.

(No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations.)

The body is a JSON array of CloudEvents-style events (the same JSON the
``billing.usage.submitted.v1`` topic takes). The answer has a verdict per event, in order
(see :mod:`billing_ingest.service.accept_events`); one bad event never rejects its neighbours.
The status is 200 when the batch was processed, whatever the verdicts; 401 without a valid
bearer token (unless anonymous use was allowed, for local development); 413 when the body is
larger than ``max_request_bytes`` (by its Content-Length before anything is read, and as it is
read, before it is parsed) or holds more than ``max_events_per_request`` events; 400 when it is
not a JSON array. Each token has a scope (:mod:`billing_ingest.domain.access`), checked per
event. The OpenAPI document is served at ``/v1/openapi.json`` and the interactive docs at
``/v1/docs``.
"""

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from billing_ingest.domain.access import SourceScope, TokenConfigError, authenticate
from billing_ingest.service.accept_events import EventResult, Verdict
from billing_schemas.events import UsageSubmitted

Accept = Callable[[list[bytes], SourceScope | None], Awaitable[list[EventResult]]]
"""The use case bound to its ports: the raw events and the submitting token's scope."""


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


def usage_events_api(
    accept: Accept,
    *,
    tokens: Mapping[bytes, SourceScope],
    allow_anonymous: bool = False,
    max_events: int,
    max_bytes: int,
) -> FastAPI:
    """The HTTP API of ingest; ``accept`` is the use case bound to its ports. Without any
    token it is refused unless ``allow_anonymous`` says so (local development)."""
    if not tokens and not allow_anonymous:
        msg = "the usage-events API needs at least one token (or allow_anonymous)"
        raise TokenConfigError(msg)
    api = FastAPI(
        title="billing ingest",
        summary="Usage events from upstream systems, in batches.",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
    )
    authorized = _authorizer(tokens, allow_anonymous=allow_anonymous)

    @api.post(
        "/v1/usage-events",
        response_model=BatchAnswer,
        responses={
            401: {"description": "No valid bearer token."},
            413: {"description": "Body over the byte limit, or too many events."},
        },
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
    async def post_usage_events(
        request: Request, scope: Annotated[SourceScope | None, Depends(authorized)]
    ) -> BatchAnswer:
        """Validate, record and publish a batch of usage events; a verdict per event."""
        events = _events_of(await _read_body(request, max_bytes), max_events)
        return _answer(await accept(events, scope))

    api.openapi = _openapi_with_events(api)  # type: ignore[method-assign]
    return api


def _authorizer(
    tokens: Mapping[bytes, SourceScope], *, allow_anonymous: bool
) -> Callable[[HTTPAuthorizationCredentials | None], SourceScope | None]:
    """The dependency that gives a request's token scope (None: anonymous, when allowed);
    401 without a valid bearer token."""
    bearer = HTTPBearer(auto_error=False)

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> SourceScope | None:
        if credentials is None and allow_anonymous:
            return None  # local development: unscoped
        scope = authenticate(tokens, credentials.credentials if credentials else None)
        if scope is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return scope

    return authorized


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) beyond ``max_bytes`` before it is read or parsed."""
    too_large = f"at most {max_bytes} bytes per request"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid Content-Length")
        if int(declared) > max_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"the body is {int(declared)} bytes; {too_large}",
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:  # no or a false Content-Length: the bytes read decide
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"the body is over {max_bytes} bytes; {too_large}",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _events_of(raw: bytes, max_events: int) -> list[bytes]:
    """The events of a body that is a JSON array (400 otherwise; 413 beyond ``max_events``),
    each as its own JSON."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # nested deeper than Python recurses
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not JSON: {exc}") from None
    if not isinstance(body, list):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body must be a JSON array")
    if len(body) > max_events:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(body)} events; at most {max_events} per request",
        )
    return [json.dumps(item).encode() for item in body]


def _answer(results: list[EventResult]) -> BatchAnswer:
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


def _openapi_with_events(api: FastAPI) -> Callable[[], dict[str, Any]]:
    """The API's OpenAPI document with the events' schema: the body is read raw (a verdict
    per event), so FastAPI cannot see it."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = get_openapi(title=api.title, version=api.version, routes=api.routes)
            event = UsageSubmitted.model_json_schema(ref_template=_REF)
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(event.pop("$defs", {}))
            components["UsageSubmitted"] = event
            api.openapi_schema = document
        return api.openapi_schema

    return openapi


_REF = "#/components/schemas/{model}"
