"""Structured logs: one JSON object per line, carrying the request's trace id."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process_name,
            "msg": record.getMessage(),
        }
        trace_id = trace_id_var.get()
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class QuietRepeats(logging.Filter):
    """Lets each distinct message of the named libraries through once per ``every``
    seconds. aiokafka logs every failed reconnect: hundreds of thousands of lines (and
    much of a core) while a broker is down; our own code logs the state changes."""

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka", "kafka"), every: float = 60.0):
        super().__init__()
        self.prefixes = prefixes
        self.every = every
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        now = record.created
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


class Outage:
    """A loop that retries through an outage (database or broker unreachable) logs once when
    the outage starts and once when it ends, not per retry, and backs off between retries
    (``delay``: 0.2 s doubling to ``max_delay``). The end says how long it lasted and how
    many tries failed meanwhile (``failures``)."""

    def __init__(self, logger: logging.Logger, what: str, max_delay: float = 10.0, **extra: Any):
        self.logger, self.what, self.max_delay, self.extra = logger, what, max_delay, extra
        self.since: float | None = None
        self.delay = 0.0
        self.failures = 0

    def failed(self, error: str | None = None) -> float:
        """Call from the ``except`` block (or with ``error``, what went wrong, where there is
        no exception); returns how long to wait before the next try."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.logger.warning(
                f"{self.what} failed; retrying with back-off until it works",
                exc_info=error is None,
                extra=self.extra if error is None else {**self.extra, "error": error},
            )
        self.delay = min(max(self.delay * 2, 0.2), self.max_delay)
        return self.delay

    def ok(self, **extra: Any) -> None:
        """Call after a try that worked (``extra``: more to tell in the end's log line)."""
        if self.since is not None:
            self.logger.warning(
                f"{self.what} works again",
                extra={
                    **self.extra,
                    **extra,
                    "outage_seconds": round(time.monotonic() - self.since, 1),
                    "failed_tries": self.failures,
                },
            )
        self.since, self.delay, self.failures = None, 0.0, 0


def configure_logging(process_name: str, level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter(process_name))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(QuietRepeats())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "httpx", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The client's ``x-request-id``, kept as the request's trace id (shared/metrics.py
    ``RequestEdge``); only a short printable one: it ends up in every log line."""
    for key, value in headers:
        if key == b"x-request-id":
            if 0 < len(value) <= 128 and value.isascii() and value.decode().isprintable():
                return value.decode()
            return None
    return None
