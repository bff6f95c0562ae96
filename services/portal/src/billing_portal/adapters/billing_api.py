"""The billing APIs over HTTP (httpx): invoicing's ``/v1`` and ingest's bills.

Every request carries a token signed for the user who asks (``domain/api_tokens.py``), valid
for ``token_seconds``: the API checks it and answers within that user's scope.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from billing_portal.domain.api_tokens import INGEST, INVOICING, sign_api_token
from billing_portal.domain.users import User
from billing_portal.ports import ApiError

Json = Any
_FILENAME = re.compile(r'filename="([^"]+)"')


class HttpBillingApi:
    """:class:`~billing_portal.ports.BillingApi` over HTTP."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        invoicing_url: str,
        ingest_url: str,
        key: bytes,
        token_seconds: int = 60,
    ) -> None:
        self._client = client
        self._invoicing = invoicing_url.rstrip("/")
        self._ingest = ingest_url.rstrip("/")
        self._key = key
        self._seconds = token_seconds

    def _headers(self, user: User, audience: str = INVOICING) -> dict[str, str]:
        token = sign_api_token(
            self._key, scope=user.api_scope, user=user.email, now=time.time(),
            seconds=self._seconds, audience=audience,
        )  # fmt: skip
        return {"Authorization": f"Bearer {token}"}

    async def _call(
        self, user: User, method: str, url: str, *, params: dict[str, str] | None = None,
        body: Json = None, audience: str = INVOICING,
    ) -> httpx.Response:  # fmt: skip
        try:
            answer = await self._client.request(
                method, url, params=params, json=body, headers=self._headers(user, audience)
            )
        except httpx.HTTPError as exc:
            raise ApiError(503, f"the billing API did not answer: {exc}") from None
        if answer.status_code >= 400:
            try:
                detail = answer.json().get("detail", answer.text)
            except ValueError:
                detail = answer.text
            raise ApiError(answer.status_code, detail)
        return answer

    async def get_json(self, user: User, path: str, params: dict[str, str] | None = None) -> Json:
        """See the port."""
        return (await self._call(user, "GET", self._invoicing + path, params=params)).json()

    async def send_json(self, user: User, method: str, path: str, body: Json) -> Json:
        """See the port."""
        answer = await self._call(user, method, self._invoicing + path, body=body)
        return None if answer.status_code == 204 else answer.json()

    async def get_file(self, user: User, path: str) -> tuple[bytes, str, str]:
        """See the port."""
        answer = await self._call(user, "GET", self._invoicing + path)
        found = _FILENAME.search(answer.headers.get("content-disposition", ""))
        name = found.group(1) if found else path.rsplit("/", 2)[-2]
        media = answer.headers.get("content-type", "application/octet-stream")
        return answer.content, media, name

    async def bills(self, user: User, period: str) -> Json:
        """See the port."""
        answer = await self._call(
            user, "GET", self._ingest + "/v1/bills", params={"period": period}, audience=INGEST
        )
        return answer.json()
