"""Group commit on the real PostgreSQL: concurrent registrations share a write (one
statement for their keys, tickets, search terms and outbox events), each request gets its
own ticket and events; an Idempotency-Key already taken, a bad ticket or a duplicate hint
in a batch concerns that registration alone; concurrent state-changing requests' nonces
are recorded together and a replay is still refused across instances."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

from services.intake.app import SPEC
from services.intake.domain import search_terms
from services.intake.handlers import catalog_readiness
from services.intake.handlers import registration as reg
from services.intake.handlers.events import on_progress
from services.intake.handlers.policy import POLICY_CACHE
from services.intake.models import idempotency_keys, requester_reads, ticket_words, tickets
from services.intake.schemas import TicketRegistration
from services.intake.sealed import key_ring
from shared.audit import verify_chain
from shared.bus import LogBus
from shared.clock import ManualClock
from shared.db import joined_texts
from shared.service import create_service_app
from shared.settings import Settings
from tests.conftest import SettledBus
from tests.unit.intake.conftest import MATTERS, T0, Intake, consultation, ticket
from tests.unit.intake.test_lookup import dispatched

pytestmark = pytest.mark.integration


@asynccontextmanager
async def pg_intake(url: str, **overrides: Any) -> AsyncIterator[Intake]:
    settings = Settings(db_url=url, env="test", db_pool_size=4, **overrides)
    log = LogBus()
    await log.start()
    # stopped whatever the body raises (a failing test, a catalog never heard): the log's
    # aiosqlite connection is a thread of its own, which, left open, kept pytest from
    # exiting after the failure was reported
    try:
        app = create_service_app(SPEC, settings, bus=log, clock=ManualClock(T0))
        async with app.router.lifespan_context(app):
            intake = Intake(app, app.state.ctx, SettledBus(log), app.state.ctx.clock)
            try:
                await intake.publish(*MATTERS)
                async with asyncio.timeout(30):
                    while (await catalog_readiness(intake.ctx))["matters_known"] < len(MATTERS):
                        await asyncio.sleep(0.05)
                yield intake
            finally:
                await intake.http.aclose()
    finally:
        await log.stop()


@pytest_asyncio.fixture
async def intake(pg_url: str) -> AsyncIterator[Intake]:
    async with pg_intake(pg_url) as service:
        yield service


def requester(i: int) -> dict[str, str]:
    return {"name": "王伟", "phone": f"1392000{i:04d}"}


def batches(intake: Intake) -> Any:
    found = reg.registration_batches(intake.ctx)
    assert found is not None, "PostgreSQL registers in batches"
    return found


async def outbox_types(intake: Intake) -> Counter[tuple[str, str]]:
    """(ticket number, event type) of every intake outbox row."""
    async with intake.ctx.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT key, payload::json->>'type' FROM outbox"))).all()
    return Counter((r[0], r[1]) for r in rows)


async def write_batch(intake: Intake, items: list[Any]) -> list[Any]:
    """``reg._write_batch``'s results, each answer (its JSON, ``answer_json``) read as the
    route's response model."""
    return [
        TicketRegistration.model_validate_json(r) if isinstance(r, bytes) else r
        for r in await reg._write_batch(intake.ctx, items)
    ]


async def post(intake: Intake, body: dict[str, Any], key: str | None = None, who: str = "operator"):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key} if key else {}
    return await intake.call(who, "POST", "/tickets", json=body, headers=headers)


async def test_concurrent_registrations_share_few_writes(intake: Intake) -> None:
    flushes = batches(intake).flushes
    answers = await asyncio.gather(
        *(
            post(intake, ticket(address=f"河西区友谊路{i}号", requester=requester(i)))
            for i in range(50)
        )
    )
    assert [a.status_code for a in answers] == [201] * 50, answers[0].text
    numbers = [a.json()["ticket_id"] for a in answers]
    assert len(set(numbers)) == 50
    assert batches(intake).flushes - flushes <= 10, "each registration wrote alone"
    events = await outbox_types(intake)
    assert all(events[(n, "ticket.registered")] == 1 for n in numbers)
    assert sum(events.values()) == 50
    async with intake.ctx.db.engine.connect() as conn:
        stored = dict((await conn.execute(select(tickets.c.ticket_id, tickets.c.address))).all())
        terms = await conn.scalar(select(func.count(func.distinct(ticket_words.c.ticket_pk))))
    # each answer is its own ticket, as stored
    assert {n: stored[n] for n in numbers} == {
        a.json()["ticket_id"]: a.json()["address"] for a in answers
    }
    assert terms == 50
    # the search finds a batch-written ticket by its words
    found = await intake.tickets(q="停水", limit=100)
    assert found["count"] == 50


