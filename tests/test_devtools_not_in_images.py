"""Development tools (``devtools/``, ``billing_devtools``) stay out of the service images.

An image installs its service and the workspace members it depends on (``uv sync --no-dev
--package billing-<service>``, the services' Dockerfiles): no member a service reaches may
depend on ``billing-devtools`` nor on the SMTP server library the mail sink needs, and no source
module a service ships may import the tools.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = {
    data["project"]["name"]: (path.parent, data)
    for path in [
        *ROOT.glob("*/pyproject.toml"),
        *ROOT.glob("services/*/pyproject.toml"),
    ]
    if (data := tomllib.loads(path.read_text(encoding="utf-8")))["project"]["name"].startswith(
        "billing-"
    )
}
SERVICES = sorted(p.parent.name for p in ROOT.glob("services/*/Dockerfile"))


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower()


def _reached(package: str) -> set[str]:
    """Every distribution ``package`` depends on, workspace members followed."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        for requirement in MEMBERS[name][1]["project"].get("dependencies", []):
            dep = _name(requirement)
            if dep not in seen:
                seen.add(dep)
                if dep in MEMBERS:
                    todo.append(dep)
    return seen


def test_the_tools_are_a_workspace_member_of_the_dev_group_only() -> None:
    assert "billing-devtools" in MEMBERS
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "billing-devtools" in root["dependency-groups"]["dev"]
    assert "billing-devtools" not in root["project"]["dependencies"]


@pytest.mark.parametrize("service", SERVICES)
def test_an_image_installs_no_development_tool(service: str) -> None:
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text(encoding="utf-8")
    assert f"--no-dev --no-editable --package billing-{service}" in dockerfile
    reached = _reached(f"billing-{service}")
    assert "billing-runtime" in reached  # the walk follows workspace members
    assert {"billing-devtools", "aiosmtpd"} & reached == set()


@pytest.mark.parametrize("service", SERVICES)
def test_no_shipped_module_imports_the_tools(service: str) -> None:
    shipped = {
        MEMBERS[name][0] / "src"
        for name in {f"billing-{service}", *_reached(f"billing-{service}")}
        if name in MEMBERS
    }
    importers = []
    for src in sorted(shipped):
        for path in src.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any(n.split(".")[0] in {"billing_devtools", "aiosmtpd"} for n in names):
                    importers.append(str(path.relative_to(ROOT)))
    assert importers == []
