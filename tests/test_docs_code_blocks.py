"""The code blocks of the README and docs/*.md are checked against the code, so the docs cannot
drift from it (issue 12): every shell block is valid bash whose ``billing`` commands parse with the
real CLI (command names, options and arguments), whose ``make`` verbs exist in the Makefile and
whose scripts exist; every JSON block parses, and the API answers shown validate against the API's
response models; every YAML block parses, and catalog snippets validate against the catalog
models; every Python block compiles and calls only names the runtime package defines.

No infrastructure: nothing is run, the commands are parsed as the CLI would parse them.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel, TypeAdapter

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language tag and its text."""

    path: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of a Markdown file (language tag, first line number, text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start: int | None = None
    lang = ""
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if match is None:
            continue
        if start is None:
            start, lang = number, match.group(1)
        else:
            yield Block(path, start, lang, "\n".join(lines[start : number - 1]) + "\n")
            start = None
    assert start is None, f"{path}: the code block opened on line {start} is never closed"


BLOCKS = [block for path in DOCS for block in code_blocks(path)]


def blocks_of(lang: str) -> list[Any]:
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.lang == lang]


# --- shell -----------------------------------------------------------------------------------


def shell_commands(text: str) -> Iterator[list[str]]:
    """Each simple command of a shell block as its words: continuation lines joined, comments
    dropped, here-documents skipped, pipelines and ``&&``/``;`` lists split, and the ``[...]``
    that mark optional parts in the docs taken as given."""
    joined = text.replace("\\\n", " ")
    heredoc_end: str | None = None
    for line in joined.splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        marker = re.search(r"<<-?\s*'?\"?(\w+)", line)
        if marker:
            heredoc_end = marker.group(1)
        words = shlex.split(line[: marker.start()] if marker else line, comments=True)
        command: list[str] = []
        for word in [*words, ";"]:
            if word in {"|", "||", "&&", ";"}:
                if command:
                    yield command
                command = []
            else:
                command.append(word)


def _assignment(word: str) -> bool:
    return re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word) is not None


class CommandLineError(Exception):
    """A documented command line the CLI would refuse (the CLI's own message)."""


def check_billing_command(args: list[str]) -> None:
    """Parse ``billing ARGS`` with the real CLI (Typer's own click, which it vendors); raises
    CommandLineError with the CLI's message on a wrong command, option or argument."""
    from billing_cli.main import app

    command: Any = typer.main.get_command(app)
    words = [w.strip("[]") for w in args if w.strip("[]")]
    path = ["billing"]
    while hasattr(command, "list_commands"):  # a group: the next word names a subcommand
        assert words, f"`{' '.join(path)}` needs a subcommand"
        name = words.pop(0)
        found = command.get_command(typer.Context(command), name)
        assert found is not None, f"`{' '.join(path)}` has no command {name!r}"
        command, path = found, [*path, name]
    try:
        with command.make_context(" ".join(path), words) as ctx:
            assert ctx.command is command
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # not the CLI refusing the words
            raise
        raise CommandLineError(exc.format_message()) from None


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:", text, flags=re.MULTILINE))


@pytest.mark.parametrize("block", blocks_of("sh"))
def test_shell_blocks_are_valid_and_name_real_commands(block: Block) -> None:
    syntax = subprocess.run(
        ["bash", "-n"], input=block.text, capture_output=True, text=True, check=False
    )
    assert syntax.returncode == 0, f"{block.where}: not valid bash: {syntax.stderr}"
    targets = make_targets()
    for command in shell_commands(block.text):
        words = list(command)
        while words and _assignment(words[0]):
            del words[0]
        if not words:
            continue
        program = words[0]
        if program == "billing":
            try:
                check_billing_command(words[1:])
            except CommandLineError as exc:
                pytest.fail(f"{block.where}: `{' '.join(words)}`: {exc}")
        elif program == "make":
            unknown = [w for w in words[1:] if "=" not in w and w not in targets]
            assert not unknown, f"{block.where}: no make target {unknown}"
        elif program.startswith("scripts/"):
            assert (ROOT / program).is_file(), f"{block.where}: no script {program}"


def test_the_shell_checker_refuses_what_drifted() -> None:
    """The checker itself: a renamed command, an unknown option and a missing make verb fail."""
    with pytest.raises(AssertionError, match="no command 'invoice'"):
        check_billing_command(["invoice", "show", "X"])
    with pytest.raises(CommandLineError, match="--no-such-option"):
        check_billing_command(["invoices", "show", "X", "--no-such-option"])
    assert "demo" in make_targets()
    assert "no-such-verb" not in make_targets()
    assert list(shell_commands("A=1 billing pay X \\\n  --amount 1 | cat # comment\n")) == [
        ["A=1", "billing", "pay", "X", "--amount", "1"],
        ["cat"],
    ]


