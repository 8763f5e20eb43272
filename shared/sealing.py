"""Personal data sealed at rest (Art 28, 29): authenticated encryption (AES-256-GCM) under a
key ring, and a keyed blind index for the values looked up by equality (a phone number).

A sealed value reads ``<key id>:<base64 of nonce + ciphertext + tag>``: the key id travels
with the value, so the ring's current key seals and every key still in the ring opens.
Rotation: add a new key, make it current, restart, then re-seal the old rows (for intake
``python -m services.intake rekey``) and drop the old key. The field's name is bound into
each value (associated data): a value copied to another field does not open.

Development and tests get a fixed development ring derived below; production refuses it,
a missing or short key, and a key equal to another (``key_ring_problems``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.keyed import KeyedDigest

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_HINT = "openssl rand -hex 32"
# Public by construction (this file is in the repository): development only.
DEV_KEY_ID = "dev"
DEV_KEY = hashlib.sha256(b"hotline12345 development requester key (public)").hexdigest()
DEV_INDEX_KEY = hashlib.sha256(b"hotline12345 development blind index key (public)").hexdigest()
KNOWN_KEYS = frozenset({DEV_KEY, DEV_INDEX_KEY})


class SealBroken(Exception):
    """A sealed value that does not open: changed, moved to another field, or under a key
    the ring no longer holds. Never answered with a guess."""


def _key_bytes(value: str) -> bytes | None:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) >= KEY_BYTES else None


@dataclass(frozen=True)
class KeyRing:
    current: str
    keys: Mapping[str, AESGCM]
    index_key: KeyedDigest  # the blind index's HMAC

    @classmethod
    def of(cls, keys: Mapping[str, str], current: str, index_key: str) -> KeyRing:
        """From hex keys (see ``key_ring_problems`` for what production accepts)."""
        aead: dict[str, AESGCM] = {}
        for key_id, value in keys.items():
            raw = _key_bytes(value)
            if raw is None or ":" in key_id or not key_id:
                raise ValueError(f"requester key {key_id!r} is not {KEY_BYTES} bytes of hex")
            aead[key_id] = AESGCM(raw[:KEY_BYTES])
        if current not in aead:
            raise ValueError(f"the current requester key id {current!r} is not in the ring")
        index = _key_bytes(index_key)
        if index is None:
            raise ValueError(f"the blind index key is not {KEY_BYTES} bytes of hex")
        return cls(current, aead, KeyedDigest(index))

    @classmethod
    def development(cls) -> KeyRing:
        return cls.of({DEV_KEY_ID: DEV_KEY}, DEV_KEY_ID, DEV_INDEX_KEY)

    def seal(self, value: str | None, field: str) -> str | None:
        if value is None:
            return None
        nonce = _nonce()
        sealed = self.keys[self.current].encrypt(nonce, value.encode(), field.encode())
        # (base64.b64encode's own call, without its wrapper's)
        return f"{self.current}:{binascii.b2a_base64(nonce + sealed, newline=False).decode()}"

    def open(self, token: str | None, field: str) -> str | None:
        if token is None:
            return None
        key_id, _, body = token.partition(":")
        aead = self.keys.get(key_id)
        if aead is None:
            raise SealBroken(f"{field}: sealed under key {key_id!r}, which the ring lacks")
        try:
            raw = base64.b64decode(body, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], field.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SealBroken(f"{field}: the sealed value does not verify") from exc

    def is_current(self, token: str | None) -> bool:
        return token is None or token.startswith(self.current + ":")

    def blind_index(self, value: str | None, field: str) -> str | None:
        """A keyed digest of an already normalised value: equal values, equal digests;
        without the key it says nothing (a phone number's space is small enough to try
        every number against a plain hash)."""
        if value is None:
            return None
        return self.index_key.hexdigest(field.encode() + b"\0" + value.encode())[:32]


def _nonce() -> bytes:
    """A random nonce never used before: the system's randomness is read for many at a
    time (a system call for each was a fifth of a seal's time)."""
    if not _NONCES:
        block = os.urandom(NONCE_BYTES * _NONCES_AT_ONCE)
        _NONCES.extend(block[i : i + NONCE_BYTES] for i in range(0, len(block), NONCE_BYTES))
    return _NONCES.pop()


# nonces not used yet; a forked child starts without its parent's, so the two never seal
# under the same nonce (AES-GCM's one rule)
_NONCES: list[bytes] = []
_NONCES_AT_ONCE = 256
os.register_at_fork(after_in_child=_NONCES.clear)


def parse_key_ring(text: str) -> dict[str, str]:
    """``k2:<hex>,k1:<hex>`` → {key id: hex key} (an entry without an id is ``?``)."""
    keys = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        key_id, _, value = entry.rpartition(":")
        keys[key_id or "?"] = value
    return keys


def key_ring_problems(
    prefix: str, keys: Mapping[str, str], current: str, index_key: str
) -> list[str]:
    """Why these settings are no key ring for production (empty: fine), each naming the
    setting to change."""
    keys_name, current_name, index_name = (
        f"{prefix}_KEYS",
        f"{prefix}_KEY_ID",
        f"{prefix}_INDEX_KEY",
    )
    hint = f"e.g. {keys_name}=k1:<{KEY_HINT}> and {current_name}=k1"
    if not keys:
        return [f"{keys_name} is not set: {hint}"]
    problems = []
    for key_id, value in keys.items():
        if value in KNOWN_KEYS:
            problems.append(
                f"{keys_name}[{key_id}] is the development key published in the repository: "
                f"set a random one ({KEY_HINT})"
            )
        elif _key_bytes(value) is None:
            problems.append(
                f"{keys_name}[{key_id}] is not {KEY_BYTES} bytes of hex: set one from {KEY_HINT}"
            )
    if current not in keys:
        problems.append(
            f"{current_name}={current!r} names no key of {keys_name}: set one of its ids, {hint}"
        )
    if not index_key:
        problems.append(f"{index_name} is not set: set it to {KEY_HINT} (never change it lightly)")
    elif index_key in KNOWN_KEYS:
        problems.append(f"{index_name} is the development key in the repository: {KEY_HINT}")
    elif _key_bytes(index_key) is None:
        problems.append(f"{index_name} is not {KEY_BYTES} bytes of hex: set one from {KEY_HINT}")
    elif index_key in keys.values():
        problems.append(f"{index_name} equals a key of {keys_name}: set two different keys")
    if len(set(keys.values())) < len(keys):
        problems.append(f"{keys_name} holds one key under two ids: give each id its own key")
    return problems