async def test_a_batch_writes_what_one_by_one_writes(intake: Intake) -> None:
    """The same registrations written one by one (as SQLite does) and in a batch give the
    same stored columns and the same answers."""
    bodies = [
        ticket(attachments=[{"url": "https://files.example.cn/a.jpg", "name": "照片.jpg"}]),
        ticket(content="有人在小区里聚众赌博，请尽快处理", urgency="life_safety"),
        consultation(answer={"text": "可在社保窗口办理", "knowledge_entry_ids": ["K-1"]}),
        ticket(requester={**requester(9), "id_number": "120101199003074516"}),
    ]
    batched = [await post(intake, b) for b in bodies]
    intake.ctx.extras[reg.BATCHES] = False  # one by one, as before group commit
    single = [await post(intake, b) for b in bodies]
    for a, b in zip(batched, single, strict=True):
        assert a.status_code == b.status_code == 201, (a.text, b.text)
        # (the later ones also see the earlier ones as likely duplicates)
        unnumbered = {"ticket_id": "", "likely_duplicates": []}
        assert {**a.json(), **unnumbered} == {**b.json(), **unnumbered}
    columns = [c for c in tickets.c if c.name not in ("id", "ticket_id")]
    async with intake.ctx.db.engine.connect() as conn:
        raw = text(
            "SELECT ticket_id, attachments::text, flagged_keywords::text,"
            " knowledge_entry_ids::text, attachments IS NULL FROM tickets ORDER BY id"
        )
        json_text = {r[0]: r[1:] for r in (await conn.execute(raw)).all()}
        rows = {
            r.ticket_id: r
            for r in (await conn.execute(select(tickets.c.ticket_id, *columns))).all()
        }
    events = await outbox_types(intake)
    for a, b in zip(batched, single, strict=True):
        x, y = a.json()["ticket_id"], b.json()["ticket_id"]
        assert rows[x][1:] == rows[y][1:] or _same_but_sealed(rows[x], rows[y], columns)
        assert json_text[x] == json_text[y]
        assert sorted(t for n, t in events if n == x) == sorted(t for n, t in events if n == y)
    async with intake.ctx.db.engine.connect() as conn:
        words = dict(
            (
                await conn.execute(
                    select(tickets.c.ticket_id, ticket_words.c.terms).join(
                        ticket_words, ticket_words.c.ticket_pk == tickets.c.id
                    )
                )
            ).all()
        )
    # each word, in one row, in byte order (as the GIN index sorts a row's keys)
    for a, b, body in zip(batched, single, bodies, strict=True):
        x, y = a.json()["ticket_id"], b.json()["ticket_id"]
        assert words[x] == words[y] == sorted(search_terms(body["content"]))
    kinds = Counter(t for _, t in events)
    assert kinds == {"ticket.registered": 6, "ticket.flagged": 2, "ticket.answered": 2}
    async with intake.ctx.db.engine.connect() as conn:  # each event keyed by its ticket
        keyed = text("SELECT key, payload::json->>'ticket_id' FROM outbox")
        keys = (await conn.execute(keyed)).all()
    assert keys and all(key == number for key, number in keys)


