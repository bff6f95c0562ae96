"""The invoicing service as ``bench/drafts_bench.py`` runs it: ``python -m billing_invoicing``'s
app, plus a count of the database commands each batch of the charge stream sends.

PyMongo's command monitoring (registered before any client exists, so it sees the service's
own client) counts every command by name; the charge-stream handler
(``entrypoints/consumers.apply_charge_stream``) is wrapped to take the count before and after
each batch. Nothing else changes: the service's settings come from the environment as usual.
At shutdown the batches' figures are written as JSON to ``DRAFTS_BENCH_STATS``.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pymongo import monitoring


class CommandCounter(monitoring.CommandListener):
    """Counts the commands sent, by name and collection (one command = one round trip to the
    database)."""

    def __init__(self) -> None:
        self.by_name: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()
        self._names: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        where = f" {target}" if isinstance(target, str) else ""
        name = self._names[event.request_id] = f"{event.command_name}{where}"
        self.by_name[name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def _done(self, request_id: int, micros: int) -> None:
        name = self._names.pop(request_id, None)
        if name is not None:
            self.micros[name] += micros


def main() -> None:
    commands = CommandCounter()
    monitoring.register(commands)

    import billing_invoicing.entrypoints.consumers as consumers
    from billing_invoicing.app import SERVICE, create_app
    from billing_invoicing.settings import InvoicingSettings
    from billing_runtime.service import serve

    batches: list[dict[str, Any]] = []
    handle = consumers.apply_charge_stream

    async def counted(ports: Any, events: Any) -> Any:
        before, started = Counter(commands.by_name), time.monotonic()
        micros = Counter(commands.micros)
        result = await handle(ports, events)
        sent = commands.by_name - before
        waited = commands.micros - micros
        batches.append(
            {
                "records": len(events),
                # CLOCK_MONOTONIC: the benchmark's process reads the same clock
                "started": started,
                "ended": time.monotonic(),
                "seconds": round(time.monotonic() - started, 4),
                "commands": sum(sent.values()),
                "by_command": dict(sent),
                # time from sending each command to its answer, summed (commands in flight at
                # once add up beyond the batch's time)
                "command_seconds": {k: round(v / 1e6, 4) for k, v in waited.items()},
            }
        )
        return result

    consumers.apply_charge_stream = counted
    settings = InvoicingSettings()
    app = create_app(settings)

    def write_stats() -> None:
        Path(os.environ["DRAFTS_BENCH_STATS"]).write_text(json.dumps({"batches": batches}))

    app.after_shutdown(write_stats)
    serve(app, settings, SERVICE)


if __name__ == "__main__":
    main()
