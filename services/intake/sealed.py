"""The requester's name, phone and ID number as intake stores them: sealed under the key
ring (shared/sealing.py), the phone also as a blind index, so a lookup by phone matches
digests and never opens every row (Art 28, 29)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.sealing import KeyRing
from shared.service import ServiceContext

NAME, PHONE, ID_NUMBER = "requester_name", "requester_phone", "requester_id_number"
FIELDS = (NAME, PHONE, ID_NUMBER)
SEALED_COLUMNS = tuple(f"{field}_sealed" for field in FIELDS)
PHONE_INDEX = "requester_phone_index"


def seal_requester(
    ring: KeyRing, name: str | None, phone: str | None, id_number: str | None
) -> dict[str, str | None]:
    """The stored columns of a requester: one AES-GCM operation per field given."""
    return {
        f"{NAME}_sealed": ring.seal(name, NAME),
        f"{PHONE}_sealed": ring.seal(phone, PHONE),
        f"{ID_NUMBER}_sealed": ring.seal(id_number, ID_NUMBER),
        PHONE_INDEX: phone_index(ring, phone),
    }


def phone_index(ring: KeyRing, phone: str | None) -> str | None:
    """The blind index of an already normalised phone (domain.normalise_phone)."""
    return ring.blind_index(phone, PHONE)


def open_requester(ring: KeyRing, row: Mapping[Any, Any]) -> dict[str, str | None]:
    """The plain name, phone and ID number of a stored row; raises SealBroken when one was
    changed."""
    return {field: ring.open(row.get(f"{field}_sealed"), field) for field in FIELDS}


def with_requester(ring: KeyRing, row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored row with its requester opened, as the query code reads it."""
    return {**row, **open_requester(ring, row)}


KEY_RING = "intake_requester_keys"


def key_ring(ctx: ServiceContext) -> KeyRing:
    """The service's key ring, made from its settings once (``load_key_ring`` at start)."""
    ring = ctx.extras.get(KEY_RING)
    if not isinstance(ring, KeyRing):
        ring = ctx.extras[KEY_RING] = ctx.settings.requester_key_ring()
    return ring


async def load_key_ring(ctx: ServiceContext) -> None:
    """At start: production refuses to run without a real key ring (shared/settings.py)."""
    key_ring(ctx)