async def test_a_column_alike_in_every_ticket_of_a_batch_is_stored_as_one_that_varies(
    intake: Intake,
) -> None:
    """A column that every ticket of a batch holds alike goes to the statement as one
    value, not an array (``_BatchRows.arguments``): the same registrations written in one
    batch, where the columns vary, and each in a batch of copies of itself, where every
    column is alike, store the same rows, events and words."""
    bodies = [
        ticket(attachments=[{"url": "https://files.example.cn/a.jpg", "name": "照片.jpg"}]),
        ticket(content="小区门口路灯不亮，晚上出行不便", urgency="life_safety", anonymous=True),
        consultation(answer={"text": "可在社保窗口办理", "knowledge_entry_ids": ["K-1"]}),
        ticket(
            requester={"name": "王伟", "phone": "13920009999", "id_number": "120101199003074516"}
        ),
    ]
    mixed = [registering(intake, b) for b in bodies]
    copies = [[registering(intake, b) for _ in range(2)] for b in bodies]

    def sent(items: list[Any], name: str) -> tuple[list[Any], Any]:
        """The column's array and its one value, as the statement gets them."""
        ring = reg.key_ring(intake.ctx)
        rows = reg._BatchRows()
        for n, item in enumerate(items):
            values = reg.ticket_values(
                ring, item.caller, item.data, item.channel, item.matter, [], T0
            )
            rows.add(ring, item, values, n + 1, [])
        arguments = rows.arguments(False)
        shared = [c for c, _ in reg._SHARED_COLUMNS].index(name)
        column = [c for c, _ in reg._TICKET_COLUMNS].index(name)
        return arguments[column], arguments[len(reg._COLUMNS) + shared]

    # (texts as one text: ``joined_texts``)
    assert sent(mixed, "urgency") == (
        joined_texts(["livelihood", "life_safety", "livelihood", "livelihood"]),
        None,
    )
    assert sent(copies[1], "urgency") == (joined_texts([]), "life_safety")
    assert sent(copies[2], "answer") == (joined_texts([]), "可在社保窗口办理")
    assert sent(copies[0], "answer") == (joined_texts([]), None)
    assert sent(copies[0], "attachments")[0] == joined_texts([])

    written = await write_batch(intake, mixed)
    alike = [(await write_batch(intake, batch))[0] for batch in copies]
    assert all(isinstance(r, TicketRegistration) for r in [*written, *alike]), (written, alike)
    columns = [c for c in tickets.c if c.name not in ("id", "ticket_id")]
    async with intake.ctx.db.engine.connect() as conn:
        json_text = {
            r[0]: r[1:]
            for r in await conn.execute(
                text(
                    "SELECT ticket_id, attachments::text, flagged_keywords::text,"
                    " knowledge_entry_ids::text FROM tickets"
                )
            )
        }
        rows = {r.ticket_id: r for r in await conn.execute(select(tickets.c.ticket_id, *columns))}
        words = dict(
            (
                await conn.execute(
                    select(tickets.c.ticket_id, ticket_words.c.terms).join(
                        ticket_words, ticket_words.c.ticket_pk == tickets.c.id
                    )
                )
            ).all()
        )
    events = await outbox_types(intake)
    assert len(rows) == len(bodies) * 3  # (a batch of copies writes each copy)
    for x, y in zip(written, alike, strict=True):
        unnumbered = {"ticket_id", "likely_duplicates"}  # (the copies see the earlier ones)
        assert x.model_dump(exclude=unnumbered) == y.model_dump(exclude=unnumbered)
        a, b = x.ticket_id, y.ticket_id
        assert _same_but_sealed(rows[a], rows[b], columns)
        assert json_text[a] == json_text[b]
        assert sorted(words.get(a) or []) == sorted(words.get(b) or [])
        assert sorted(t for n, t in events if n == a) == sorted(t for n, t in events if n == b)


def _same_but_sealed(x: Any, y: Any, columns: list[Any]) -> bool:
    """Sealed columns differ by their nonce; every other column is equal."""
    for i, column in enumerate(columns, start=1):
        if column.name.endswith("_sealed"):
            assert (x[i] is None) == (y[i] is None), column.name
        else:
            assert x[i] == y[i], column.name
    return True


async def test_one_key_posted_together_files_one_ticket(intake: Intake) -> None:
    others = [post(intake, ticket(address=f"和平区{i}号")) for i in range(20)]
    same = [post(intake, ticket(), "k-together") for _ in range(5)]
    answers = await asyncio.gather(*same, *others)
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["ticket_id"] for a in answers[:5]}) == 1
    assert len({a.json()["ticket_id"] for a in answers}) == 21
    async with intake.ctx.db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(tickets)) == 21
    assert sum((await outbox_types(intake)).values()) == 21


def registering(intake: Intake, body: dict[str, Any], key: str | None = None, **change: Any) -> Any:
    """A registration as its request validated it, for the batch writer itself."""
    from services.intake.schemas import TicketCreate
    from tests.unit.intake.conftest import CALLERS

    data = TicketCreate.model_validate(body)
    policy_cache = intake.ctx.extras[POLICY_CACHE]
    policy = policy_cache.versions.in_force(T0).policy
    matter = reg._Matter(active=True, anonymous_allowed=False, default_urgency="livelihood")
    item = reg._Registering(
        CALLERS["operator"],
        data,
        "phone",
        policy,
        matter,
        [],
        {"停水"},
        T0,
        key,
        f"hash-{key}",
    )
    return item._replace(**change)


