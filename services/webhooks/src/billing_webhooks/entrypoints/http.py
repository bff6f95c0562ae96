"""HTTP entrypoint: the webhooks API under ``/v1`` (operators, and customers for their own).

(No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations.)

The same bearer tokens and scopes as the invoicing API (``billing_runtime.access``): 401
without a valid one; a customer token manages its own customer's endpoints only, and another
customer's endpoint answers 404 as if it did not exist. Routes decode, call a use case of
``service/`` and encode. OpenAPI at ``/v1/openapi.json``; ``docs/webhooks.md`` has examples.
"""

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from billing_runtime.access import ForbiddenError, OutOfScopeError, Scope, authenticate
from billing_webhooks.domain.deliveries import Attempt, Delivery, delivery_id
from billing_webhooks.domain.endpoints import Endpoint, EndpointError, EndpointNotFoundError
from billing_webhooks.domain.messages import EventKind
from billing_webhooks.ports import AuditLog, DeliveryStore, EndpointStore
from billing_webhooks.service import endpoints as cases
from billing_webhooks.service.audit import MAX_READ, audit_trail

MAX_LIMIT = 1000


class EndpointOut(BaseModel):
    """A webhook endpoint (its secret is shown once, when it is created)."""

    endpoint_id: str
    url: str
    customer_id: str | None = Field(description="None: an operators' endpoint (everything).")
    event_types: list[EventKind] = Field(description="Empty: every event type.")
    description: str
    enabled: bool
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None


class CreatedEndpointOut(EndpointOut):
    """A new endpoint, with the secret its receiver verifies signatures with."""

    secret: str = Field(description="whsec_...: keep it; it is not shown again.")


class EndpointIn(BaseModel):
    """An endpoint to register."""

    url: str = Field(description="HTTPS URL the deliveries are POSTed to.")
    customer_id: str | None = Field(
        default=None,
        description="Operators: the customer whose events it receives (none: every customer's "
        "and the bills'). Customer tokens: ignored, always their own customer.",
    )
    event_types: list[EventKind] = Field(default_factory=list, description="Empty: all.")
    description: str = Field(default="", max_length=500)


class DisableIn(BaseModel):
    """Why an endpoint is disabled."""

    reason: str = Field(default="disabled through the API", max_length=500)


class AttemptOut(BaseModel):
    """One POST of a delivery."""

    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    """One event for one endpoint: state, attempts, the last answer."""

    delivery_id: str
    endpoint_id: str
    message_id: str = Field(description="The webhook-id header: the event id.")
    event_type: EventKind
    order_key: str
    occurred_at: datetime
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_duration_ms: float | None
    created_at: datetime
    finished_at: datetime | None


class AuditOut(BaseModel):
    """One recorded action: who, when, what, before and after."""

    audit_id: str
    at: datetime
    source: str = Field(description="The service that recorded it.")
    action: str
    actor: str = Field(description="'user:<email>', 'token:<name>' or 'cli:<os user>'.")
    subject: str
    customer_id: str | None
    summary: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class DeliveryDetailOut(DeliveryOut):
    """A delivery with every attempt and the body sent."""

    body: str
    attempt_log: list[AttemptOut]


def endpoint_out(endpoint: Endpoint) -> dict[str, Any]:
    """The public fields of an endpoint (no secret)."""
    return {
        "endpoint_id": endpoint.endpoint_id,
        "url": endpoint.url,
        "customer_id": endpoint.customer_id,
        "event_types": sorted(endpoint.event_kinds),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "created_at": endpoint.created_at,
        "created_by": endpoint.created_by,
        "disabled_at": endpoint.disabled_at,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since,
    }


def delivery_out(delivery: Delivery) -> dict[str, Any]:
    """A delivery as the API and ``billing webhooks deliveries --json`` show it."""
    return {
        "delivery_id": delivery.delivery_id,
        "endpoint_id": delivery.endpoint_id,
        "message_id": delivery.message_id,
        "event_type": delivery.kind,
        "order_key": delivery.order_key,
        "occurred_at": delivery.occurred_at,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if delivery.finished_at is None else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_duration_ms": delivery.last_duration_ms,
        "created_at": delivery.created_at,
        "finished_at": delivery.finished_at,
    }


def attempt_out(attempt: Attempt) -> dict[str, Any]:
    """One attempt as shown."""
    return {
        "number": attempt.number,
        "at": attempt.at,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }


_bearer = HTTPBearer(auto_error=False)


def caller_scope(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    """The scope of the bearer token given (401 without one or with an unknown one)."""
    scope = authenticate(request.app.state.tokens, credentials.credentials if credentials else None)
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
    (OutOfScopeError, status.HTTP_404_NOT_FOUND),
    (EndpointNotFoundError, status.HTTP_404_NOT_FOUND),
    (EndpointError, status.HTTP_422_UNPROCESSABLE_CONTENT),
]
"""Which use-case error answers which status."""


