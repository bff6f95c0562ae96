"""Every service has the same files for the same jobs (issue 12): ``ports.py`` (the Protocols its
use cases take), ``adapters/memory.py`` (the in-memory fakes), ``bootstrap.py`` (the wiring) and
``app.py``, which builds the service through ``bootstrap.py`` and never reaches into
``adapters/`` itself. Read from the sources, so a new service without them fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in ROOT.glob("services/*/src/billing_*") if p.is_dir())
SHAPE = ("ports.py", "adapters/memory.py", "bootstrap.py", "app.py")
SERVICES = ("ingest", "rating", "invoicing", "notify", "webhooks", "portal")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def _classes(path: Path) -> list[ast.ClassDef]:
    return [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)]


def _is_protocol(node: ast.ClassDef) -> bool:
    return any(isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases)


def _is_port(node: ast.ClassDef) -> bool:
    """A Protocol with an ``async`` method: what a use case awaits from storage, a broker or a
    renderer (a Protocol of properties alone, such as a view of several event types, is not)."""
    return _is_protocol(node) and any(isinstance(n, ast.AsyncFunctionDef) for n in node.body)


def test_every_service_is_found() -> None:
    assert {p.name for p in PACKAGES} >= {f"billing_{s}" for s in SERVICES}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_the_service_has_the_same_files_for_the_same_jobs(package: Path) -> None:
    missing = [name for name in SHAPE if not (package / name).is_file()]
    assert not missing, f"{package.name} lacks {missing}"
    assert any(_is_protocol(c) for c in _classes(package / "ports.py")), "ports.py has no port"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_app_builds_through_bootstrap_and_not_from_adapters(package: Path) -> None:
    imported = _imported_modules(package / "app.py")
    assert f"{package.name}.bootstrap" in imported
    from_adapters = sorted(m for m in imported if m.startswith(f"{package.name}.adapters"))
    assert not from_adapters, f"{package.name}/app.py wires adapters itself: {from_adapters}"


@pytest.mark.parametrize("service", SERVICES)
def test_ports_live_in_ports_py_and_fakes_in_adapters_memory(service: str) -> None:
    package = ROOT / "services" / service / "src" / f"billing_{service}"
    misplaced: list[str] = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        for node in _classes(path):
            if node.name.startswith("InMemory") and where != "adapters/memory.py":
                misplaced.append(f"fake {node.name} in {where}")
            if _is_port(node) and where != "ports.py":
                misplaced.append(f"port {node.name} in {where}")
    assert not misplaced
    fakes = [c.name for c in _classes(package / "adapters" / "memory.py")]
    assert fakes, f"{service} has no in-memory fake"