async def test_a_key_taken_in_a_batch_leaves_the_others_written(intake: Intake) -> None:
    """Another instance committed this key first: the batch writes every other ticket; the
    taken one is told to answer with the first ticket."""
    first = await post(intake, ticket(), "k-taken")
    assert first.status_code == 201
    items = [
        registering(intake, ticket(address="和平区1号"), "k-a"),
        registering(intake, ticket(), "k-taken"),
        registering(intake, ticket(address="和平区2号")),
    ]
    results = await write_batch(intake, items)
    assert isinstance(results[1], reg._KeyTaken)
    assert results[0].address == "和平区1号" and results[2].address == "和平区2号"
    async with intake.ctx.db.engine.connect() as conn:
        numbers = set((await conn.execute(select(tickets.c.ticket_id))).scalars())
        keys = dict(
            (await conn.execute(select(idempotency_keys.c.key, idempotency_keys.c.ticket_id))).all()
        )
    assert numbers == {first.json()["ticket_id"], results[0].ticket_id, results[2].ticket_id}
    assert keys == {"k-taken": first.json()["ticket_id"], "k-a": results[0].ticket_id}
    events = await outbox_types(intake)
    assert set(events) == {(n, "ticket.registered") for n in numbers}


# (content, address, Idempotency-Key, nonce) of a batch's tickets
PLAIN_TEXTS = [(f"内容{i}，供水中断", f"和平区{i}号", f"k-{i}", f"n-{i}") for i in range(3)]
# batches with texts the joined form cannot carry, each making its column an array literal
# (a first text beginning with "{", the separator inside one, NULLs among them), and texts
# it carries joined (Chinese, quotes, commas, backslashes, braces not first, "NULL")
TEXT_BATCHES = [
    PLAIN_TEXTS,
    [("{开头的内容", "{地址", "{k-first", "{n-first"), *PLAIN_TEXTS],
    [*PLAIN_TEXTS, ("内容里有\x1f分隔符", "地址\x1f", "k-\x1f-sep", "n-\x1f-sep")],
    [*PLAIN_TEXTS[:1], ("无键", "和平区", None, None), *PLAIN_TEXTS[1:]],
    [('a,b "引号" \\ {括号}', "NULL", "k-引号", "n-引号"), (" ", "和平区 ", "NULL", "NULL")],
]


async def test_texts_of_any_kind_are_stored_by_the_batch_statement_as_given(
    intake: Intake,
) -> None:
    """The batch sends a column's texts as one text, split again in SQL (``joined_texts``),
    or as an array literal when the joined text cannot carry them: whichever form a
    column takes, each ticket's texts, keys and nonces are stored as given, in order."""
    assert intake.ctx.nonces is not None
    for b, batch in enumerate(TEXT_BATCHES):
        items = [
            registering(
                intake,
                ticket(content=content, address=address, requester=requester(i)),
                key and f"{key}-{b}",
                nonce=nonce and f"{nonce}-{b}",
            )
            for i, (content, address, key, nonce) in enumerate(batch)
        ]
        answers = await reg._write_batch(intake.ctx, items)
        assert all(isinstance(r, bytes) for r in answers), answers
        results = [TicketRegistration.model_validate_json(a) for a in answers]
        async with intake.ctx.db.engine.connect() as conn:
            stored = {
                r.ticket_id: r
                for r in await conn.execute(
                    select(tickets.c.ticket_id, tickets.c.content, tickets.c.address)
                )
            }
            keys = dict(
                (
                    await conn.execute(select(idempotency_keys.c.key, idempotency_keys.c.ticket_id))
                ).all()
            )
        for item, result, answer in zip(items, results, answers, strict=True):
            row = stored[result.ticket_id]
            assert (row.content, row.address) == (item.data.content, item.data.address)
            if item.idempotency_key is not None:
                assert keys[item.idempotency_key] == result.ticket_id
                first = await reg._first_answer(
                    intake.ctx, item.caller, item.idempotency_key, item.request_hash or ""
                )
                assert first == answer  # the same bytes
            if item.nonce is not None:
                assert not await intake.ctx.nonces.first_use(item.nonce)  # recorded
        events = await outbox_types(intake)
        assert all(events[(r.ticket_id, "ticket.registered")] == 1 for r in results)


