"""Test data: an envelope of every event type, in Chinese wherever its model takes any text,
as the outbox writes it (``Envelope.to_json``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.events import EVENT_TYPES, Envelope, Event

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"


def every_event_in_chinese() -> dict[str, bytes]:
    """By type, the first example of each in docs/events (each holds what its model
    produces), its strings in Chinese where the model keeps them so, and a trace id."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))
    blocks = re.findall(r"^```json[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)
    found: dict[str, bytes] = {}
    for block in blocks:
        envelope = Envelope.from_json(block.encode())
        if envelope.type not in found:
            payload = _in_chinese(EVENT_TYPES[envelope.type], envelope.payload)
            update = {"payload": payload, "trace_id": "追踪-第1号"}
            found[envelope.type] = envelope.model_copy(update=update).to_json()
    assert set(found) == set(EVENT_TYPES), "docs/events has no example of some types"
    return found


def _in_chinese(model: type[Event], payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with each string (nested ones too) in Chinese where ``model`` keeps the
    new one as it is (a free text, an id); a code it checks (a literal, a time) stays."""
    chinese = dict(payload)
    for path in _string_paths(payload):
        tried = _replaced(chinese, path, "中文：" + _at(chinese, path))
        try:
            kept = model.model_validate(tried).model_dump(mode="json")
        except ValidationError:
            continue
        if kept == tried:
            chinese = tried
    return chinese


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    if not isinstance(value, (dict, list)):
        return []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return [p for key, item in items for p in _string_paths(item, (*path, key))]


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy
