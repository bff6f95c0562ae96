"""docs/architecture.md's channel table says what the channels declare: every topic, its
partition key, and the services whose consumer groups read it."""

from __future__ import annotations

import re
from pathlib import Path

from billing_schemas.channels import BY_TOPIC
from billing_schemas.topics import Topic

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(
    r"^\| `(?P<topic>billing\.[^`]+)` \| (?P<key>[^|]+) \| [^|]+ \| (?P<readers>[^|]+) \|$"
)


def test_the_channel_table_matches_the_channels() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {m["topic"]: m for m in map(ROW.match, text.splitlines()) if m}
    assert set(rows) == {t.value for t in Topic}
    for name, row in rows.items():
        channel = BY_TOPIC[Topic(name)]
        assert row["key"].strip() == channel.key_description, name
        readers = set(re.findall(r"\b(ingest|rating|invoicing|notify|webhooks)\b", row["readers"]))
        assert readers == {group.service for group in channel.groups}, name
