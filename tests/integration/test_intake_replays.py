"""Replays of a registration across intake's instances on the real PostgreSQL: the request's
nonce is recorded in the batch's own write (no statement of its own), and a replay is
refused exactly as when the nonce was recorded before the handler — sent to another
instance later or at the same time, after a refusal, after an Idempotency-Key's answer,
twice in one batch, and when registrations are written one by one. The nonces keep no index
but their key, and are forgotten after their window all the same."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text

from services.intake.handlers import registration as reg
from services.intake.models import tickets
from shared.auth import sign_headers
from shared.errors import Unauthorized
from tests.integration.test_intake_batches import pg_intake, post, registering, requester
from tests.unit.intake.conftest import CALLERS, Intake, ticket

pytestmark = pytest.mark.integration


def signed(intake: Intake, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """One signed POST /tickets, to send as it is to any instance (a replay)."""
    raw = orjson.dumps(body)
    secret = intake.ctx.settings.service_secret
    headers = sign_headers(secret, CALLERS["operator"], "POST", "/tickets", body=raw)
    headers["content-type"] = "application/json"
    if key is not None:
        headers["Idempotency-Key"] = key
    return {"headers": headers, "content": raw}


async def send(intake: Intake, request: dict[str, Any]) -> httpx.Response:
    return await intake.http.post("/tickets", **request)


async def count(intake: Intake, table: str) -> int:
    async with intake.ctx.db.engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


def refused_as_replay(answer: httpx.Response) -> bool:
    return answer.status_code == 401 and "replay" in answer.json()["detail"]


async def test_a_registration_records_its_nonce_in_its_own_write(pg_url: str) -> None:
    async with pg_intake(pg_url) as intake:
        nonces = intake.ctx.nonces
        assert nonces is not None
        flushes, recorded = nonces.batches.flushes, await count(intake, "request_nonces")
        answers = await asyncio.gather(
            *(post(intake, ticket(requester=requester(i))) for i in range(10))
        )
        assert [a.status_code for a in answers] == [201] * 10
        assert nonces.batches.flushes == flushes, "a nonce was recorded on its own"
        assert await count(intake, "request_nonces") == recorded + 10


async def test_a_registration_replayed_to_another_instance_is_refused(pg_url: str) -> None:
    async with pg_intake(pg_url) as first, pg_intake(pg_url) as second:
        original = signed(first, ticket())
        assert (await send(first, original)).status_code == 201
        assert refused_as_replay(await send(second, original))
        # sent to both instances at once: one of them registers it
        both = signed(first, ticket(address="和平区9号"))
        answers = await asyncio.gather(send(first, both), send(second, both))
        assert sorted(a.status_code for a in answers) == [201, 401]
        assert await count(first, "tickets") == 2
        assert await count(first, "outbox WHERE payload::json->>'type' = 'ticket.registered'") == 2


async def test_a_refused_registration_replayed_is_told_it_is_a_replay(pg_url: str) -> None:
    async with pg_intake(pg_url) as first, pg_intake(pg_url) as second:
        unknown = signed(first, ticket(matter_code="NO-SUCH-1"))
        assert (await send(first, unknown)).status_code == 422
        assert refused_as_replay(await send(second, unknown))
        assert await count(first, "tickets") == 0


async def test_a_replay_is_refused_where_a_key_answers_from_before(pg_url: str) -> None:
    async with pg_intake(pg_url) as first, pg_intake(pg_url) as second:
        original = signed(first, ticket(), key="k-replayed")
        registered = await send(first, original)
        assert registered.status_code == 201
        # a retry is a new signed request with the same key: the first ticket again
        retry = await send(second, signed(second, ticket(), key="k-replayed"))
        assert retry.status_code == 201
        assert retry.json()["ticket_id"] == registered.json()["ticket_id"]
        # the original request itself, again: refused
        assert refused_as_replay(await send(second, original))
        assert await count(first, "tickets") == 1


async def test_one_nonce_twice_in_a_batch_registers_once(pg_url: str) -> None:
    async with pg_intake(pg_url) as intake:
        items = [
            registering(intake, ticket(), nonce="n-twice"),
            registering(intake, ticket(address="和平区2号"), nonce="n-other"),
            registering(intake, ticket(address="和平区3号"), nonce="n-twice"),
        ]
        results = await reg._write_batch(intake.ctx, items)
        assert isinstance(results[2], Unauthorized)
        assert [orjson.loads(r)["address"] for r in results[:2]] == [
            ticket()["address"],
            "和平区2号",
        ]
        # a later batch with a nonce recorded before: refused, the others written
        later = [registering(intake, ticket(), nonce="n-other"), registering(intake, ticket())]
        results = await reg._write_batch(intake.ctx, later)
        assert isinstance(results[0], Unauthorized) and not isinstance(results[1], Exception)
        async with intake.ctx.db.engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(tickets)) == 3


class _Watched:
    """A driver connection noting the batch statements it runs."""

    def __init__(self, raw: Any, statements: list[str]) -> None:
        self.raw, self.statements = raw, statements

    async def fetch(self, statement: str, *args: Any) -> Any:
        if statement.startswith("WITH hinted"):
            self.statements.append(statement)
        return await self.raw.fetch(statement, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def batch_statements(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The batch statements ``intake`` runs from now on, in order."""
    statements: list[str] = []
    taken = intake.ctx.db.driver_connection

    @asynccontextmanager
    async def watched() -> AsyncIterator[tuple[Any, Any]]:
        async with taken() as (conn, raw):
            yield conn, _Watched(raw, statements)

    monkeypatch.setattr(intake.ctx.db, "driver_connection", watched)
    return statements