# --- JSON ------------------------------------------------------------------------------------


def _api_models() -> list[type[BaseModel]]:
    """Every answer model of the invoicing API (``...Out`` and ``...Answer`` classes)."""
    from billing_invoicing.entrypoints import http

    return [
        model
        for name, model in vars(http).items()
        if isinstance(model, type)
        and issubclass(model, BaseModel)
        and name.endswith(("Out", "Answer"))
        and model.__module__ == http.__name__
    ]


def _abridged(value: object) -> bool:
    """Whether the docs left part of the answer out (a ``"...": "..."`` anywhere)."""
    if isinstance(value, dict):
        return "..." in value or any(_abridged(v) for v in value.values())
    if isinstance(value, list):
        return any(_abridged(v) for v in value)
    return False


@pytest.mark.parametrize("block", blocks_of("json"))
def test_json_blocks_parse_and_match_an_api_answer(block: Block) -> None:
    value = json.loads(block.text)
    assert isinstance(value, dict), f"{block.where}: an API answer is an object"
    if _abridged(value):  # an abridged answer: its fields must still be one model's
        fields = set(value) - {"..."}
        assert any(fields <= set(m.model_fields) for m in _api_models()), (
            f"{block.where}: fields {sorted(fields)} are not those of any API answer"
        )
        return
    problems = []
    for model in _api_models():
        try:
            model.model_validate(value)
        except ValueError as exc:
            problems.append(f"{model.__name__}: {exc}")
        else:
            return
    pytest.fail(f"{block.where}: matches no API answer model:\n" + "\n".join(problems))


# --- YAML ------------------------------------------------------------------------------------


def _catalog_sections() -> dict[str, TypeAdapter[Any]]:
    from billing_catalog.models import Catalog

    return {
        name: TypeAdapter(field.annotation)
        for name, field in Catalog.model_fields.items()
        if field.annotation is not None
    }


@pytest.mark.parametrize("block", blocks_of("yaml"))
def test_yaml_blocks_are_catalog_fragments(block: Block) -> None:
    """Each YAML block is a piece of a catalog: its sections are the catalog's and each entry
    validates against its model (placeholders ``[...]`` and ``{lines: [...]}`` left out; a
    customer shown with only the fields under discussion is checked for its field names)."""
    from billing_catalog.models import Customer

    text = block.text.replace("[...]", "[]")
    document = yaml.safe_load(text)
    assert isinstance(document, dict), f"{block.where}: a catalog fragment is a mapping"
    sections = _catalog_sections()
    unknown = set(document) - set(sections)
    assert not unknown, f"{block.where}: not catalog sections: {sorted(unknown)}"
    for name, entries in document.items():
        if name == "customers" and any("name" not in c for c in entries):
            for customer in entries:
                extra = set(customer) - set(Customer.model_fields)
                assert not extra, f"{block.where}: customers have no fields {sorted(extra)}"
            continue
        if any(e.get("address", {}).get("lines") == [] for e in entries if isinstance(e, dict)):
            continue  # an address written as a placeholder: shown for its other fields
        try:
            sections[name].validate_python(entries)
        except ValueError as exc:
            pytest.fail(f"{block.where}: {name}: {exc}")


# --- Python ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks_of("python"))
def test_python_blocks_compile_and_call_real_functions(block: Block) -> None:
    import billing_runtime.mongo

    tree = ast.parse(block.text, filename=block.where)
    assigned = {t.id for node in ast.walk(tree) for t in _targets(node)}
    known = set(dir(builtins)) | set(dir(billing_runtime.mongo)) | assigned | {"db"}
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert called <= known, f"{block.where}: calls undefined names {sorted(called - known)}"
    compile(f"async def _block():\n{_indent(block.text)}", block.where, "exec")


def _targets(node: ast.AST) -> list[ast.Name]:
    if isinstance(node, ast.Assign):
        return [t for t in node.targets if isinstance(t, ast.Name)]
    return []


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def test_every_block_is_checked() -> None:
    """A block in a language nothing here checks would drift unseen: each block is shell, JSON,
    YAML or Python, or untagged (diagrams and printed output)."""
    langs = {b.lang for b in BLOCKS}
    assert langs <= {"", "sh", "json", "yaml", "python"}, f"unchecked languages: {langs}"
    assert sum(1 for b in BLOCKS if b.lang == "sh") >= 10
