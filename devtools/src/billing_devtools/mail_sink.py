"""A real SMTP server (aiosmtpd) that writes every message it receives as an ``.eml`` file.

It is the local stack's mail catcher: the demo and the tests send real SMTP to it and read the
files back. Every accepted message becomes one file, so a duplicate send shows as a second file.
The envelope is recorded the way a local delivery agent does, as ``Return-Path`` and one
``Delivered-To`` header per recipient, put before the message's own headers.

Run it with ``python -m billing_devtools.mail_sink --port 2525 --directory var/mail``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("billing.mail_sink")


@dataclass
class MaildirSink:
    """aiosmtpd handler: accept the message and store it under ``directory``."""

    directory: Path
    received: list[Path] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del server, session
        content = envelope.original_content or b""
        trace = [f"Return-Path: <{envelope.mail_from}>\r\n".encode()]
        trace += [f"Delivered-To: {rcpt}\r\n".encode() for rcpt in envelope.rcpt_tos]
        digest = hashlib.sha256(content).hexdigest()[:12]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{stamp}-{digest}.eml"
        n = 1
        while path.exists():
            n += 1
            path = self.directory / f"{stamp}-{digest}-{n}.eml"
        path.write_bytes(b"".join(trace) + content)
        self.received.append(path)
        log.info("stored %s for %s", path.name, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


async def serve(handler: Any, host: str, port: int) -> asyncio.Server:
    """Start an SMTP server for ``handler`` on the running loop (port 0 picks a free port)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="billing-mail-sink", ident="billing mail sink"),
        host=host,
        port=port,
    )


async def _main(host: str, port: int, directory: Path) -> None:
    server = await serve(MaildirSink(directory), host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("SMTP sink on %s:%d writing to %s", host, port, directory)
    async with server:
        await stop.wait()
    with contextlib.suppress(Exception):
        server.close()


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--directory", type=Path, default=Path("var/mail"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_main(args.host, args.port, args.directory))


if __name__ == "__main__":
    main()
