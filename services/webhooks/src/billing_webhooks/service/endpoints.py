"""Use cases on endpoints: register, list, disable, enable. Customers manage their own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from billing_runtime.access import Scope, require_customer
from billing_webhooks.domain import endpoints as rules
from billing_webhooks.domain.deliveries import DeliveryState, abandon
from billing_webhooks.domain.endpoints import Endpoint, EndpointNotFoundError
from billing_webhooks.ports import DeliveryStore, EndpointStore


@dataclass(frozen=True)
class NewEndpoint:
    """What registering an endpoint takes."""

    url: str
    customer_id: str | None
    event_kinds: list[str]
    description: str = ""


async def add_endpoint(
    store: EndpointStore,
    scope: Scope,
    new: NewEndpoint,
    *,
    actor: str,
    allow_http: bool = False,
    now: datetime | None = None,
) -> Endpoint:
    """Register an endpoint; a customer token registers for its own customer only (an operator
    one for any customer, or for the operators when ``customer_id`` is None)."""
    customer_id = new.customer_id if scope.is_operator else scope.customer_id
    if customer_id is not None:
        require_customer(scope, customer_id)
    endpoint = Endpoint(
        endpoint_id=rules.new_endpoint_id(),
        url=rules.check_url(new.url, allow_http=allow_http),
        secret=rules.new_secret(),
        customer_id=customer_id,
        event_kinds=rules.parse_kinds(new.event_kinds),
        description=new.description,
        created_at=now or datetime.now(UTC),
        created_by=actor,
    )
    await store.add(endpoint)
    return endpoint


async def visible_endpoints(
    store: EndpointStore, scope: Scope, customer_id: str | None = None
) -> list[Endpoint]:
    """The endpoints the scope may see (a customer's own; operators all, or one customer's)."""
    if not scope.is_operator:
        customer_id = scope.customer_id
    elif customer_id is not None:
        require_customer(scope, customer_id)
    return await store.all(customer_id)


async def find_endpoint(store: EndpointStore, scope: Scope, endpoint_id: str) -> Endpoint:
    """An endpoint the scope may see; another customer's is answered as not found."""
    endpoint = await store.get(endpoint_id)
    if endpoint is None or (not scope.is_operator and endpoint.customer_id != scope.customer_id):
        msg = f"no endpoint {endpoint_id!r}"
        raise EndpointNotFoundError(msg)
    return endpoint


async def disable_endpoint(
    store: EndpointStore,
    deliveries: DeliveryStore,
    scope: Scope,
    endpoint_id: str,
    *,
    reason: str,
    now: datetime | None = None,
) -> Endpoint:
    """Stop delivering to an endpoint; its queued deliveries are abandoned."""
    endpoint = await find_endpoint(store, scope, endpoint_id)
    if not endpoint.enabled:
        return endpoint
    at = now or datetime.now(UTC)
    disabled = rules.disable(endpoint, at, reason)
    await store.save(disabled)
    await abandon_queued(deliveries, disabled, at)
    return disabled


async def enable_endpoint(store: EndpointStore, scope: Scope, endpoint_id: str) -> Endpoint:
    """Deliver to an endpoint again (new events only: abandoned deliveries stay abandoned)."""
    endpoint = await find_endpoint(store, scope, endpoint_id)
    enabled = rules.enable(endpoint)
    await store.save(enabled)
    return enabled


async def abandon_queued(deliveries: DeliveryStore, endpoint: Endpoint, now: datetime) -> int:
    """Take a disabled endpoint's deliveries out of the queue; return how many."""
    reason = f"endpoint disabled: {endpoint.disabled_reason or 'by an operator'}"
    count = 0
    for delivery in await deliveries.pending():
        if delivery.endpoint_id == endpoint.endpoint_id and delivery.state is DeliveryState.PENDING:
            await deliveries.record(abandon(delivery, now, reason), None)
            count += 1
    return count
