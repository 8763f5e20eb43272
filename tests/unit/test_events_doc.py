"""docs/events.md is the JSON contract; these tests keep it in step with shared/events.py.

Every registered event type needs a ``### <type>`` section that names each of its fields
(nested ones as ``parent.child``), states its topic, and shows at least one example envelope
(a fenced ``json`` block) that validates as an ``Envelope`` whose payload is exactly what
the type's model would produce. A new event type in ``EVENT_TYPES`` fails here until it is
documented — that is intended.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.events import EVENT_TYPES, Envelope, Event, parse_payload, topic_for
from shared.settings import SERVICES

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
CATALOG_HEADING = "Event catalog"


@dataclass
class Section:
    level: int
    title: str
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def json_blocks(self) -> list[str]:
        return _json_blocks(self.text)


def _json_blocks(text: str) -> list[str]:
    return re.findall(r"^```json[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)


def parse_sections(text: str) -> list[Section]:
    """``##`` and ``###`` sections, in order; headings inside code fences do not count."""
    sections = [Section(1, "")]
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"^(#{2,3})\s+(.+?)\s*#*\s*$", line)
        if heading:
            title = heading.group(2).strip().strip("`").strip()
            sections.append(Section(len(heading.group(1)), title))
        else:
            sections[-1].lines.append(line)
    return sections


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC.is_file(), f"{DOC} is missing: it is the event contract"
    # the general part, then one file per stream (docs/events/<prefix>.md)
    parts = [DOC, *sorted((DOC.parent / "events").glob("*.md"))]
    return "\n\n".join(p.read_text(encoding="utf-8") for p in parts)


@pytest.fixture(scope="module")
def sections(doc: str) -> dict[str, Section]:
    found: dict[str, Section] = {}
    for section in parse_sections(doc):
        if section.level == 3:
            assert section.title not in found, (
                f"docs/events.md: `### {section.title}` appears twice"
            )
            found[section.title] = section
    return found


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The Pydantic model inside an annotation such as ``Reply`` or ``Reply | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (model := _model_of(arg)) is not None:
                return model
    return None


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field of ``model``, nested model fields as ``parent.child``."""
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        if (nested := _model_of(info.annotation)) is not None:
            paths.extend(field_paths(nested, f"{path}."))
    return paths


def _key_mismatch(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys missing from or unknown to ``model`` in ``data`` (recursing into sub-models)."""
    problems = []
    fields = model.model_fields
    for name in fields.keys() - data.keys():
        problems.append(f"missing `{prefix}{name}`")
    for name in data.keys() - fields.keys():
        problems.append(f"unknown `{prefix}{name}` (a typo? the model ignores it silently)")
    for name in fields.keys() & data.keys():
        nested = _model_of(fields[name].annotation)
        if nested is not None and isinstance(data[name], dict):
            problems.extend(_key_mismatch(nested, data[name], f"{prefix}{name}."))
    return problems


def _naive_datetimes(value: Any, path: str) -> list[str]:
    if isinstance(value, datetime):
        return [path] if value.tzinfo is None else []
    if isinstance(value, BaseModel):
        return [
            p
            for name in type(value).model_fields
            for p in _naive_datetimes(getattr(value, name), f"{path}.{name}")
        ]
    return []


# ---- every type is documented -------------------------------------------------------------


def test_doc_covers_the_contract_basics(doc: str) -> None:
    titles = {s.title.lower() for s in parse_sections(doc) if s.level == 2}
    for needed in ("envelope", "topics and keys", "delivery guarantees"):
        assert needed in titles, f"docs/events.md: no `## {needed}` section (found {titles})"
    assert any("version" in t for t in titles), "docs/events.md: no section on versioning"
    assert CATALOG_HEADING.lower() in titles, f"docs/events.md: no `## {CATALOG_HEADING}`"
    for name in Envelope.model_fields:
        assert f"`{name}`" in doc, f"docs/events.md: the envelope field `{name}` is not described"


def test_no_section_for_an_unknown_event_type(doc: str) -> None:
    in_catalog = False
    stale = []
    for section in parse_sections(doc):
        if section.level == 2:
            in_catalog = section.title == CATALOG_HEADING
        elif section.level == 3 and in_catalog and section.title not in EVENT_TYPES:
            stale.append(section.title)
    assert not stale, (
        f"docs/events.md documents event types that shared.events.EVENT_TYPES does not have "
        f"(renamed or removed?): {stale}"
    )


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_type_has_a_section_naming_every_field_and_its_topic(
    sections: dict[str, Section], event_type: str
) -> None:
    assert event_type in sections, (
        f"docs/events.md has no `### {event_type}` section; every type in "
        f"shared.events.EVENT_TYPES must be documented"
    )
    text = sections[event_type].text
    model = EVENT_TYPES[event_type]
    missing = [p for p in field_paths(model) if f"`{p}`" not in text]
    assert not missing, (
        f"docs/events.md `### {event_type}`: fields of {model.__name__} not described "
        f"(write them as `name`, nested ones as `parent.child`): {missing}"
    )
    topic = topic_for(event_type)
    assert f"`{topic}`" in text, (
        f"docs/events.md `### {event_type}`: does not name its topic {topic}"
    )


