"""``billing dlq list|replay TOPIC``: dead letters, and sending them back after a fix."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from billing_runtime import tables
from billing_runtime.dlq import REPLAY_GROUP, list_dead_letters, replay_dead_letters
from billing_runtime.settings import ServiceSettings
from billing_schemas.topics import DEAD_LETTER_SUFFIX, Topic

console = Console()
dlq_app = typer.Typer(help="Dead-letter topics.", no_args_is_help=True)

TopicArgument = Annotated[
    str,
    typer.Argument(
        help="A topic (its dead-letter topic is meant) or a dead-letter topic, without namespace: "
        + ", ".join(t.value for t in Topic)
    ),
]


def dead_letter_topic(name: str, namespace: str) -> str:
    """The namespaced dead-letter topic for a topic name given either way."""
    known = {t.value for t in Topic} | {t.dead_letter for t in Topic}
    if name not in known:
        msg = f"{name!r} is not a topic of the pipeline"
        raise typer.BadParameter(msg)
    base = name.removesuffix(DEAD_LETTER_SUFFIX)
    return f"{namespace}{base}{DEAD_LETTER_SUFFIX}"


@dlq_app.command("list")
def list_command(topic: TopicArgument) -> None:
    """List the messages of a dead-letter topic with why they failed."""
    settings = ServiceSettings()
    name = dead_letter_topic(topic, settings.topic_namespace)
    letters = asyncio.run(list_dead_letters(settings.kafka_bootstrap_servers, name))
    table = Table(
        tables.key("partition"),
        tables.key("offset"),
        tables.key("when"),
        tables.text("failed by"),
        tables.key("key"),
        tables.text("error"),
        title=name,
    )
    for letter in letters:
        table.add_row(
            str(letter.partition),
            str(letter.offset),
            letter.timestamp.isoformat(timespec="seconds"),
            letter.headers.get("x-failed-by", "?"),
            (letter.key or b"").decode(errors="replace"),
            letter.error[:200],
        )
    console.print(tables.fit(table, console.width))
    console.print(f"{len(letters)} dead letters in {name}")


@dlq_app.command("replay")
def replay_command(topic: TopicArgument) -> None:
    """Send the dead letters not replayed yet back to their original topic (fix the cause first)."""
    settings = ServiceSettings()
    name = dead_letter_topic(topic, settings.topic_namespace)
    group = f"{settings.topic_namespace}{REPLAY_GROUP}"
    result = asyncio.run(replay_dead_letters(settings.kafka_bootstrap_servers, name, group=group))
    console.print(f"replayed {result.replayed} dead letters from {name}")
    for letter in result.skipped:
        where = f"{letter.partition}@{letter.offset}"
        console.print(f"[yellow]skipped[/yellow] {where}: no x-original-topic header")