async def test_a_batch_takes_its_nonces_for_new_and_goes_again_on_one_seen_before(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's first try inserts its nonces plainly (no ON CONFLICT's speculative insertion:
    a WAL record and ~2 us of PostgreSQL a nonce less); one recorded before fails that
    statement, which wrote nothing, and the batch goes again with ON CONFLICT DO NOTHING:
    the replay refused, the others written once."""
    async with pg_intake(pg_url) as intake:
        statements = batch_statements(intake, monkeypatch)
        fresh = [
            registering(intake, ticket(requester=requester(i)), nonce=f"n-{i}") for i in range(3)
        ]
        results = await reg._write_batch(intake.ctx, fresh)
        assert not any(isinstance(r, Exception) for r in results), results
        assert statements == [reg._WRITE_NEW_NONCES[False]]
        assert "ON CONFLICT DO NOTHING RETURNING nonce" not in statements[0]
        statements.clear()
        later = [
            registering(intake, ticket(requester=requester(7)), nonce="n-7"),
            registering(intake, ticket(requester=requester(8)), nonce="n-1"),  # seen before
        ]
        results = await reg._write_batch(intake.ctx, later)
        assert statements == [reg._WRITE_NEW_NONCES[False], reg._WRITE_BATCH[True, False]]
        assert not isinstance(results[0], Exception) and isinstance(results[1], Unauthorized)
        assert await count(intake, "tickets") == 4
        assert await count(intake, "request_nonces") == 4
        assert await count(intake, "outbox") == 4 * len(await outbox_of_one(intake))


async def test_a_batch_inserts_idempotency_keys_only_when_one_of_its_requests_carries_one(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch without a key goes without the keys' insert (its statement does not name the
    table); one with a key among keyless requests inserts it, and the key still files one
    ticket: its retry in a later batch is told the first ticket, with or without nonces."""
    async with pg_intake(pg_url) as intake:
        statements = batch_statements(intake, monkeypatch)
        plain = [
            registering(intake, ticket(requester=requester(i)), nonce=f"n-{i}") for i in range(2)
        ]
        results = await reg._write_batch(intake.ctx, plain)
        assert not any(isinstance(r, Exception) for r in results), results
        assert len(statements) == 1 and "idempotency_keys" not in statements[0]
        statements.clear()
        mixed = [
            registering(intake, ticket(requester=requester(5)), nonce="n-5"),
            registering(intake, ticket(requester=requester(6)), "k-一", nonce="n-6"),
        ]
        results = await reg._write_batch(intake.ctx, mixed)
        assert not any(isinstance(r, Exception) for r in results), results
        assert len(statements) == 1 and "INSERT INTO idempotency_keys" in statements[0]
        number = orjson.loads(results[1])["ticket_id"]
        async with intake.ctx.db.engine.connect() as conn:
            keys = (await conn.execute(text("SELECT key, ticket_id FROM idempotency_keys"))).all()
        assert [tuple(k) for k in keys] == [("k-一", number)]
        retry = [
            registering(intake, ticket(requester=requester(6)), "k-一", nonce="n-7"),
            registering(intake, ticket(requester=requester(8)), nonce="n-8"),
        ]
        results = await reg._write_batch(intake.ctx, retry)
        assert isinstance(results[0], reg._KeyTaken) and not isinstance(results[1], Exception)
        assert await count(intake, "tickets") == 5
        assert await count(intake, "idempotency_keys") == 1


async def outbox_of_one(intake: Intake) -> list[Any]:
    async with intake.ctx.db.engine.connect() as conn:
        return list(
            await conn.scalars(
                text("SELECT id FROM outbox WHERE key = (SELECT min(ticket_id) FROM tickets)")
            )
        )


@pytest.mark.parametrize(
    "settings",
    [{"intake_batch_size": 0}, {"shared_nonces": False}],
    ids=["one by one", "nonces not shared"],
)
async def test_registrations_without_the_batch_nonce(pg_url: str, settings: Any) -> None:
    """One by one the nonce is recorded before the handler; without shared nonces the batch
    writes none (and the table need not exist)."""
    async with pg_intake(pg_url, **settings) as first, pg_intake(pg_url, **settings) as second:
        original = signed(first, ticket())
        assert (await send(first, original)).status_code == 201
        replayed = await send(second, original)
        if first.ctx.nonces is None:
            assert replayed.status_code == 201  # only each process's own cache refuses it
            assert refused_as_replay(await send(first, original))
        else:
            assert refused_as_replay(replayed)
        assert (await post(first, ticket(requester=requester(7)))).status_code == 201


async def test_the_nonces_keep_no_index_of_their_time_and_old_ones_are_forgotten(
    pg_url: str,
) -> None:
    async with pg_intake(pg_url) as intake:
        nonces = intake.ctx.nonces
        assert nonces is not None
        async with intake.ctx.db.engine.begin() as conn:  # as services made it until 2026-12-05
            await conn.execute(
                text("CREATE INDEX ix_request_nonces_seen ON request_nonces (seen_at)")
            )
        await nonces.create()  # a service starting on such a database
        async with intake.ctx.db.engine.connect() as conn:
            indexes = await conn.scalars(
                text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                    " AND tablename = 'request_nonces'"
                )
            )
            assert list(indexes) == ["request_nonces_pkey"]
        now = time.time()
        assert await nonces.first_use("stale-nonce", now - 3 * nonces.window)
        assert await nonces.first_use("fresh-nonce", now)
        await nonces.prune(now)
        assert await nonces.first_use("stale-nonce", now)  # forgotten: new again
        assert not await nonces.first_use("fresh-nonce", now)