async def test_one_bad_ticket_fails_alone(intake: Intake) -> None:
    too_long: Any = "x" * 40  # longer than the column: the database refuses this ticket
    bad = registering(intake, ticket(), matter=reg._Matter(True, False, too_long))
    items = [registering(intake, ticket(address="和平区1号")), bad, registering(intake, ticket())]
    results = await write_batch(intake, items)
    assert isinstance(results[1], Exception) and not isinstance(results[1], reg._KeyTaken)
    assert results[0].ticket_id != results[2].ticket_id
    events = await outbox_types(intake)
    assert set(events) == {
        (results[0].ticket_id, "ticket.registered"),
        (results[2].ticket_id, "ticket.registered"),
    }


async def test_duplicate_hints_in_a_batch_are_shown_and_audited(intake: Intake) -> None:
    phone = {"name": "刘芳", "phone": "13920001234"}
    flagged = ticket(requester=phone, content="楼下有人聚众闹事，停水三天了")
    earlier = [
        await post(intake, b) for b in (ticket(requester=phone), flagged, ticket(requester=phone))
    ]
    numbers = [e.json()["ticket_id"] for e in earlier]
    # flagged first, then the latest first
    expected = [numbers[1], numbers[2], numbers[0]]
    answers = await asyncio.gather(
        *(post(intake, ticket(requester=phone)) for _ in range(6)),
        *(post(intake, ticket(requester=requester(100 + i))) for i in range(6)),
        post(intake, ticket(requester=phone, channel="web"), who="citizen_web"),  # sees none
    )
    assert {a.status_code for a in answers} == {201}
    hinted = answers[:6]
    earlier_numbers = {e.json()["ticket_id"] for e in earlier}
    for a in hinted:
        shown = [h["ticket_id"] for h in a.json()["likely_duplicates"]]
        # the batch's own tickets may come before the latest earlier one when committed first
        assert (shown[0], *shown[-2:]) == tuple(expected)
        assert earlier_numbers <= set(shown)
    assert all(a.json()["likely_duplicates"] == [] for a in answers[6:])
    async with intake.ctx.db.engine.connect() as conn:
        reads = await conn.scalar(select(func.count()).select_from(requester_reads))
        chain = await verify_chain(conn, requester_reads)
    assert chain.ok, chain
    assert reads == sum(len(a.json()["likely_duplicates"]) for a in [*earlier, *hinted])


async def test_the_hint_lookup_probes_the_phone_index_even_planned_on_an_empty_table(
    intake: Intake,
) -> None:
    """A batch's phones are first probed in the phone's index (most have no earlier ticket,
    and the probe is all their lookup costs), an index-only scan for each, in the generic
    plan too, which the statement keeps from its sixth run on: even made on an empty table,
    where a semi-join of the batch's phones with the tickets planned a scan of the whole
    table, kept as the table grew."""
    ring = key_ring(intake.ctx)
    items = [registering(intake, ticket(requester=requester(i)), nonce=f"n-{i}") for i in range(3)]
    rows = reg._BatchRows()
    for i, item in enumerate(items):
        values = reg.ticket_values(
            ring, item.caller, item.data, item.channel, item.matter, [], item.now
        )
        rows.add(ring, item, values, 1_000 + i, [], looks_up=True)
    async with intake.ctx.db.driver_connection() as (_, raw):
        assert await raw.fetchval("SELECT count(*) FROM tickets") == 0
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        try:
            plan = "\n".join(
                r[0]
                for r in await raw.fetch("EXPLAIN " + rows.statement(True), *rows.arguments(True))
            )
        finally:
            await raw.execute("RESET plan_cache_mode")
    assert "Seq Scan on tickets" not in plan, plan
    probe = plan.split("SubPlan", 1)[-1]
    assert "Index Only Scan using ix_tickets_phone_matter on tickets" in probe, plan
    assert "Index Cond: (requester_phone_index = q.phone)" in probe, plan


