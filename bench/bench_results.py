"""What every benchmark writes with its figures, and where (``bench/results/<name>.jsonl``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from billing_runtime.mongo import explain_query

RESULTS = Path(__file__).resolve().parent / "results"


def record_result(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Append one run to ``bench/results/<name>.jsonl`` (with when, the commit, the machine and
    its load when the run ended), print it, and return it."""
    result = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        **figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / f"{name}.jsonl").open("a") as out:
        out.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=2))
    return result


async def database_backend(mongodb_url: str) -> str:
    """Which database answers at ``mongodb_url``, from an ``explain`` on a scratch collection
    (FerretDB shows its backend's plan only for a collection that exists): ``ferretdb-sqlite``,
    ``ferretdb-postgresql`` (the local stack's cluster carries the GIN twins of FerretDB's
    indexes, docs/operations.md) or ``mongodb``."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    name = f"bench_probe_{uuid.uuid4().hex[:8]}"
    try:
        await client[name].probe.insert_one({"_id": "probe"})
        return (await explain_query(client[name].probe, {"_id": "probe"})).backend
    finally:
        await client.drop_database(name)
        await client.close()
