"""A real HTTP receiver for the webhooks tests: uvicorn on a free loopback port, verifying every
delivery with the two functions ``docs/webhooks.md`` gives receivers to copy.

Imported as ``receiver`` (this folder is on pytest's ``pythonpath``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

DOCS = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"

Verifier = Callable[[str, bytes, dict[str, str]], "dict[str, object] | None"]


def docs_verifiers() -> tuple[Verifier, Verifier]:
    """``verify_webhook`` and ``verify_webhook_stdlib``, run from the code blocks of the docs."""
    namespace: dict[str, Any] = {}
    for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S):
        exec(compile(block, str(DOCS), "exec"), namespace)  # our own docs
    return namespace["verify_webhook"], namespace["verify_webhook_stdlib"]


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    webhook_id: str
    event_type: str | None
    verified: bool
    status: int
    at: float
    body: dict[str, object] | None


@dataclass
class Receiver:
    """Paths and what each answers: ``/ok`` 204; ``/flaky`` 503 to the first attempt of each
    webhook id, then 204; ``/down`` always 500. Every request is verified with the secret of its
    path (``secrets``); an unverified one is answered 400."""

    port: int
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, path: str, *, accepted: bool = True) -> list[Received]:
        """What ``path`` received (only what it accepted, by default), in arrival order."""
        return [r for r in self.received if r.path == path and (r.status < 300 or not accepted)]

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        with_library, with_stdlib = docs_verifiers()
        secret = self.secrets.get(path, "whsec_AAAA")
        event = with_library(secret, body, headers)
        agrees = (with_stdlib(secret, body, headers) is None) == (event is None)
        verified = event is not None and agrees
        webhook_id = headers.get("webhook-id", "")
        earlier = [r for r in self.received if r.path == path and r.webhook_id == webhook_id]
        if not verified:
            status = 400
        elif path == "/down":
            status = 500
        elif path == "/flaky" and not earlier:
            status = 503
        else:
            status = 204
        self.received.append(
            Received(
                path=path,
                webhook_id=webhook_id,
                event_type=None if event is None else str(event["type"]),
                verified=verified,
                status=status,
                at=time.monotonic(),
                body=event,
            )
        )
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    """A receiver served by uvicorn for the duration of the block."""
    receiver = Receiver(_free_port())
    server = uvicorn.Server(
        uvicorn.Config(
            receiver.app,
            host="127.0.0.1",
            port=receiver.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
