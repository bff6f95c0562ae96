"""Subcommands imported when they are run, not when ``billing`` starts.

Importing every service's command line costs seconds (FastAPI, FastStream, pyarrow...), so the
root group knows its subcommands by name, by where they live and by the first paragraph of
their help, and imports one only when it is run or its own ``--help`` is asked for: click's
"lazy loading of subcommands" (a group whose ``get_command`` imports), through Typer's ``cls``.
Listing the subcommands (``billing --help``, shell completion of a subcommand's name) shows
each one's summary without importing it. ``cli/tests/test_cli_startup.py`` checks that each summary
is the loaded command's own and what a command line imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer import _click
from typer._click.shell_completion import CompletionItem
from typer.core import TyperCommand, TyperGroup

# set in the context's meta while the group lists its subcommands rather than runs one
_LISTING = "billing_cli.lazy.listing"


@dataclass(frozen=True)
class LazySubcommand:
    """A subcommand known by name until it runs: ``target`` is ``"package.module:attribute"``,
    a ``typer.Typer`` (a command group) or a command function; ``summary`` is the first
    paragraph of its help, what the parent's help and shell completion show."""

    name: str
    target: str
    summary: str

    def load(self) -> _click.Command:
        """Import the target and make it the command ``add_typer``/``command`` would have."""
        module_name, _, attribute = self.target.partition(":")
        target = getattr(importlib.import_module(module_name), attribute)
        holder = typer.Typer()
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=self.name)
        else:
            holder.command(self.name)(target)
        return typer.main.get_group(holder).commands[self.name]

    def stand_in(self) -> _click.Command:
        """A command carrying only the name and summary, for listing without importing."""
        return TyperCommand(name=self.name, help=self.summary)


class _Subcommands(MutableMapping[str, _click.Command]):
    """The group's commands by name: the lazy ones imported on first lookup, in their order."""

    def __init__(
        self, loaded: Mapping[str, _click.Command], lazy: Sequence[LazySubcommand]
    ) -> None:
        self._lazy = {sub.name: sub for sub in lazy}
        self._loaded = dict(loaded)
        self._order = [*self._lazy, *(name for name in self._loaded if name not in self._lazy)]

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._loaded:
            self._loaded[name] = self._lazy[name].load()  # KeyError: no such command
        return self._loaded[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        if name not in self._order:
            self._order.append(name)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._loaded.pop(name, None)
        self._lazy.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def listed(self, name: str) -> _click.Command | None:
        """The command if it is loaded already, else its stand-in: nothing is imported."""
        if name in self._loaded:
            return self._loaded[name]
        lazy = self._lazy.get(name)
        return None if lazy is None else lazy.stand_in()


class LazyGroup(TyperGroup):
    """A Typer group whose ``lazy_subcommands`` (set on a subclass) are imported when used.

    Typer builds the group from the ``typer.Typer`` whose ``cls`` it is; the subcommands
    registered there the usual way come after the lazy ones.
    """

    lazy_subcommands: ClassVar[Sequence[LazySubcommand]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Subcommands(self.commands, self.lazy_subcommands)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(self.commands)  # Typer's own reads ``items()``, which would import them

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if ctx.meta.get(_LISTING) and isinstance(self.commands, _Subcommands):
            return self.commands.listed(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        ctx.meta[_LISTING] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            del ctx.meta[_LISTING]

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[CompletionItem]:
        ctx.meta[_LISTING] = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            del ctx.meta[_LISTING]
