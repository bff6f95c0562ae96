"""What the pipeline benchmark measures with: the broker's offsets (one admin client and one
consumer for the whole run), the processes' RSS and CPU (psutil), and a stage's rate read from
its samples."""

from __future__ import annotations

import itertools
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_pid(port: int) -> int | None:
    """The process listening on ``port`` (the broker, the database), if this user may see it."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    except psutil.AccessDenied:
        return None
    return None


@dataclass
class Usage:
    """Peak RSS and CPU time of one process (or of a process's workers, summed)."""

    pid: int
    with_children: bool = True
    peak_rss: int = 0
    cpu_first: float | None = None
    cpu_last: float = 0.0
    workers: dict[int, tuple[int, float, float]] = field(default_factory=dict)


class ProcessWatch:
    """Samples the RSS and CPU time of named processes and of their children (PDF workers)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.usage: dict[str, Usage] = {}
        self._procs: dict[str, psutil.Process] = {}

    def restart(self) -> None:
        """Count CPU time from now on (processes already watched keep their peak RSS)."""
        self.started = time.monotonic()
        for use in self.usage.values():
            use.cpu_first = None
            use.workers.clear()
        self.sample()

    def add(self, name: str, pid: int | None, *, children: bool = True) -> None:
        """Watch process ``pid`` as ``name``, and its children unless ``children`` is false."""
        if pid is None:
            return
        try:
            self._procs[name] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        self.usage[name] = Usage(pid, with_children=children)
        self.sample()

    def sample(self) -> None:
        for name, proc in self._procs.items():
            use = self.usage[name]
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    use.peak_rss = max(use.peak_rss, proc.memory_info().rss)
                    children = proc.children(recursive=True) if use.with_children else []
            except psutil.Error:
                continue  # exited: its last sample stands
            seconds = cpu.user + cpu.system
            if use.cpu_first is None:
                use.cpu_first = seconds
            use.cpu_last = seconds
            for child in children:
                try:
                    child_cpu = child.cpu_times()
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                seen = use.workers.get(child.pid)
                first = seen[1] if seen else child_cpu.user + child_cpu.system
                peak = max(rss, seen[0] if seen else 0)
                use.workers[child.pid] = (peak, first, child_cpu.user + child_cpu.system)

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per process: peak RSS (MB), CPU seconds, cores used on average, share of the machine.

        A service's children (the invoicing PDF workers) are one more row, ``<name> workers``:
        the peak RSS of the largest, the CPU of all."""
        wall = time.monotonic() - self.started
        cores = os.cpu_count() or 1

        def row(pid: int | None, peak: int, cpu: float, count: int | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "pid": pid,
                "peak_rss_mb": round(peak / 2**20, 1),
                "cpu_seconds": round(cpu, 1),
                "cores_used": round(cpu / wall, 3),
                "machine_percent": round(100 * cpu / (wall * cores), 1),
            }
            if count is not None:
                out["processes"] = count
            return out

        out = {}
        for name, use in self.usage.items():
            out[name] = row(use.pid, use.peak_rss, use.cpu_last - (use.cpu_first or 0.0))
            if use.workers:
                peak = max(w[0] for w in use.workers.values())
                cpu = sum(last - first for _, first, last in use.workers.values())
                out[f"{name} workers"] = row(None, peak, cpu, len(use.workers))
        return out


@dataclass(frozen=True)
class Counts:
    """One sample of the broker: how far each stage has got."""

    at: float
    usage: int  # usage records on the usage topic (ingest's output)
    rated: int  # committed by rating on the usage topic
    charges: int  # messages on the charge topic (charges, then close markers)
    invoiced: int  # committed by invoicing on the charge topic
    finalized: int  # messages on the invoice-finalized topic
    emailed: int  # committed by notify on the invoice-finalized topic


class LagSampler:
    """End offsets and committed offsets of the pipeline's topics and groups, with one admin
    client and one consumer kept open for the whole run."""

    def __init__(self, bootstrap: str, namespace: str) -> None:
        from billing_schemas.channels import CHANNELS
        from billing_schemas.topics import Topic, topic_name

        self.bootstrap = bootstrap
        # the awaited group of each topic (notify's first on the invoice-finalized topic)
        self.groups = {
            channel.topic: next(g for g in channel.groups if g.awaited).name(namespace=namespace)
            for channel in CHANNELS
            if any(g.awaited for g in channel.groups)
        }
        self.topics = {
            t: topic_name(t, namespace)
            for t in (Topic.USAGE_RECORDED, Topic.CHARGE_RATED, Topic.INVOICE_FINALIZED)
        }
        self._admin: Any = None
        self._consumer: Any = None
        self._partitions: dict[str, list[Any]] = {}

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        from billing_runtime.lag import topic_partitions

        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="bench")
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, client_id="bench")
        await self._admin.start()
        await self._consumer.start()
        for name in self.topics.values():
            self._partitions[name] = await topic_partitions(self._admin, [name])

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def _end(self, topic: Any) -> int:
        ends = await self._consumer.end_offsets(self._partitions[self.topics[topic]])
        return int(sum(ends.values()))

    async def _committed(self, topic: Any) -> int:
        offsets = await self._admin.list_consumer_group_offsets(
            self.groups[topic], partitions=self._partitions[self.topics[topic]]
        )
        return sum(max(meta.offset, 0) for meta in offsets.values() if meta is not None)

    async def sample(self) -> Counts:
        from billing_schemas.topics import Topic

        return Counts(
            at=time.monotonic(),
            usage=await self._end(Topic.USAGE_RECORDED),
            rated=await self._committed(Topic.USAGE_RECORDED),
            charges=await self._end(Topic.CHARGE_RATED),
            invoiced=await self._committed(Topic.CHARGE_RATED),
            finalized=await self._end(Topic.INVOICE_FINALIZED),
            emailed=await self._committed(Topic.INVOICE_FINALIZED),
        )


def stage_rate(series: list[tuple[float, int]]) -> dict[str, Any]:
    """Records/s of a stage from its samples ``(time, count)``: what it did over the time from
    the last sample before its count first moved to the first sample at its last count."""
    if not series:
        return {"records": 0, "seconds": None, "records_per_second": None}
    final = series[-1][1]
    records = final - series[0][1]
    pairs = itertools.pairwise(series)
    start = next((t for (t, n), (_, m) in pairs if m > n), None)
    end = next(t for t, n in series if n == final)
    if start is None or end <= start:
        return {"records": records, "seconds": None, "records_per_second": None}
    return {
        "records": records,
        "seconds": round(end - start, 2),
        "records_per_second": round(records / (end - start), 1),
    }
