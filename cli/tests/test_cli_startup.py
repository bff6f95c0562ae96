"""``billing`` starts without importing what the command it runs does not need (issue 11: every
command took ~5 s before doing anything, most of it importing FastAPI, FastStream, WeasyPrint,
pyarrow and every service). Each command line runs in a fresh interpreter, as from the shell,
and reports the modules it imported; the root help shows each subcommand's own summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import typer

from billing_cli.main import app

SERVICES = ("ingest", "rating", "invoicing", "notify", "webhooks", "portal")
HEAVY = ("fastapi", "faststream", "weasyprint", "pyarrow")
# a service process's framework (FastStream and what it brings: uvicorn, click, fast_depends,
# prometheus_client), the PDF templates (Jinja2) and the portal's tokens (PyJWT): what a command
# that reads and writes through the database and the broker does not use
SERVICE_ONLY = ("faststream", "uvicorn", "click", "fast_depends", "prometheus_client")
RENDER_OR_SERVE = ("fastapi", "weasyprint", "jinja2", "jwt")
COMMANDS = (
    *("ingest", "rate", "pay", "audit", "asyncapi", "reconcile", "wait", "bills", "catalog"),
    *("invoices", "credits", "charges", "topics", "demo", "dlq", "mail", "webhooks", "users"),
)

# runs the console script's main() on argv, then prints the imported modules on stderr's last line
RUN_AND_LIST = """
import json, sys
from billing_cli.main import main
sys.argv = ["billing", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


@dataclass(frozen=True)
class Run:
    exit: object
    output: str  # stdout, then stderr
    modules: frozenset[str]

    def imported(self, package: str) -> list[str]:
        return sorted(m for m in self.modules if m == package or m.startswith(f"{package}."))


def run_billing(*args: str, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )
    *errors, last = done.stderr.strip().splitlines()
    report = json.loads(last)
    return Run(report["exit"], done.stdout + "\n".join(errors), frozenset(report["modules"]))


def test_importing_the_cli_imports_no_service() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, billing_cli.main; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules = done.stdout
    for name in (*HEAVY, *(f"billing_{s}" for s in SERVICES)):
        assert f"'{name}'" not in modules, f"import billing_cli.main imported {name}"


def test_the_root_help_lists_every_command_without_importing_them() -> None:
    run = run_billing("--help")
    assert run.exit == 0
    rows = [line.split()[1] for line in run.output.splitlines() if line.startswith("│ ")]
    assert [row for row in rows if not row.startswith("-")] == list(COMMANDS)
    assert "Generate, list and download invoices." in run.output
    for name in HEAVY:
        assert not run.imported(name), f"billing --help imported {name}"
    for service in SERVICES:
        assert not run.imported(f"billing_{service}"), f"billing --help imported {service}"
    assert not [m for m in run.modules if m.startswith("billing_") and m.endswith(".app")]


def test_completing_a_command_name_imports_no_service() -> None:
    run = run_billing(env={"_BILLING_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "billing "})
    assert '"invoices":"Generate, list and download invoices."' in run.output
    for service in SERVICES:
        assert not run.imported(f"billing_{service}"), f"completion imported {service}"


@pytest.mark.parametrize(
    "args", [["invoices", "--help"], ["invoices", "generate", "--help"]], ids=" ".join
)
def test_an_invoices_command_imports_invoicing_only(args: list[str]) -> None:
    run = run_billing(*args)
    assert run.exit == 0
    assert "Usage: billing invoices" in run.output
    assert run.imported("billing_invoicing.entrypoints.cli")
    for service in ("ingest", "rating", "notify", "webhooks", "portal"):
        assert not run.imported(f"billing_{service}"), f"billing {args} imported {service}"
    for name in ("fastapi", "weasyprint", "pyarrow", "billing_invoicing.app"):
        assert not run.imported(name), f"billing {args} imported {name}"


def _command(args: str, unused: tuple[str, ...]) -> object:
    return pytest.param(args.split(), unused, id=args)


@pytest.mark.parametrize(
    ("args", "unused"),
    [
        _command("invoices generate --help", (*SERVICE_ONLY, *RENDER_OR_SERVE, "pyarrow")),
        _command("invoices list --help", (*SERVICE_ONLY, *RENDER_OR_SERVE, "pyarrow")),
        _command("pay --help", (*SERVICE_ONLY, *RENDER_OR_SERVE, "pyarrow")),
        _command("wait --help", (*SERVICE_ONLY, *RENDER_OR_SERVE, "pyarrow")),
        # ingest's formats are pyarrow code: its command line needs it to parse a bill
        _command("ingest --help", (*SERVICE_ONLY, *RENDER_OR_SERVE)),
    ],
)
def test_a_command_imports_no_service_framework(args: list[str], unused: tuple[str, ...]) -> None:
    """The commands that start a close, record a payment, list invoices, wait for the
    consumers or load a bill import neither FastStream (with uvicorn, click, fast_depends)
    nor the renderer's or the portal's libraries (issue 11: 1.1 s before the first invoice)."""
    run = run_billing(*args)
    assert run.exit == 0
    assert f"Usage: billing {args[0]}" in run.output
    for name in unused:
        assert not run.imported(name), f"billing {' '.join(args)} imported {name}"


def test_each_summary_is_the_loaded_commands_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root help drawn from the summaries is the one drawn from the commands themselves:
    a help text changed in a service without its summary here fails."""
    from billing_cli.lazy import LazyGroup

    monkeypatch.setenv("COLUMNS", "200")
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    ctx = typer.Context(group, info_name="billing")
    from_summaries = group.get_help(ctx)
    for name in group.list_commands(ctx):  # import every one
        assert group.commands[name].name == name
    assert group.get_help(ctx) == from_summaries


def test_an_unknown_command_is_refused_with_a_suggestion() -> None:
    run = run_billing("invoice")
    assert run.exit == 2
    assert "No such command 'invoice'. Did you mean 'invoices'?" in run.output
    for service in SERVICES:
        assert not run.imported(f"billing_{service}")


def test_the_audit_trail_imports_no_web_framework() -> None:
    """``billing audit`` and ``billing webhooks ...`` import FastAPI's models only for --json."""
    run = run_billing("audit", "--help")
    assert run.exit == 0
    assert run.imported("billing_webhooks.entrypoints.cli")
    assert not run.imported("fastapi")
    assert not run.imported("billing_webhooks.entrypoints.http")