async def test_a_ticket_with_hints_is_written_with_them_its_key_and_nonce_once(
    intake: Intake,
) -> None:
    """The batch statement holds back a ticket whose hints it found; the second write
    stores it, its Idempotency-Key's answer and its nonce, with the hints in both answers;
    the batch's other tickets are written by the first."""
    phone = {"name": "刘芳", "phone": "13920005678"}
    earlier = (await post(intake, ticket(requester=phone))).json()["ticket_id"]
    assert intake.ctx.nonces is not None
    items = [
        registering(intake, ticket(requester=requester(1)), "k-plain", nonce="n-plain"),
        registering(intake, ticket(requester=phone), "k-hinted", nonce="n-hinted"),
    ]
    answers = await reg._write_batch(intake.ctx, items)
    plain, hinted = (TicketRegistration.model_validate_json(a) for a in answers)
    assert [h.ticket_id for h in hinted.likely_duplicates] == [earlier]
    assert plain.likely_duplicates == []
    for item, answer in zip(items, answers, strict=True):
        stored = await reg._first_answer(
            intake.ctx, item.caller, item.idempotency_key, item.request_hash
        )
        assert stored == answer  # the same bytes
        assert not await intake.ctx.nonces.first_use(item.nonce)
    events = await outbox_types(intake)
    assert events[(hinted.ticket_id, "ticket.registered")] == 1
    assert events[(plain.ticket_id, "ticket.registered")] == 1
    async with intake.ctx.db.engine.connect() as conn:
        reads = (await conn.execute(select(requester_reads.c.ticket_id))).scalars().all()
    assert reads == [earlier]  # the batch's showing of it (the first post showed none)


async def test_nonces_are_recorded_together_and_a_replay_is_refused_elsewhere(
    pg_url: str,
) -> None:
    async with pg_intake(pg_url) as first, pg_intake(pg_url) as second:
        one, two = first.ctx.nonces, second.ctx.nonces
        assert one is not None and two is not None
        flushes = one.batches.flushes
        nonces = [f"n-{i}" for i in range(40)]
        # every nonce twice on the first instance and once on the second, all at once
        answers = await asyncio.gather(
            *(one.first_use(n) for n in nonces),
            *(one.first_use(n) for n in nonces),
            *(two.first_use(n) for n in nonces),
        )
        assert one.batches.flushes - flushes < 40, "each nonce recorded alone"
        per_nonce = [answers[i] + answers[40 + i] + answers[80 + i] for i in range(40)]
        assert per_nonce == [1] * 40  # exactly one use of each is the first
        assert not await two.first_use("n-0")
        assert await two.first_use("n-new")


async def test_the_batch_statement_keeps_one_generic_plan(intake: Intake) -> None:
    """Batches of any size look alike to the planner: after its first few calls PostgreSQL
    runs the batch's statement (hints looked up included) on one generic plan instead of
    planning it anew."""
    ring = reg.key_ring(intake.ctx)
    statement = reg._WRITE_BATCH[True, False]  # (the items carry no key)
    serial = 10_000
    async with intake.ctx.db.driver_connection() as (_, raw):
        for size in (1, 3, 1, 2, 5, 1, 4, 2):
            rows = reg._BatchRows()
            for i in range(size):
                item = registering(intake, ticket(requester=requester(i)), nonce=f"plan-{serial}")
                values = reg.ticket_values(
                    ring, item.caller, item.data, item.channel, item.matter, [], T0
                )
                rows.add(ring, item, values, serial, [], looks_up=True)
                serial += 1
            await raw.fetch(statement, *rows.arguments(True))
        generic, custom = await raw.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            statement,
        )
    assert generic >= 2, (generic, custom)


async def test_search_terms_are_one_array_a_ticket_compared_byte_by_byte(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """intake_0009: a ticket's terms are one array in a row of ``ticket_words`` (COLLATE
    "C", compared as bytes) under a GIN index, no row per word; Chinese search finds the
    same tickets, by the words' count and by walking the list."""
    async with intake.ctx.db.engine.connect() as conn:
        index = await conn.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_ticket_words_terms'")
        )
        collation = await conn.scalar(
            text(
                "SELECT collation_name FROM information_schema.columns"
                " WHERE table_name = 'ticket_words' AND column_name = 'terms'"
            )
        )
        rows_per_word = await conn.scalar(text("SELECT to_regclass('ticket_terms')"))
    assert index is not None and "USING gin (terms)" in index
    assert collation == "C"
    assert rows_per_word is None
    contents = ["暖气片不热，家里有八旬老人", "楼道暖气漏水", "小区门口停车难，老人出行不便"]
    numbers = [
        (await post(intake, ticket(content=c, requester=requester(i)))).json()["ticket_id"]
        for i, c in enumerate(contents)
    ]
    for walk in (False, True):
        if walk:  # every search matches "many" tickets: the list is walked in its order
            monkeypatch.setattr("services.intake.handlers.queries.WIDE_SEARCH", 0)
        both = await intake.tickets(q="暖气 老人")
        assert [t["ticket_id"] for t in both["data"]] == [numbers[0]]
        heating = await intake.tickets(q="暖气")  # newest first
        assert [t["ticket_id"] for t in heating["data"]] == numbers[1::-1]
        assert heating["count"] == 2
        # with another filter or order: the words' subquery as the planner sees fit
        oldest = await intake.tickets(q="老人", sort="registered_at", channel="phone")
        assert [t["ticket_id"] for t in oldest["data"]] == [numbers[0], numbers[2]]
        assert oldest["count"] == 2


