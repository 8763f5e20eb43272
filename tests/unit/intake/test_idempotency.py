"""A retried registration with the same Idempotency-Key returns the first ticket instead of
filing a second; a database outage answers 503 with Retry-After, never 500, and never
for a ticket that was stored."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Header
from sqlalchemy import func, select

from services.intake.api import IDEMPOTENCY_KEY, KEY_DESCRIPTION, KEY_RULES
from services.intake.models import tickets
from shared.errors import install_error_handlers
from tests.unit.intake.conftest import Intake, ticket


async def count(intake: Intake) -> int:
    async with intake.ctx.db.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(tickets)) or 0)


async def post(intake: Intake, body: dict[str, Any], key: str | None, who: str = "operator"):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key} if key else {}
    return await intake.call(who, "POST", "/tickets", json=body, headers=headers)


async def test_a_retry_with_the_same_key_returns_the_first_ticket(intake: Intake) -> None:
    first = await post(intake, ticket(), "8f0c6a2e-water-1")
    assert first.status_code == 201, first.text
    again = await post(intake, ticket(), "8f0c6a2e-water-1")
    assert (again.status_code, again.json()) == (201, first.json())
    assert await count(intake) == 1
    assert len(await intake.emitted("ticket.registered")) == 1
    other = await post(intake, ticket(), "8f0c6a2e-water-2")
    assert other.json()["ticket_id"] != first.json()["ticket_id"]
    assert await count(intake) == 2


async def test_keys_are_per_caller(intake: Intake) -> None:
    mine = await post(intake, ticket(), "k-1", who="operator")
    theirs = await post(intake, ticket(), "k-1", who="operator2")
    assert mine.json()["ticket_id"] != theirs.json()["ticket_id"]


async def test_concurrent_retries_file_one_ticket(intake: Intake) -> None:
    answers = await asyncio.gather(*(post(intake, ticket(), "k-same") for _ in range(5)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["ticket_id"] for a in answers}) == 1
    assert await count(intake) == 1


async def test_a_key_reused_for_another_body_is_refused(intake: Intake) -> None:
    assert (await post(intake, ticket(), "k-2")).status_code == 201
    r = await post(intake, ticket(content="楼道灯坏了一个星期"), "k-2")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await count(intake) == 1


async def test_a_key_must_be_short_printable_ascii(intake: Intake) -> None:
    r = await post(intake, ticket(), "x" * 256)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_a_lost_database_answers_503_with_retry_after(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.intake.handlers.registration as registration

    async def lost(*args: Any, **kwargs: Any) -> str:
        raise ConnectionResetError("connection lost")

    monkeypatch.setattr(registration, "_insert_ticket", lost)
    r = await post(intake, ticket(), "k-3")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await count(intake) == 0
    monkeypatch.undo()
    assert (await post(intake, ticket(), "k-3")).status_code == 201  # the retry files it


async def test_a_commit_whose_answer_was_lost_still_answers_201(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection breaks after COMMIT reached the database: intake asks again on a
    fresh connection, finds the ticket and answers 201, not a 503 that a retry without a key
    would turn into a second ticket."""
    db = intake.ctx.db
    real = db.unit_of_work

    def committed_then_lost():  # type: ignore[no-untyped-def]
        context = real()

        class Lost:
            async def __aenter__(self):  # type: ignore[no-untyped-def]
                return await context.__aenter__()

            async def __aexit__(self, *exc: Any) -> bool:
                await context.__aexit__(*exc)
                if exc[0] is None:
                    raise ConnectionResetError("connection lost after commit")
                return False

        return Lost()

    monkeypatch.setattr(db, "unit_of_work", committed_then_lost)
    r = await post(intake, ticket(), None)
    assert r.status_code == 201, r.text
    assert await count(intake) == 1


async def test_a_key_is_forgotten_after_its_retention_period(intake: Intake) -> None:
    from services.intake.handlers.registration import prune_idempotency_keys

    first = await post(intake, ticket(), "k-old")
    intake.advance(hours=23)
    await prune_idempotency_keys(intake.ctx, once=True)
    assert (await post(intake, ticket(), "k-old")).json() == first.json()
    intake.advance(hours=2)
    await prune_idempotency_keys(intake.ctx, once=True)
    later = await post(intake, ticket(), "k-old")
    assert later.status_code == 201 and later.json()["ticket_id"] != first.json()["ticket_id"]


def declared_header_app() -> FastAPI:
    """A route declaring the key as a FastAPI header parameter, as ``register`` did before it
    read the header itself (issue 12): what the key's documentation and refusals equal."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/tickets")
    async def register(
        key: Annotated[
            str | None, Header(alias=IDEMPOTENCY_KEY, description=KEY_DESCRIPTION, **KEY_RULES)
        ] = None,
    ) -> dict[str, str | None]:
        return {"key": key}

    return app


def test_the_key_is_documented_as_a_declared_header_parameter(intake: Intake) -> None:
    declared = declared_header_app().openapi()["paths"]["/tickets"]["post"]["parameters"]
    assert intake.app.openapi()["paths"]["/tickets"]["post"]["parameters"] == declared


@pytest.mark.parametrize("key", ["", "x" * 256, "a b", "k-\u00e9"])
async def test_a_bad_key_is_refused_as_a_declared_header_parameter_refuses_it(
    intake: Intake, key: str
) -> None:
    headers = {IDEMPOTENCY_KEY.encode(): key.encode("latin-1")}
    transport = httpx.ASGITransport(app=declared_header_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://declared") as client:
        declared = await client.post("/tickets", headers=headers)
    ours = await intake.call("operator", "POST", "/tickets", json=ticket(), headers=headers)
    assert declared.status_code == 422
    assert (ours.status_code, ours.json()["errors"], ours.json()["detail"]) == (
        422,
        declared.json()["errors"],
        declared.json()["detail"],
    )
    assert await count(intake) == 0
