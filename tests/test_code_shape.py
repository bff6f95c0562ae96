"""Two shape rules of issue 12, checked on the source so that new code cannot drift from them:

- no use case (a module under ``services/*/src/*/service/``) indexes a raw document: the shape
  of what storage or the wire holds is read into typed records by the adapters, so a use case
  subscripts no ``str`` key (``doc["status"]``) except on a dict it built itself;
- no function of the services or the CLI is longer than :data:`MAX_LINES` lines unless it is
  named below with the reason it stays long.

Each allow-list must stay true: an entry that no longer offends fails too, so it is removed
when the code is fixed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60

RAW_DOCUMENT_ALLOWED: dict[str, str] = {
    # path -> why it still reads raw documents, and who closes it
}

LONG_FUNCTIONS_ALLOWED: dict[str, str] = {
    # path::qualified name -> why it stays long (or who splits it)
}


def _built_dicts(function: ast.AST) -> set[str]:
    """Names a function binds to a dict it builds itself (a literal, a comprehension, dict())."""
    built: set[str] = set()
    for node in ast.walk(function):
        value: ast.expr | None = None
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            value, targets = node.value, list(node.targets)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            value, targets = node.value, [node.target]
        if value is None:
            continue
        is_built = isinstance(value, ast.Dict | ast.DictComp) or (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "dict"
        )
        if is_built:
            built.update(t.id for t in targets if isinstance(t, ast.Name))
    return built


def raw_document_reads(source: str) -> list[str]:
    """``line: expression`` for each ``value["key"]`` read in ``source``, except reads of a
    dict the enclosing function built itself."""
    tree = ast.parse(source)
    found: list[str] = []
    scopes: list[ast.AST] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    seen: set[int] = set()
    # innermost function first, so a read is judged by the function it sits in
    for scope in reversed(scopes):
        built = _built_dicts(scope)
        for node in ast.walk(scope):
            if id(node) in seen or not isinstance(node, ast.Subscript):
                continue
            seen.add(id(node))
            key = node.slice
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                continue
            if not isinstance(node.ctx, ast.Load):
                continue  # writing a key builds a document, it does not read one
            if isinstance(node.value, ast.Name) and node.value.id in built:
                continue
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(found, key=lambda entry: int(entry.split(":")[0]))


def _service_modules() -> list[Path]:
    return sorted(ROOT.glob("services/*/src/*/service/*.py"))


def test_the_document_rule_flags_a_raw_read_and_allows_a_built_dict() -> None:
    source = (
        "def use_case(doc, record):\n"
        "    row = {'a': 1}\n"
        "    row['b'] = doc['status']\n"
        "    return row['a'], record.status, doc[0]\n"
    )
    assert raw_document_reads(source) == ["3: doc['status']"]


def test_no_use_case_indexes_a_raw_document() -> None:
    offenders: dict[str, list[str]] = {}
    for path in _service_modules():
        reads = raw_document_reads(path.read_text(encoding="utf-8"))
        if reads:
            offenders[str(path.relative_to(ROOT))] = reads
    unexpected = {p: reads for p, reads in offenders.items() if p not in RAW_DOCUMENT_ALLOWED}
    assert unexpected == {}, "read these documents into typed records in an adapter"
    stale = sorted(set(RAW_DOCUMENT_ALLOWED) - set(offenders))
    assert stale == [], "these modules read no raw document any more: drop them from the list"


def function_lengths(source: str) -> dict[str, int]:
    """Each function's qualified name (``outer.inner``, ``Class.method``) and its length in
    lines, from ``def`` (decorators excluded) to its last line."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lengths[name] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def test_the_length_rule_counts_nested_functions_by_qualified_name() -> None:
    source = (
        "class A:\n    def m(self):\n        def inner():\n            return 1\n        return 2\n"
    )
    assert function_lengths(source) == {"A.m": 4, "A.m.inner": 2}


def test_no_function_is_longer_than_the_limit_unless_listed() -> None:
    long: dict[str, int] = {}
    paths = sorted(ROOT.glob("services/*/src/**/*.py")) + sorted(ROOT.glob("cli/src/**/*.py"))
    for path in paths:
        for name, lines in function_lengths(path.read_text(encoding="utf-8")).items():
            if lines > MAX_LINES:
                long[f"{path.relative_to(ROOT)}::{name}"] = lines
    unexpected = {name: lines for name, lines in long.items() if name not in LONG_FUNCTIONS_ALLOWED}
    assert unexpected == {}, f"split these where a step has a name (limit {MAX_LINES} lines)"
    stale = sorted(set(LONG_FUNCTIONS_ALLOWED) - set(long))
    assert stale == [], "these functions are short now: drop them from the list"
