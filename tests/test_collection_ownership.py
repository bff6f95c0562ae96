"""Every collection has one owner, and no service opens a collection another one owns.

The owners are the README's table "Who owns which collection". The sources of every package are
read (not imported): a collection is *opened* where a database is indexed with its name
(``db[NAME]``, ``self._db[NAME]``) or a GridFS bucket is given it (``bucket_name=NAME``), the name
written out or a module-level constant, local or imported. The catalog's collections are opened
by the catalog package alone (``billing_catalog.store``); the other services read it through
that package. No other read crosses a boundary: notify gets PDFs through invoicing's API and
``billing reconcile``'s verdicts from their channel; the README's table says so.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = [
    ROOT / "schemas" / "src",
    ROOT / "runtime" / "src",
    ROOT / "catalog" / "src",
    ROOT / "cli" / "src",
    *sorted((ROOT / "services").glob("*/src")),
]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir())

OPERATOR_TOOLS = {"cli"}
"""``billing reconcile`` (cli) checks every stage's storage against the others: it reads them
all, by design; it owns ``reconcile_results``."""


@cache
def owners() -> dict[str, str]:
    """The README's table: collection -> owning package (``catalog``, ``ingest``, ...)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Who owns which collection", 1)[1].split("\n#", 1)[0]
    table: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        owner = re.findall(r"`([^`]+)`", cells[1])[0]
        for name in re.findall(r"`([^`]+)`", cells[0]):
            assert name not in table, f"{name} is listed twice in the README's owner table"
            table[name] = owner
    return table


def _package(path: Path) -> str:
    """``services/notify/src/billing_notify/...`` -> ``notify``, ``catalog/src/...`` ->
    ``catalog``."""
    for root in SOURCE_ROOTS:
        if path.is_relative_to(root):
            return path.relative_to(root).parts[0].removeprefix("billing_")
    raise AssertionError(path)


def _module(path: Path) -> str:
    for root in SOURCE_ROOTS:
        if path.is_relative_to(root):
            return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    raise AssertionError(path)


@cache
def _sources() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for root in SOURCE_ROOTS
        for path in sorted(root.rglob("*.py"))
    }


@cache
def _constants() -> dict[str, dict[str, str]]:
    """module -> NAME -> value of every module-level ``NAME = "text"``."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for path, tree in _sources().items():
        for node in tree.body:
            if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant):
                continue
            if isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[_module(path)][target.id] = node.value.value
    return found


def _opened(path: Path, tree: ast.Module) -> set[str]:
    """The collections a module opens (see the module's docstring)."""
    module = _module(path)
    names = dict(_constants()[module])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                value = _constants()[node.module].get(alias.name)
                if value is not None:
                    names[alias.asname or alias.name] = value

    def resolve(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        if isinstance(expr, ast.Name):
            return names.get(expr.id)
        return None

    opened = set()
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Subscript) and "db" in ast.unparse(node.value).lower():
            name = resolve(node.slice)
        elif isinstance(node, ast.keyword) and node.arg == "bucket_name":
            name = resolve(node.value)
        if name is not None:
            opened.add(name)
    return opened


@cache
def opened_by_package() -> dict[str, dict[str, set[str]]]:
    """package -> collection -> the modules that open it."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path, tree in _sources().items():
        for name in _opened(path, tree):
            found[_package(path)][name].add(_module(path))
    return found


def test_the_scan_sees_the_collections_of_every_service() -> None:
    """The scan itself: each service opens collections of its own, so a scan that finds
    nothing (a renamed variable, another way of opening) fails here, not silently."""
    for service in SERVICES:
        own = {c for c in opened_by_package()[service] if owners().get(c) == service}
        assert own, f"no collection of {service} found in its sources: is the scan blind?"


def test_every_collection_opened_has_one_owner_in_the_readme() -> None:
    opened = {c for by in opened_by_package().values() for c in by}
    assert opened - owners().keys() == set(), "add them to the README's owner table"
    assert owners().keys() - opened == set(), "the README lists collections no code opens"


def test_no_service_opens_a_collection_another_owns() -> None:
    trespass = {
        f"{package} opens {collection} (owned by {owners()[collection]}) in {sorted(modules)}"
        for package, collections in opened_by_package().items()
        if package not in OPERATOR_TOOLS
        for collection, modules in collections.items()
        if owners().get(collection, package) != package
    }
    assert trespass == set()


def test_only_the_catalog_package_opens_the_catalog() -> None:
    catalog = {c for c, owner in owners().items() if owner == "catalog"}
    assert catalog  # the table lists the catalog's collections
    openers = {
        package
        for package, collections in opened_by_package().items()
        if catalog & collections.keys()
    }
    assert openers == {"catalog"}


def test_the_readme_names_no_reader_of_another_owners_collection() -> None:
    """The README's last column ("read elsewhere") names no service: only the operator tool
    (``billing reconcile``) reads across, and the catalog is read through its package."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Who owns which collection", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) >= len(SERVICES)  # the table was found
    for row in rows:
        elsewhere = row.split("|")[3]
        named = {s for s in SERVICES if re.search(rf"\b{s}\b", elsewhere)}
        if "billing_catalog" in elsewhere:
            continue  # the catalog's row: its readers go through the package
        assert named == set(), f"README says {sorted(named)} read {row.split('|')[1].strip()}"