def _handler(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        del request
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle


def actor_of(scope: Scope) -> str:
    """Who did it, as the audit trail says: the token's name."""
    return scope.actor


def webhooks_api(
    *,
    tokens: Mapping[bytes, Scope],
    endpoints: EndpointStore,
    deliveries: DeliveryStore,
    audit: AuditLog | None = None,
    allow_http: bool = False,
) -> FastAPI:
    """The webhooks HTTP API over its use cases' ports (with ``audit``, the audit trail's
    route too)."""
    api = FastAPI(
        title="billing webhooks",
        summary="Webhook endpoints and their deliveries.",
        description=(
            "Bearer tokens as for the invoicing API: `operator` tokens manage every endpoint; "
            "`customer:<id>` tokens only that customer's. Deliveries are signed per the "
            "Standard Webhooks specification (docs/webhooks.md)."
        ),
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
    )
    api.state.tokens = tokens
    for error, code in ERRORS:
        api.add_exception_handler(error, _handler(code))
    _endpoint_routes(api, endpoints, deliveries, allow_http=allow_http)
    _delivery_routes(api, endpoints, deliveries)
    if audit is not None:
        _audit_routes(api, audit)
    return api


def _endpoint_routes(
    api: FastAPI, endpoints: EndpointStore, deliveries: DeliveryStore, *, allow_http: bool
) -> None:
    @api.get("/v1/webhooks/endpoints", tags=["webhooks"])
    async def list_endpoints(
        scope: Caller, customer_id: Annotated[str | None, Query()] = None
    ) -> list[EndpointOut]:
        """The endpoints the token may see (operators: all, or one customer's)."""
        found = await cases.visible_endpoints(endpoints, scope, customer_id)
        return [EndpointOut.model_validate(endpoint_out(e)) for e in found]

    @api.post("/v1/webhooks/endpoints", status_code=status.HTTP_201_CREATED, tags=["webhooks"])
    async def add_endpoint(scope: Caller, body: EndpointIn) -> CreatedEndpointOut:
        """Register an endpoint; the answer holds its signing secret (shown only here)."""
        endpoint = await cases.add_endpoint(
            endpoints,
            scope,
            cases.NewEndpoint(
                url=body.url,
                customer_id=body.customer_id,
                event_kinds=[k.value for k in body.event_types],
                description=body.description,
            ),
            actor=actor_of(scope),
            allow_http=allow_http,
        )
        return CreatedEndpointOut.model_validate(
            endpoint_out(endpoint) | {"secret": endpoint.secret}
        )

    @api.get("/v1/webhooks/endpoints/{endpoint_id}", tags=["webhooks"])
    async def get_endpoint(scope: Caller, endpoint_id: str) -> EndpointOut:
        """One endpoint."""
        endpoint = await cases.find_endpoint(endpoints, scope, endpoint_id)
        return EndpointOut.model_validate(endpoint_out(endpoint))

    @api.post("/v1/webhooks/endpoints/{endpoint_id}/disable", tags=["webhooks"])
    async def disable_endpoint(
        scope: Caller, endpoint_id: str, body: DisableIn | None = None
    ) -> EndpointOut:
        """Stop delivering to the endpoint; its queued deliveries are abandoned."""
        reason = (body or DisableIn()).reason
        endpoint = await cases.disable_endpoint(
            endpoints, deliveries, scope, endpoint_id, reason=f"{reason} ({actor_of(scope)})"
        )
        return EndpointOut.model_validate(endpoint_out(endpoint))

    @api.post("/v1/webhooks/endpoints/{endpoint_id}/enable", tags=["webhooks"])
    async def enable_endpoint(scope: Caller, endpoint_id: str) -> EndpointOut:
        """Deliver new events to the endpoint again."""
        endpoint = await cases.enable_endpoint(endpoints, scope, endpoint_id)
        return EndpointOut.model_validate(endpoint_out(endpoint))


def _delivery_routes(api: FastAPI, endpoints: EndpointStore, deliveries: DeliveryStore) -> None:
    @api.get("/v1/webhooks/endpoints/{endpoint_id}/deliveries", tags=["webhooks"])
    async def list_deliveries(
        scope: Caller,
        endpoint_id: str,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> list[DeliveryOut]:
        """The endpoint's deliveries, newest first."""
        endpoint = await cases.find_endpoint(endpoints, scope, endpoint_id)
        found = await deliveries.deliveries(endpoint_id=endpoint.endpoint_id, limit=limit)
        return [DeliveryOut.model_validate(delivery_out(d)) for d in found]

    @api.get("/v1/webhooks/endpoints/{endpoint_id}/deliveries/{message_id}", tags=["webhooks"])
    async def get_delivery(scope: Caller, endpoint_id: str, message_id: str) -> DeliveryDetailOut:
        """One delivery with its attempts (status, error, response time) and body."""
        endpoint = await cases.find_endpoint(endpoints, scope, endpoint_id)
        delivery = await deliveries.get(delivery_id(endpoint.endpoint_id, message_id))
        if delivery is None:
            msg = f"no delivery {message_id!r} to {endpoint_id!r}"
            raise EndpointNotFoundError(msg)
        attempts = await deliveries.attempts(delivery.delivery_id)
        return DeliveryDetailOut.model_validate(
            delivery_out(delivery)
            | {"body": delivery.body, "attempt_log": [attempt_out(a) for a in attempts]}
        )


def _audit_routes(api: FastAPI, audit: AuditLog) -> None:
    @api.get("/v1/audit", tags=["audit"])
    async def get_audit(
        scope: Caller,
        since: Annotated[datetime | None, Query(description="ISO 8601; default: all")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_READ)] = 1000,
    ) -> list[AuditOut]:
        """Every action that changed money or access, oldest first (operators only)."""
        found = await audit_trail(audit, scope, since=since, limit=limit)
        return [AuditOut.model_validate(r.as_json()) for r in found]
