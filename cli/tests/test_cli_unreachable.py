"""A broker or database that cannot be reached is said so in one line naming its address (with
no password), and the command exits 1, instead of a traceback."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from pymongo.errors import ServerSelectionTimeoutError

import billing_cli.main as cli


def failing(exc: Exception) -> object:
    def app() -> None:
        raise exc

    return app


def test_an_unreachable_broker_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BILLING_KAFKA_BOOTSTRAP_SERVERS", "10.1.2.3:9092")
    monkeypatch.setattr(cli, "app", failing(KafkaConnectionError("Unable to bootstrap")))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "cannot reach the Kafka broker at 10.1.2.3:9092" in out
    assert "Traceback" not in out


def test_an_unreachable_database_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BILLING_MONGODB_URL", "mongodb://billing:s3cret@db.internal:27017/")
    monkeypatch.setattr(cli, "app", failing(ServerSelectionTimeoutError("timed out")))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "cannot reach the database at mongodb://billing:***@db.internal:27017/" in out
    assert "s3cret" not in out
