"""The search words' GIN index kept merged off the registration path (PostgreSQL).

A GIN index (``ix_ticket_words_terms``, intake_0009) takes new rows into a pending list
and merges the list into its tree when it outgrows ``gin_pending_list_limit`` (4 MB):
the insert that crosses it does the whole merge. That insert is a registration batch's
statement, so every few seconds (~5,000 tickets) one batch and every request waiting
on it stalled for the merge (bench/e2e.py: the batch statement 142 ms instead of ~1-5;
the HTTP p99 went from ~60-80 ms to 125-176 ms in runs that held two merges). Here a
background task merges the list every ``WORD_INDEX_CLEAN_SECONDS``, on a connection of
its own, so the list never reaches the limit at any rate the service takes (~2,000
tickets at 1,000/s, 4 MB holds ~5,000) and no registration merges. An insert meeting a
merge in progress appends to the list as usual (only an insert that would merge skips
it, finding the merge's lock taken). Smaller merges cost a little more in all
(a 1,000-row merge ~14 ms where a 4,000-row one is ~46, more WAL a row), hence seconds
apart rather than after every batch. SQLite keeps its words as rows (``ticket_terms``)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text

from shared.logging import Outage
from shared.service import ServiceContext

WORD_INDEX_CLEAN_SECONDS = 2.0

# the number of the list's pages merged (0: it was empty)
CLEAN_WORD_INDEX = text("SELECT gin_clean_pending_list('ix_ticket_words_terms'::regclass)")

log = logging.getLogger("hotline.intake")


async def clean_word_index(ctx: ServiceContext, once: bool = False) -> None:
    """Background (PostgreSQL): merge the words' index's pending list now and then."""
    if not ctx.db.is_postgres:
        return
    # a database outage is logged when it starts and when it ends, not every round
    outage = Outage(log, "merging the search words' index")
    while True:
        try:
            async with ctx.db.engine.connect() as conn:
                await conn.execute(CLEAN_WORD_INDEX)
                await conn.commit()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - tried again at the next interval
            outage.failed()
        else:
            outage.ok()
        if once:
            return
        await asyncio.sleep(WORD_INDEX_CLEAN_SECONDS)
