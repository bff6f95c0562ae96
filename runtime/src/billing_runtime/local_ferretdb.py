"""A throwaway FerretDB on either backend, for tests and benchmarks that must compare them.

``scripts/infra.sh`` runs the local stack's one FerretDB (and, with
``BILLING_FERRETDB_BACKEND=postgresql``, its PostgreSQL cluster under ``var/postgres``); this
module starts private ones on free ports, in a folder of the caller's choosing, and removes them
afterwards, so a test or benchmark never touches the shared database:

- ``sqlite``: FerretDB with a fresh SQLite data folder;
- ``postgresql``: a fresh PostgreSQL cluster (``initdb`` + ``pg_ctl`` from Debian's
  ``/usr/lib/postgresql/15/bin``, run as the ``postgres`` account when we are root, since
  PostgreSQL refuses to run as root) and FerretDB over it, with the GIN twins of FerretDB's
  indexes (``postgres_gin_twins.sql``, as ``scripts/infra.sh`` installs them; ``gin_twins=False``
  leaves the cluster as FerretDB alone makes it).

The FerretDB binary is the launcher built from ``infra/ferretdb`` (``scripts/infra.sh build``
puts it in ``var/bin/ferretdb``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from importlib.resources import files
from pathlib import Path
from types import TracebackType

BACKENDS = ("sqlite", "postgresql")
POSTGRES_BIN = Path(os.environ.get("BILLING_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
START_SECONDS = 60.0
# the event trigger that gives each FerretDB index a GIN twin (scripts/infra.sh installs the same)
GIN_TWINS_SQL = files("billing_runtime").joinpath("postgres_gin_twins.sql")


class LocalFerretDBError(RuntimeError):
    """A local FerretDB (or its PostgreSQL) could not be started; the message says why."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _as_postgres_user() -> list[str]:
    """Command prefix to run PostgreSQL's programs: as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        msg = "running as root, PostgreSQL needs runuser to run as the 'postgres' account"
        raise LocalFerretDBError(msg)
    return ["runuser", "-u", "postgres", "--"]


def missing_prerequisites(binary: Path, backend: str) -> list[str]:
    """What is missing to start ``backend`` here (empty when it can start)."""
    missing = []
    if not binary.is_file():
        missing.append(f"no FerretDB launcher at {binary} (scripts/infra.sh build makes it)")
    if backend == "postgresql":
        if not (POSTGRES_BIN / "initdb").is_file():
            missing.append(
                f"no PostgreSQL server in {POSTGRES_BIN} (Debian: apt-get install postgresql-15, "
                "or set BILLING_POSTGRES_BIN)"
            )
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            missing.append("running as root without runuser to start PostgreSQL as 'postgres'")
    return missing


class LocalFerretDB:
    """A FerretDB (and for ``postgresql`` its own PostgreSQL cluster) under ``directory``.

    Use as a context manager; ``url`` is the MongoDB URL to connect to. Everything under
    ``directory`` is removed on exit. ``gin_twins`` (``postgresql`` only): install the event
    trigger that gives every index FerretDB creates a GIN twin PostgreSQL can read.
    """

    def __init__(
        self, binary: Path, directory: Path, backend: str, *, gin_twins: bool = True
    ) -> None:
        if backend not in BACKENDS:
            msg = f"backend must be one of {BACKENDS}, not {backend!r}"
            raise ValueError(msg)
        self.binary = binary.resolve()
        self.directory = directory.resolve()  # PostgreSQL's own programs need absolute paths
        self.backend = backend
        self.gin_twins = gin_twins
        self.port = 0
        self._pg_port = 0
        self._ferretdb: subprocess.Popen[bytes] | None = None
        self._pg_started = False

    @property
    def url(self) -> str:
        """The MongoDB URL of this FerretDB."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def __enter__(self) -> LocalFerretDB:
        missing = missing_prerequisites(self.binary, self.backend)
        if missing:
            raise LocalFerretDBError("; ".join(missing))
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _start(self) -> None:
        if self.backend == "postgresql":
            backend_args = ["--handler=postgresql", f"--postgresql-url={self._start_postgres()}"]
        else:
            data = self.directory / "sqlite"
            data.mkdir()
            backend_args = ["--handler=sqlite", f"--sqlite-url=file:{data}/"]
        self.port = _free_port()
        with (self.directory / "ferretdb.log").open("wb") as log:
            self._ferretdb = subprocess.Popen(
                [
                    str(self.binary),
                    *backend_args,
                    f"--listen-addr=127.0.0.1:{self.port}",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_listening(self.port, "FerretDB", self.directory / "ferretdb.log")

    def _start_postgres(self) -> str:
        pg = self.directory / "postgres"
        pg.mkdir()
        (pg / "socket").mkdir()
        if os.geteuid() == 0:
            shutil.chown(pg, "postgres")
            shutil.chown(pg / "socket", "postgres")
        as_pg = _as_postgres_user()
        self._run(
            [
                *as_pg,
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(pg / "data"),
                "-U",
                "ferretdb",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",  # a throwaway cluster: no need to fsync its files
            ],
            "initdb",
        )
        self._pg_port = _free_port()
        self._run(
            [
                *as_pg,
                str(POSTGRES_BIN / "pg_ctl"),
                "-D",
                str(pg / "data"),
                "-l",
                str(pg / "postgres.log"),
                "-w",
                "-t",
                str(int(START_SECONDS)),
                "-o",
                f"-p {self._pg_port} -c listen_addresses=127.0.0.1 -k {pg / 'socket'}",
                "start",
            ],
            "pg_ctl start",
        )
        self._pg_started = True
        self._run(
            [
                *as_pg,
                str(POSTGRES_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self._pg_port),
                "-U",
                "ferretdb",
                "ferretdb",
            ],
            "createdb",
        )
        if self.gin_twins:
            self.postgresql_script(GIN_TWINS_SQL.read_text())
        return f"postgres://ferretdb@127.0.0.1:{self._pg_port}/ferretdb"

    def postgresql(self, sql: str) -> str:
        """Run ``sql`` with psql on this FerretDB's own PostgreSQL (``postgresql`` backend only),
        behind FerretDB's back: for measurements such as an index FerretDB cannot create."""
        return self._run(self._psql("-tAc", sql), "psql")

    def postgresql_script(self, script: str) -> str:
        """Run a multi-statement SQL ``script`` (dollar-quoted function bodies included) with psql
        on this FerretDB's own PostgreSQL, in one transaction."""
        return self._run(self._psql("-tA", "--single-transaction", "-f", "-"), "psql", script)

    def _psql(self, *args: str) -> list[str]:
        if not self._pg_started:
            msg = "no PostgreSQL: this FerretDB runs on the sqlite backend"
            raise LocalFerretDBError(msg)
        return [
            *_as_postgres_user(),
            str(POSTGRES_BIN / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self._pg_port),
            "-U",
            "ferretdb",
            "-d",
            "ferretdb",
            "-v",
            "ON_ERROR_STOP=1",
            *args,
        ]

    def _run(self, command: list[str], what: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            command,
            input=None if stdin is None else stdin.encode(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            msg = f"{what} failed ({done.returncode}): {output}"
            raise LocalFerretDBError(msg)
        return done.stdout.decode().strip()

    def _wait_listening(self, port: int, what: str, log: Path) -> None:
        deadline = time.monotonic() + START_SECONDS
        while not _listening(port):
            if self._ferretdb is not None and self._ferretdb.poll() is not None:
                msg = f"{what} exited during start-up: {log.read_text(errors='replace')[-2000:]}"
                raise LocalFerretDBError(msg)
            if time.monotonic() > deadline:
                msg = f"{what} did not listen on 127.0.0.1:{port} within {START_SECONDS:.0f} s"
                raise LocalFerretDBError(msg)
            time.sleep(0.05)

    def _stop(self) -> None:
        if self._ferretdb is not None:
            self._ferretdb.terminate()
            try:
                self._ferretdb.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._ferretdb.kill()
                self._ferretdb.wait()
            self._ferretdb = None
        if self._pg_started:
            subprocess.run(
                [
                    *_as_postgres_user(),
                    str(POSTGRES_BIN / "pg_ctl"),
                    "-D",
                    str(self.directory / "postgres" / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
            self._pg_started = False
        shutil.rmtree(self.directory, ignore_errors=True)
