"""The embedded bus: a durable log with a committed position per consumer group (Kafka's
semantics in one process), batches, isolation, outages and supervision."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.bus import LogBus, await_topics
from shared.events import TOPIC_CATALOG, TOPIC_TICKETS, Envelope
from tests.unit.shared.event_examples import every_event_in_chinese

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def event(n: int, topic_type: str = "ticket.registered") -> Envelope:
    return Envelope(
        type=topic_type, occurred_at=NOW, ticket_id=f"TJ{n:04d}", producer="intake", payload={}
    )


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def __call__(self, batch: Sequence[Envelope]) -> None:
        self.batches.append([e.ticket_id or "" for e in batch])

    @property
    def seen(self) -> list[str]:
        return [t for b in self.batches for t in b]


@pytest.fixture
async def bus() -> LogBus:
    bus = LogBus(batch_size=4)
    await bus.start()
    yield bus  # type: ignore[misc]
    await bus.stop()


async def test_a_failing_group_never_blocks_the_producer_or_another_group(bus: LogBus) -> None:
    async def broken(batch: Sequence[Envelope]) -> None:
        raise RuntimeError("database unreachable")

    healthy = Recorder()
    bus.subscribe("evaluation", [TOPIC_TICKETS], broken)
    bus.subscribe("dispatch", [TOPIC_TICKETS], healthy)

    await asyncio.wait_for(bus.publish([event(1), event(2)]), 2)
    await bus.drain(groups=["dispatch"])

    assert healthy.seen == ["TJ0001", "TJ0002"]
    assert bus.consumer_states() == {"evaluation": "retrying", "dispatch": "running"}
    with pytest.raises(TimeoutError, match="evaluation"):
        await bus.drain(timeout=0.3)


async def test_a_group_that_subscribes_late_receives_what_was_published_before(
    bus: LogBus,
) -> None:
    await bus.publish([event(1, "catalog.unit_published"), event(2)])
    late = Recorder()
    bus.subscribe("evaluation", [TOPIC_CATALOG], late)
    await bus.drain()

    assert late.seen == ["TJ0001"]


async def test_consumers_get_batches_in_log_order(bus: LogBus) -> None:
    await bus.publish([event(n) for n in range(1, 11)])
    got = Recorder()
    bus.subscribe("sla", [TOPIC_TICKETS], got)
    await bus.drain()

    assert got.seen == [f"TJ{n:04d}" for n in range(1, 11)]
    assert [len(b) for b in got.batches] == [4, 4, 2]


async def test_a_restarted_group_resumes_after_its_committed_position(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    first = LogBus(path)
    await first.start()
    before = Recorder()
    first.subscribe("dispatch", [TOPIC_TICKETS], before)
    await first.publish([event(1), event(2)])
    await first.drain()
    await first.stop()

    second = LogBus(path)
    await second.start()
    await second.publish([event(3)])
    after = Recorder()
    second.subscribe("dispatch", [TOPIC_TICKETS], after)
    newcomer = Recorder()
    second.subscribe("sla", [TOPIC_TICKETS], newcomer)
    await second.drain()
    await second.stop()

    assert before.seen == ["TJ0001", "TJ0002"]
    assert after.seen == ["TJ0003"]
    assert newcomer.seen == ["TJ0001", "TJ0002", "TJ0003"]


async def test_an_outage_retries_the_same_batch_and_logs_once_when_it_starts_and_ends(
    bus: LogBus, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[list[str]] = []
    down = asyncio.Event()
    down.set()

    async def flaky(batch: Sequence[Envelope]) -> None:
        calls.append([e.ticket_id or "" for e in batch])
        if down.is_set() and len(calls) >= 4:
            down.clear()
        if down.is_set():
            raise ConnectionError("database unreachable")

    caplog.set_level(logging.WARNING, logger="hotline.bus")
    bus.subscribe("sla", [TOPIC_TICKETS], flaky)
    await bus.publish([event(1), event(2)])
    await bus.drain(timeout=10)

    assert calls == [["TJ0001", "TJ0002"]] * 4
    messages = [r.getMessage() for r in caplog.records if r.name == "hotline.bus"]
    assert len(messages) == 2
    assert "retrying" in messages[0] and messages[1] == "consumer recovered"


async def test_a_consumer_task_that_dies_is_logged_and_restarted(
    bus: LogBus, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = bus._read
    reads = 0

    async def read_once_broken(sub):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        if reads == 1:
            raise RuntimeError("bug in the consumer loop")
        return await real_read(sub)

    monkeypatch.setattr(bus, "_read", read_once_broken)
    got = Recorder()
    await bus.publish([event(1)])
    bus.subscribe("sla", [TOPIC_TICKETS], got)
    for _ in range(100):
        if bus.consumer_states()["sla"] == "restarting":
            break
        await asyncio.sleep(0.01)
    assert bus.consumer_states()["sla"] == "restarting"
    await bus.drain(timeout=5)

    assert got.seen == ["TJ0001"]
    assert bus.consumer_states()["sla"] == "running"
    assert any(r.getMessage() == "consumer died; restarting it" for r in caplog.records)


class Producer:
    """aiokafka's producer as ``KafkaBus.publish_raw`` uses it, around aiokafka's own record
    batches (``batch_bytes`` each): what is sent is read back from the bytes built."""

    def __init__(self, partitions: int = 3, batch_bytes: int = 16384) -> None:
        self.partitions, self.batch_bytes = partitions, batch_bytes
        # (topic, partition, [(key, value, headers)]) per batch, in the order sent
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> object:
        from aiokafka.producer.message_accumulator import BatchBuilder

        return BatchBuilder(self.batch_bytes, 0)  # no compression

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> object:
        from aiokafka.record.memory_records import MemoryRecords

        read = MemoryRecords(bytes(batch._build())).next_batch()
        records = [(r.key, r.value, list(r.headers)) for r in read]
        self.sent.append((topic, partition, records))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_the_trace_id_travels_in_the_kafka_headers_even_for_stored_bytes() -> None:
    from shared.bus import KafkaBus, RawEvent

    bus = KafkaBus("127.0.0.1:1", prefix="t.")
    bus._producer = producer = Producer()
    traced = event(1).model_copy(update={"trace_id": "4f2a9c"})
    # the relay sends the outbox's bytes as stored, without the trace id beside them
    await bus.publish_raw([RawEvent(traced.topic, traced.key, traced.to_json())])
    await bus.publish([event(2)])

    sent = [(topic, headers) for topic, _, records in producer.sent for _, _, headers in records]
    assert sent == [("t.hotline.tickets", [("trace-id", b"4f2a9c")]), ("t.hotline.tickets", [])]


def test_the_relays_partition_of_a_key_is_kafkas_default_partitioners() -> None:
    """``partition_for`` (its own murmur2, word by word, remembered per key) chooses the
    partition aiokafka's default partitioner, and so ``producer.send`` and the Java client,
    chooses: for keys of every length (each tail of 0-3 bytes) and any partition count."""
    import random

    from aiokafka.partitioner import DefaultPartitioner
    from aiokafka.partitioner import murmur2 as theirs

    from shared.bus import murmur2, partition_for

    rng = random.Random(12)
    keys = [rng.randbytes(n) for n in range(300) for _ in range(8)]
    keys += [f"TJ2026{n:010d}".encode() for n in range(2000)] + ["工单-暖气".encode()]
    send_would = DefaultPartitioner()
    for key in keys:
        assert murmur2(key) == theirs(key)
        for count in (1, 2, 3, 7, 12):
            every = list(range(count))
            assert partition_for(key, count) == send_would(key, every, every)


async def test_kafka_sends_a_batch_a_partition_each_ticket_in_order_where_send_would() -> None:
    """One record batch per partition (a new one when it is full), each ticket's events
    in one partition and in their order, that partition the one aiokafka's ``send``
    chooses for the key (the consumers' order per ticket depends on it)."""
    from aiokafka.partitioner import DefaultPartitioner

    from shared.bus import KafkaBus, RawEvent

    bus = KafkaBus("127.0.0.1:1", prefix="t.")
    bus._producer = producer = Producer(partitions=3, batch_bytes=4096)
    raw = [
        RawEvent(TOPIC_TICKETS, f"TJ{n % 40:04d}", f'{{"n":{n},"pad":"{"x" * 300}"}}'.encode())
        for n in range(200)
    ]
    await bus.publish_raw(raw)

    got = [(p, k.decode(), v) for _, p, records in producer.sent for k, v, _ in records]
    assert sorted(v for _, _, v in got) == sorted(e.value for e in raw)  # each once
    send_would = DefaultPartitioner()
    for key in {e.key for e in raw}:
        theirs = [(p, v) for p, k, v in got if k == key]
        assert {p for p, _ in theirs} == {send_would(key.encode(), [0, 1, 2], [0, 1, 2])}
        assert [v for _, v in theirs] == [e.value for e in raw if e.key == key]
    # 200 records of ~330 bytes in 4 KiB batches: ~12 a batch, not one a record
    assert {p for _, p, _ in producer.sent} == {0, 1, 2}
    assert len(producer.sent) <= 200 * 340 // 3000
    assert all(topic == "t.hotline.tickets" for topic, _, _ in producer.sent)


async def test_a_batch_stuck_in_its_handler_is_reported_with_where_it_waits(
    bus: LogBus, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.bus

    monkeypatch.setattr(shared.bus, "WATCH_EVERY", 0.05)
    monkeypatch.setattr(shared.bus, "WATCH_SLOW", 0.1)
    released = asyncio.Event()

    async def waits_on_a_lock(batch: Sequence[Envelope]) -> None:
        await released.wait()

    bus.subscribe("dispatch", [TOPIC_TICKETS], waits_on_a_lock)
    await bus.publish([event(1)])
    for _ in range(100):
        if any(r.getMessage() == "consumer batch still in hand" for r in caplog.records):
            break
        await asyncio.sleep(0.02)
    released.set()
    await bus.drain()

    [stuck] = [r for r in caplog.records if r.getMessage() == "consumer batch still in hand"]
    assert stuck.group == "dispatch"  # type: ignore[attr-defined]
    assert "waits_on_a_lock" in stuck.stack  # type: ignore[attr-defined]


async def test_a_group_receives_only_the_event_types_it_handles_in_log_order(bus: LogBus) -> None:
    wanted = Envelope(
        type="ticket.dispatched",
        occurred_at=NOW,
        ticket_id="TJ0003",
        producer="dispatch",
        payload={"type": "ticket.registered"},  # a payload field of the same name
    )
    await bus.publish([event(1), event(2, "ticket.dispatched"), wanted, event(4)])
    got = Recorder()
    bus.subscribe("sla", [TOPIC_TICKETS], got, types={"ticket.dispatched"})
    await bus.drain()

    assert got.seen == ["TJ0002", "TJ0003"]
    assert bus.lag() == {"sla": 0}


async def test_a_groups_live_types_are_read_for_each_batch_and_all_when_unreadable(
    bus: LogBus, caplog: pytest.LogCaptureFixture
) -> None:
    """``LiveTypes``: the types a group wants are asked before each batch is decoded (of
    those its handler handles); while they cannot be read, every handled type is decoded."""
    from shared.bus import LiveTypes

    wanted: set[str] | None = {"ticket.dispatched"}

    async def now() -> set[str]:
        if wanted is None:
            raise ConnectionError("database unreachable")
        return wanted | {"ticket.closed"}  # not handled: never decoded

    got = Recorder()
    handled = {"ticket.registered", "ticket.dispatched"}
    bus.subscribe("channels", [TOPIC_TICKETS], got, LiveTypes(handled, now))
    types = ["ticket.registered", "ticket.dispatched", "ticket.closed"]
    await bus.publish([event(n, t) for n, t in enumerate(types, 1)])
    await bus.drain()
    assert got.seen == ["TJ0002"]

    wanted = {"ticket.registered"}
    await bus.publish([event(n, t) for n, t in enumerate(types, 4)])
    await bus.drain()
    assert got.seen == ["TJ0002", "TJ0004"]

    wanted = None
    caplog.set_level(logging.WARNING, logger="hotline.bus")
    await bus.publish([event(n, t) for n, t in enumerate(types, 7)])
    await bus.drain()
    assert got.seen == ["TJ0002", "TJ0004", "TJ0007", "TJ0008"]
    assert "cannot be read" in caplog.text


def test_an_envelope_is_told_by_its_type_without_being_parsed() -> None:
    from shared.bus import decode

    first = event(1, "sla.deadline_set")
    # not parsed: a value that reads as the type it begins with, and is not an envelope at all
    posing = b'{"event_id":"x","type":"sla.deadline_set", not JSON'
    # written some other way (keys reordered): parsed and delivered as before
    reordered = b'{"type":"ticket.registered",' + first.to_json()[1:].replace(
        b'"type":"sla.deadline_set",', b""
    )
    batch, bad = decode([first.to_json(), posing, reordered], frozenset({"x"}))
    assert [e.type for e in batch] == ["ticket.registered"]
    assert bad == []
    batch, bad = decode([first.to_json(), posing], frozenset({"sla.deadline_set"}))
    assert [e.type for e in batch] == ["sla.deadline_set"] and [i for i, _ in bad] == [1]
    # a type whose bytes are not UTF-8 is not one a group takes: passed over, not raised
    not_utf8 = first.to_json().replace(b"sla.deadline_set", b"sla.\xff\xfe")
    assert decode([not_utf8], frozenset({"sla.deadline_set"})) == ([], [])
    # of a type in ``unless``, the values its pattern finds are passed over, the others taken
    unless = {"sla.deadline_set": re.compile(rb'"clock":"acceptance"')}
    clocks = [
        Envelope(
            type="sla.deadline_set", occurred_at=NOW, producer="sla", payload={"clock": clock}
        ).to_json()
        for clock in ("acceptance", "completion")
    ]
    batch, _ = decode(clocks, frozenset({"sla.deadline_set"}), unless)
    assert [e.payload["clock"] for e in batch] == ["completion"]


# a requester's phone in each: no reason given for refusing them may quote it
GARBAGE = [
    b"\xff\xfe\x00 13920001234",  # not UTF-8
    b"13920001234 is not JSON",
    b'{"type":"ticket.registered","payload":{"phone":"13920001234"}}',  # no event_id
    b'{"event_id":"not-a-uuid","type":"ticket.registered","occurred_at":"2026-03-02T01:00:00Z",'
    b'"producer":"intake","payload":"13920001234"}',  # wrong field types, type readable
    b"[13920001234]",
    None,  # a Kafka tombstone (no value)
]


def test_a_message_that_is_not_an_envelope_is_reported_never_passed_over_or_raised() -> None:
    from shared.bus import decode

    good = event(1).to_json()
    for types in (None, frozenset({"ticket.registered"})):
        batch, bad = decode([good, *GARBAGE, good], types)
        assert [e.ticket_id for e in batch] == ["TJ0001", "TJ0001"]
        assert [i for i, _ in bad] == [1, 2, 3, 4, 5, 6]
        assert all(why and "13920001234" not in why for _, why in bad), bad
    _, [(_, why)] = decode([GARBAGE[3]], None)
    assert "event_id" in why and "payload" in why  # the fields at fault, not their values
    # a message whose type is read and of no interest to the group is passed over unread,
    # broken or not (the fast path parses nothing a group does not want)
    assert decode([GARBAGE[3]], frozenset({"sla.deadline_set"})) == ([], [])


def test_a_message_that_is_not_an_envelope_is_refused_as_ever_by_a_group_reading_models() -> None:
    """A group whose types are read straight into their models (``models``) refuses what
    others refuse, for the same reasons; an envelope whose payload its model refuses is
    delivered as an ``Envelope`` (its handler fails on it, and it is parked, as ever)."""
    from shared.bus import decode
    from shared.events import EVENT_TYPES, Received

    good = event(1).to_json()  # its payload ({}) is not a registration
    registered = Envelope.from_json(every_event_in_chinese()["ticket.registered"])
    for types in (None, frozenset({"ticket.registered"})):
        values = [good, *GARBAGE, registered.to_json()]
        plain, plain_bad = decode(values, types)
        batch, bad = decode(values, types, models=EVENT_TYPES)
        assert bad == plain_bad and len(bad) == len(GARBAGE)
        assert [type(e) for e in batch] == [Envelope, Received[EVENT_TYPES[registered.type]]]
        assert batch[0] == plain[0]
        assert batch[1].as_envelope() == plain[1] == registered


async def test_a_group_reading_models_gets_every_type_as_the_envelope_and_payload_it_was(
    bus: LogBus,
) -> None:
    """Every event type, in Chinese, through the log: a group reading the models gets what a
    group reading envelopes gets and parses, and each of its own events as its model."""
    from shared.bus import RawEvent
    from shared.events import EVENT_TYPES, TOPICS, Header, Received, parse_payload

    raws = list(every_event_in_chinese().values())
    envelopes = [Envelope.from_json(raw) for raw in raws]
    got: dict[str, list[Header]] = {"read": [], "plain": []}

    def into(name: str) -> Callable[[Sequence[Header]], Awaitable[None]]:
        async def take(batch: Sequence[Header]) -> None:
            got[name].extend(batch)

        return take

    bus.subscribe("read", TOPICS, into("read"), set(EVENT_TYPES), models=EVENT_TYPES)
    bus.subscribe("plain", TOPICS, into("plain"), set(EVENT_TYPES))
    await bus.publish_raw(
        [RawEvent(e.topic, e.key, raw) for e, raw in zip(envelopes, raws, strict=True)]
    )
    await bus.drain()

    assert sorted(e.event_id for e in got["read"]) == sorted(e.event_id for e in envelopes)
    plain = {e.event_id: e for e in got["plain"]}
    for received in got["read"]:
        assert isinstance(received, Received)
        envelope = plain[received.event_id]
        assert type(envelope) is Envelope
        assert received.payload == parse_payload(envelope)
        assert type(received.payload) is EVENT_TYPES[envelope.type]
        assert received.as_envelope() == envelope


async def test_a_group_with_nowhere_to_park_logs_a_message_that_is_not_an_event_and_goes_on(
    bus: LogBus, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.bus import RawEvent

    caplog.set_level(logging.ERROR, logger="hotline.bus")
    got = Recorder()
    bus.subscribe("console-live", [TOPIC_TICKETS], got)
    await bus.publish([event(1)])
    await bus.publish_raw([RawEvent(TOPIC_TICKETS, "TJ0002", GARBAGE[1])])
    await bus.publish([event(3)])
    await bus.drain(timeout=5)

    assert got.seen == ["TJ0001", "TJ0003"]
    [line] = [r for r in caplog.records if r.name == "hotline.bus"]
    assert line.getMessage() == "message on the bus is not an event; passed over"
    assert (line.topic, line.offset, line.bytes) == (TOPIC_TICKETS, 2, len(GARBAGE[1]))  # type: ignore[attr-defined]
    assert "13920001234" not in str(line.__dict__)


async def test_a_rebalance_never_waits_out_a_failing_batchs_back_off() -> None:
    """A Kafka consumer whose batch fails (an outage) sleeps between tries, up to 10 s; its
    partitions being revoked meanwhile ends the wait at once (the rebalance holds up every
    member of the group until this one lets go)."""
    from shared.bus import _deliver, _Subscription

    tries = 0

    async def down(batch: Sequence[Envelope]) -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError("database unreachable")

    sub = _Subscription("dispatch", frozenset({TOPIC_TICKETS}), down)
    revoking = asyncio.Event()
    delivering = asyncio.create_task(_deliver(sub, [event(1)], abandon=revoking, max_delay=60.0))
    while tries < 5:  # the back-off has grown to a second or more
        await asyncio.sleep(0.01)
    revoking.set()
    async with asyncio.timeout(0.5):
        assert await delivering is False
    assert tries == 5 and sub.state == "running"


def test_a_group_member_is_taken_for_dead_only_after_several_missed_heartbeats() -> None:
    from shared.bus import GroupTiming
    from shared.settings import Settings

    timing = Settings().kafka_group_timing
    assert timing == GroupTiming(session_timeout_ms=6000, heartbeat_ms=1000)
    with pytest.raises(ValueError, match="HOTLINE_KAFKA_HEARTBEAT_MS"):
        GroupTiming(session_timeout_ms=6000, heartbeat_ms=3000)
    with pytest.raises(ValueError, match="HOTLINE_KAFKA_REBALANCE_TIMEOUT_MS"):
        GroupTiming(session_timeout_ms=30_000, heartbeat_ms=3000, rebalance_timeout_ms=10_000)


class Partitions:
    """Stands in for an aiokafka consumer as ``refresh_lag`` reads it: the partitions it
    holds (none while they are being reassigned) and where each ends."""

    def __init__(self, ends: dict[str, int]) -> None:
        self.ends = ends

    def assignment(self) -> set[str]:
        return set(self.ends)

    async def end_offsets(self, tps: Sequence[str]) -> dict[str, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def committed(self, tp: str) -> int | None:
        return 0


async def test_a_kafka_groups_lag_is_the_last_known_while_its_partitions_are_reassigned() -> None:
    from shared.bus import KafkaBus

    async def handler(batch: Sequence[Envelope]) -> None:
        return None

    bus = KafkaBus("127.0.0.1:1", prefix="t.")
    bus.subscribe("sla", [TOPIC_TICKETS], handler)
    sub = bus._subs["sla"]
    sub.consumer = Partitions({})
    await bus.refresh_lag()
    assert bus.lag() == {}  # joining: not known yet (not 0)

    sub.rebalancing = False  # assigned two partitions with 7 and 5 events to go
    sub.consumer = Partitions({"p0": 7, "p1": 5})
    await bus.refresh_lag()
    assert bus.lag() == {"sla": 12}

    sub.rebalancing, sub.lag_read_at = True, float("-inf")  # revoked: it holds none now
    sub.consumer = Partitions({})
    await bus.refresh_lag()
    assert bus.lag() == {"sla": 12}


class _SlowMetadataAdmin:
    """A broker whose metadata learns of new topics only after ``unknown_for`` requests
    (error 3 is UNKNOWN_TOPIC_OR_PARTITION), then with a partition still leaderless once."""

    def __init__(self, unknown_for: int) -> None:
        self.unknown_for = unknown_for
        self.asked: list[list[str]] = []

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        self.asked.append(list(topics))
        n = len(self.asked)
        if n <= self.unknown_for:
            return [{"topic": t, "error_code": 3, "partitions": []} for t in topics]
        leader = -1 if n == self.unknown_for + 1 else 1
        return [
            {
                "topic": t,
                "error_code": 0,
                "partitions": [
                    {"partition": 0, "error_code": 0, "leader": 1},
                    {"partition": 1, "error_code": 0, "leader": leader},
                ],
            }
            for t in topics
        ]


async def test_kafka_start_waits_until_the_brokers_metadata_shows_its_new_topics_led() -> None:
    # CI: a fresh broker's first consumer subscribed before the broker's metadata had the
    # topic it had just created, joined with no partitions and took nothing for 120 s
    admin = _SlowMetadataAdmin(unknown_for=3)
    await await_topics(admin, ["p.hotline.tickets", "p.hotline.catalog"], pause=0)
    assert len(admin.asked) == 5  # 3 unknown, 1 with a partition not led, then ready
    assert admin.asked[0] == ["p.hotline.catalog", "p.hotline.tickets"]


async def test_kafka_start_fails_clearly_when_its_topics_never_appear() -> None:
    admin = _SlowMetadataAdmin(unknown_for=10**6)
    with pytest.raises(RuntimeError, match=r"not ready after 0 s: \['p.hotline.tickets'\]"):
        await await_topics(admin, ["p.hotline.tickets"], timeout=0.0, pause=0)


def fetched(values: Sequence[bytes], value_deserializer: Any) -> list[Any]:
    """What aiokafka's fetcher hands a consumer with ``value_deserializer`` for one
    partition's records of ``values`` (keys K0, K1, ...), parsed as it parses them."""
    from aiokafka.consumer import fetcher
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import TopicPartition

    builder = DefaultRecordBatchBuilder(2, 0, 0, 1, 0, 0, 1 << 20)
    for i, value in enumerate(values):
        builder.append(i, None, b"K%d" % i, value, [("trace-id", b"4f2a9c")])
    tp = TopicPartition("t.hotline.tickets", 2)
    records = MemoryRecords(bytes(builder.build()))
    return list(fetcher.PartitionRecords(tp, records, [], 0, None, value_deserializer, True, 1))


def record_batches(*sizes: int) -> bytes:
    """Record batches as a fetch answer holds them, one after another: ``sizes[i]``
    records in the i-th, offsets numbered on from the last."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    data, offset = b"", 0
    for size in sizes:
        builder = DefaultRecordBatchBuilder(2, 0, 0, 1, 0, 0, 1 << 20)
        for i in range(size):
            builder.append(i, None, b"K%d" % (offset + i), "事件%d".encode() * (i + 1), [])
        batch = bytearray(builder.build())
        batch[0:8] = offset.to_bytes(8, "big")  # the batch's base offset (the broker's part)
        data, offset = data + bytes(batch), offset + size
    return data


def partition_records(data: bytes, check_crcs: bool) -> list[Any]:
    """The records aiokafka's fetcher makes of one partition's fetched ``data``, with its
    ``MemoryRecords`` as installed now."""
    from aiokafka.consumer import fetcher
    from aiokafka.structs import TopicPartition

    records = fetcher.MemoryRecords(data)
    tp = TopicPartition("t.hotline.tickets", 0)
    return list(fetcher.PartitionRecords(tp, records, [], 0, None, None, check_crcs, 1))


def test_the_bus_consumers_check_each_fetched_batchs_crc_themselves() -> None:
    """The bus's consumers turn aiokafka's CRC check off and check each batch with the
    ``crc32c`` package as it is read (``checked_records``): the same records as aiokafka
    hands over with its own check, a partial batch at the end of a fetch left for the
    next, and a batch changed on the way (one bit) refused as aiokafka refuses it."""
    from aiokafka.errors import CorruptRecordException
    from aiokafka.record.memory_records import MemoryRecords

    from shared.bus import checked_records

    assert checked_records()
    data = record_batches(3, 1, 4)
    partial = record_batches(2)[:40]
    ours = partition_records(data + partial, check_crcs=False)
    theirs = list(MemoryRecords(data).next_batch())  # (aiokafka's own, checked)
    assert [r.offset for r in ours] == list(range(8))
    assert [(r.key, r.value) for r in ours[:3]] == [(r.key, r.value) for r in theirs]
    second = len(record_batches(3))
    for where in (30, second + 21, second + 40, len(data) - 1):  # in the 1st, 2nd, 3rd batch
        changed = bytearray(data)
        changed[where] ^= 0x10
        with pytest.raises(CorruptRecordException):
            partition_records(bytes(changed), check_crcs=False)


def test_the_crc_check_is_taken_over_only_from_a_fetcher_that_makes_records_by_that_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka's check is turned off only while its fetcher makes each partition's records
    through the ``MemoryRecords`` the bus replaces: an aiokafka whose fetcher made them
    some other way would otherwise have its records checked by no one."""
    from aiokafka.consumer import fetcher

    from shared.bus import checked_records

    assert checked_records.__wrapped__()  # (the installed aiokafka: by that name)

    class ElsewhereFetcher:  # makes its records without the module's MemoryRecords
        def _proc_fetch_request(self, data: bytes) -> object:
            return bytes(data)

    monkeypatch.setattr(fetcher, "Fetcher", ElsewhereFetcher)
    assert not checked_records.__wrapped__()


def test_the_bus_consumers_take_records_as_parsed_and_read_them_as_consumer_records() -> None:
    """The bus's consumers (``_as_stored``) are handed each record as aiokafka's parser
    made it, with the offset, key and value its ``ConsumerRecord`` has; any other
    consumer still gets ``ConsumerRecord``s. The bus reads both alike: the events of the
    group's types, and a record that is not an envelope with where it was."""
    from aiokafka.structs import ConsumerRecord, TopicPartition

    from shared.bus import KafkaBus, Wanted, _as_stored, lean_records

    assert lean_records()
    garbage = b"\x00\xff not an event: 13920001234"
    values = [event(1).to_json(), garbage, event(2, "ticket.dispatched").to_json()]
    ours, theirs = fetched(values, _as_stored), fetched(values, None)
    assert all(type(r) is ConsumerRecord for r in theirs)
    assert not any(isinstance(r, ConsumerRecord) for r in ours)
    assert [(r.offset, r.key, r.value) for r in ours] == [
        (r.offset, r.key, r.value) for r in theirs
    ]
    bus = KafkaBus("127.0.0.1:1", prefix="t.")
    tp = TopicPartition("t.hotline.tickets", 2)
    for records in (ours, theirs):
        batch, bad = bus._decode({tp: records}, Wanted({"ticket.dispatched"}), {})
        assert [(e.type, e.ticket_id) for e in batch] == [("ticket.dispatched", "TJ0002")]
        assert [(b.topic, b.partition, b.offset, b.key, b.value) for b in bad] == [
            ("hotline.tickets", 2, 1, "K1", garbage)
        ]
