"""shared/keyed.py: HMAC-SHA256 keyed once."""

from __future__ import annotations

import hmac

import pytest

from shared.keyed import KeyedDigest

MESSAGES = (b"", b"a", b"1700000000\nnonce\nPOST\n/tickets", b"x" * 1000)


@pytest.mark.parametrize("key", [b"", b"k", b"k" * 32, b"k" * 64, b"k" * 200])
def test_each_message_gets_its_own_hmac_sha256(key: bytes) -> None:
    keyed = KeyedDigest(key)

    assert [keyed.hexdigest(m) for m in MESSAGES + MESSAGES] == [
        hmac.digest(key, m, "sha256").hex() for m in MESSAGES + MESSAGES
    ]
