"""Intake's background merge of the search words' index (services/intake/handlers/words.py)
goes on through a database outage and says so once when it starts and once when it ends,
not every round (the rule for every loop that retries through an outage)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from services.intake.handlers import words


class _Connection:
    async def __aenter__(self) -> _Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, statement: Any) -> None:
        return None

    async def commit(self) -> None:
        return None


class _Engine:
    """Down for the rounds in ``down``; the round after ``rounds`` stops the task."""

    def __init__(self, down: range, rounds: int) -> None:
        self.down, self.rounds, self.round = down, rounds, 0

    def connect(self) -> _Connection:
        self.round += 1
        if self.round > self.rounds:
            raise asyncio.CancelledError
        if self.round in self.down:
            raise OSError("connection refused")
        return _Connection()


async def test_an_outage_is_logged_when_it_starts_and_ends_not_every_round(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(words, "WORD_INDEX_CLEAN_SECONDS", 0.0)
    engine = _Engine(down=range(2, 8), rounds=10)  # rounds 2-7 fail, 8-10 work again
    ctx: Any = SimpleNamespace(db=SimpleNamespace(is_postgres=True, engine=engine))
    with caplog.at_level(logging.WARNING, logger="hotline.intake"):
        with pytest.raises(asyncio.CancelledError):
            await words.clean_word_index(ctx)
    assert engine.round == 11  # it kept trying through the outage
    lines = [r.getMessage() for r in caplog.records if r.name == "hotline.intake"]
    assert lines == [
        "merging the search words' index failed; retrying with back-off until it works",
        "merging the search words' index works again",
    ]
    assert caplog.records[-1].__dict__["failed_tries"] == 6
