"""Random texts a request needs (its trace id, the gateway's signature nonce), made from the
system's randomness many at a time: one ``getrandom`` system call for 256 of each instead
of one a text (two a request at the gateway, whose kernel time is a fifth of its CPU). The
same randomness (``os.urandom``), the same texts as before: 32 hex digits as
``os.urandom(16).hex()``, 22 URL-safe characters as ``secrets.token_urlsafe(16)``. Each
text is handed out once (``list.pop``); a forked child starts without its parent's texts,
so the two never hand out the same one (shared/sealing.py's nonces and shared/events'
ids are drawn alike)."""

from __future__ import annotations

import base64
import os

_AT_ONCE = 256
_BYTES = 16  # each text's random bytes

_TRACE_IDS: list[str] = []
_NONCES: list[str] = []


def trace_id() -> str:
    """A new trace id: 32 random hex digits, as ``os.urandom(16).hex()``."""
    if not _TRACE_IDS:
        digits = os.urandom(_BYTES * _AT_ONCE).hex()
        _TRACE_IDS.extend(digits[i : i + 2 * _BYTES] for i in range(0, len(digits), 2 * _BYTES))
    return _TRACE_IDS.pop()


def nonce() -> str:
    """A new nonce: 16 random bytes in URL-safe base64 without padding (22 characters), as
    ``secrets.token_urlsafe(16)``."""
    if not _NONCES:
        block = os.urandom(_BYTES * _AT_ONCE)
        encode = base64.urlsafe_b64encode
        _NONCES.extend(
            encode(block[i : i + _BYTES]).rstrip(b"=").decode("ascii")
            for i in range(0, len(block), _BYTES)
        )
    return _NONCES.pop()


def _forget() -> None:
    _TRACE_IDS.clear()
    _NONCES.clear()


os.register_at_fork(after_in_child=_forget)