async def test_status_updates_stay_on_their_page_and_add_no_index_entries(intake: Intake) -> None:
    """intake_0010: the events setting tickets' status update them in place (HOT): no index
    of ``tickets`` names the status and each page keeps room for its rows' next versions,
    so a batch of dispatches, consecutive tickets on few pages, adds no index entry; the
    operators' list still finds the tickets by status."""
    answers = await asyncio.gather(
        *(post(intake, ticket(requester=requester(i))) for i in range(40))
    )
    numbers = [a.json()["ticket_id"] for a in answers]
    at = intake.clock.now()
    batch = [dispatched(n, intake).envelope(producer="dispatch", occurred_at=at) for n in numbers]
    async with intake.ctx.db.unit_of_work() as uow:
        await on_progress(intake.ctx, uow, batch)
        updated, in_place = (
            await uow.conn.execute(
                text(
                    "SELECT pg_stat_get_xact_tuples_updated('tickets'::regclass),"
                    " pg_stat_get_xact_tuples_hot_updated('tickets'::regclass)"
                )
            )
        ).one()
    assert (updated, in_place) == (40, 40)
    found = await intake.tickets(status="dispatched", limit=100)
    assert found["count"] == 40
    assert sorted(t["ticket_id"] for t in found["data"]) == sorted(numbers)
    assert (await intake.tickets(status="registered"))["count"] == 0


async def test_each_tickets_own_time_is_stored_and_looked_up_to_the_microsecond(
    intake: Intake,
) -> None:
    """Times that differ within a batch go to the statement as their microseconds (one
    text, ``_epoch_us``): each ticket stores its own registration and answer times, and the
    hint lookup finds an earlier ticket registered at its window's first microsecond, not
    one registered a microsecond before its window."""
    window = intake.ctx.extras[POLICY_CACHE].versions.in_force(T0).policy.duplicate_window
    at = T0 + timedelta(microseconds=123_457)
    east = timezone(timedelta(hours=8))
    times = [at, at + timedelta(microseconds=1), (at + timedelta(seconds=7)).astimezone(east)]
    phone = {"name": "刘芳", "phone": "13920004321"}
    other = "HOUSE-002"
    earlier = [
        registering(intake, ticket(requester=phone), now=times[0] - window),
        registering(
            intake,
            ticket(requester=phone, matter_code=other),
            now=times[1] - window - timedelta(microseconds=1),
        ),
    ]
    first = [(await write_batch(intake, [e]))[0] for e in earlier]
    assert all(isinstance(r, TicketRegistration) for r in first), first
    items = [
        registering(intake, ticket(requester=phone), now=times[0]),
        registering(intake, ticket(requester=phone, matter_code=other), now=times[1]),
        registering(
            intake,
            consultation(answer={"text": "可在社保窗口办理", "knowledge_entry_ids": []}),
            now=times[2],
        ),
    ]
    written = await write_batch(intake, items)
    assert all(isinstance(r, TicketRegistration) for r in written), written
    assert [h.ticket_id for h in written[0].likely_duplicates] == [first[0].ticket_id]
    assert written[1].likely_duplicates == []
    async with intake.ctx.db.engine.connect() as conn:
        stored = {
            r.ticket_id: (r.registered_at, r.answered_at)
            for r in await conn.execute(
                select(tickets.c.ticket_id, tickets.c.registered_at, tickets.c.answered_at)
            )
        }
    assert [stored[r.ticket_id] for r in [*first, *written]] == [
        (times[0] - window, None),
        (times[1] - window - timedelta(microseconds=1), None),
        (times[0], None),
        (times[1], None),
        (times[2], times[2]),
    ]
