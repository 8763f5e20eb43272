"""The search words' GIN index is merged by intake's background task, not by a registration
batch that happens to fill its pending list (services/intake/handlers/words.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from services.intake.app import SPEC
from services.intake.handlers import words
from tests.integration.test_intake_batches import pg_intake, post, requester
from tests.unit.intake.conftest import ticket

pytestmark = pytest.mark.integration

PENDING_PAGES_MERGED = text("SELECT gin_clean_pending_list('ix_ticket_words_terms'::regclass)")


async def test_the_background_task_leaves_the_words_index_nothing_pending(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert words.clean_word_index in SPEC.background
    # the task's own rounds far apart: only the pass below merges
    monkeypatch.setattr(words, "WORD_INDEX_CLEAN_SECONDS", 3600.0)
    async with pg_intake(pg_url) as intake:
        answers = await asyncio.gather(
            *(
                post(intake, ticket(address=f"河西区友谊路{i}号", requester=requester(i)))
                for i in range(30)
            )
        )
        assert [a.status_code for a in answers] == [201] * 30, answers[0].text
        await words.clean_word_index(intake.ctx, once=True)
        async with intake.ctx.db.engine.connect() as conn:
            assert await conn.scalar(PENDING_PAGES_MERGED) == 0
        # the merged words are found
        assert (await intake.tickets(q="停水", limit=100))["count"] == 30
