"""The PDF pool's workers end with the service: SIGKILLing invoicing (as the fault campaign
does) must not leave WeasyPrint processes behind (seen: one orphaned pool per kill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

STARTS_POOL = """
import asyncio, sys
from billing_invoicing.adapters.pdf import PdfRenderer

async def main() -> None:
    renderer = PdfRenderer(max_workers=2)
    await renderer.start()
    print(" ".join(str(p) for p in renderer._pool._processes), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_workers_exit_when_the_service_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", STARTS_POOL], stdout=subprocess.PIPE, text=True
    ) as service:
        assert service.stdout is not None
        workers = [int(pid) for pid in service.stdout.readline().split()]
        assert len(workers) == 2
        assert all(_alive(pid) for pid in workers)
        os.kill(service.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)

    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"PDF workers outlived the killed service: {left}"
