"""Logs stay readable while the broker is down: a library's repeated message is let through
once a minute, our own lines always."""

from __future__ import annotations

import logging

from shared.logging import QuietRepeats


def record(name: str, msg: str, at: float) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": name, "msg": msg, "levelno": logging.ERROR})
    rec.created = at
    return rec


def test_a_reconnect_storm_is_one_line_a_minute_and_our_own_lines_all_pass() -> None:
    quiet = QuietRepeats(every=60)
    storm = [
        record("aiokafka.conn", "Unable connect to node %s", 1000 + i / 1000) for i in range(5000)
    ]
    ours = [record("hotline.bus", "consumer cannot fetch; retrying", 1000.0) for _ in range(3)]

    passed = [r for r in storm if quiet.filter(r)]
    other = quiet.filter(record("aiokafka.consumer.fetcher", "Failed fetch", 1001))
    later = quiet.filter(record("aiokafka.conn", "Unable connect to node %s", 1061))

    assert len(passed) == 1
    assert other and later
    assert all(quiet.filter(r) for r in ours)