# ---- every example is a valid envelope ----------------------------------------------------


def check_envelope(raw_text: str, where: str) -> Envelope:
    try:
        raw = json.loads(raw_text)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{where}: the json example is not valid JSON: {exc}")
    assert isinstance(raw, dict), f"{where}: the example should be a JSON object (an envelope)"
    missing = [k for k in Envelope.model_fields if k not in raw]
    assert not missing, (
        f"{where}: the example envelope omits {missing}; show every envelope field (a parser "
        f"would invent a fresh event_id, which defeats deduplication)"
    )
    unknown = sorted(raw.keys() - Envelope.model_fields.keys())
    assert not unknown, f"{where}: the example envelope has unknown fields {unknown}"
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        pytest.fail(f"{where}: the example is not a valid Envelope:\n{exc}")
    assert envelope.occurred_at.tzinfo is not None, (
        f"{where}: occurred_at {raw['occurred_at']!r} has no UTC offset"
    )
    assert envelope.producer in SERVICES, (
        f"{where}: producer {envelope.producer!r} is not a service ({', '.join(SERVICES)})"
    )
    return envelope


def test_every_json_block_is_an_envelope(doc: str) -> None:
    blocks = _json_blocks(doc)
    assert blocks, "docs/events.md has no ```json examples"
    for n, block in enumerate(blocks, 1):
        check_envelope(block, f"docs/events.md json block #{n}")


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_examples_validate_against_the_model(sections: dict[str, Section], event_type: str) -> None:
    assert event_type in sections, f"docs/events.md has no `### {event_type}` section"
    blocks = sections[event_type].json_blocks
    assert blocks, f"docs/events.md `### {event_type}`: no ```json example envelope"
    model: type[Event] = EVENT_TYPES[event_type]
    for n, block in enumerate(blocks, 1):
        where = f"docs/events.md `### {event_type}` example #{n}"
        envelope = check_envelope(block, where)
        assert envelope.type == event_type, (
            f"{where}: has type {envelope.type!r}, but sits under `### {event_type}`"
        )
        assert envelope.version == model.VERSION, (
            f"{where}: shows version {envelope.version}, the current version of "
            f"{event_type} is {model.VERSION}; examples show what producers emit now"
        )
        mismatch = _key_mismatch(model, envelope.payload)
        assert not mismatch, f"{where}: payload does not match {model.__name__}: {mismatch}"
        try:
            event = parse_payload(envelope)
        except ValidationError as exc:
            pytest.fail(f"{where}: payload does not validate as {model.__name__}:\n{exc}")
        naive = _naive_datetimes(event, "payload")
        assert not naive, f"{where}: timestamps without a UTC offset: {naive}"
        emitted = event.model_dump(mode="json")
        differs = sorted(k for k in emitted if emitted[k] != envelope.payload.get(k))
        assert not differs, (
            f"{where}: the payload is not what {model.__name__} serialises to (a producer "
            f"would write { ({k: emitted[k] for k in differs}) }, the example has "
            f"{ ({k: envelope.payload.get(k) for k in differs}) })"
        )
        if "ticket_id" in model.model_fields:
            assert envelope.ticket_id == envelope.payload["ticket_id"], (
                f"{where}: envelope ticket_id {envelope.ticket_id!r} differs from the "
                f"payload's {envelope.payload['ticket_id']!r}; the envelope's is the Kafka key"
            )


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_examples_read_from_their_bytes_are_the_envelopes_validated_from_their_dicts(
    sections: dict[str, Section], event_type: str
) -> None:
    """What a consumer reads off the bus (``Envelope.from_json``, pydantic-core reading the
    bytes into the envelope) is what orjson's dict validated makes, field by field, and its
    payload the same event: for every type, as the example is written and as a producer
    writes it."""
    for block in sections[event_type].json_blocks:
        for raw in (block.encode(), Envelope.from_json(block.encode()).to_json()):
            read, strictly = Envelope.from_json(raw), Envelope._from_json_strictly(raw)
            assert read == strictly and repr(read) == repr(strictly)
            assert read.__pydantic_fields_set__ == strictly.__pydantic_fields_set__
            assert {k: type(v) for k, v in read} == {k: type(v) for k, v in strictly}
            assert parse_payload(read) == parse_payload(strictly)
