"""The plain ASGI pieces shared by the layers that read a request before the app does."""

from __future__ import annotations

from starlette.datastructures import Headers

from shared.asgi import header

RAW = [
    (b"content-type", b"application/json"),
    (b"x-hotline-nonce", b"first"),
    (b"x-hotline-nonce", b"second"),
    (b"x-note", "caf\u00e9".encode("latin-1")),
]


def test_a_header_reads_as_starlette_reads_it() -> None:
    as_starlette = Headers(raw=RAW)
    for name in ("content-type", "x-hotline-nonce", "x-note", "idempotency-key"):
        assert header(RAW, name.encode()) == as_starlette.get(name)
    assert header(RAW, b"x-hotline-nonce") == "first"  # the first of two
    assert header(RAW, b"x-note") == "caf\u00e9"  # latin-1, as ASGI's bytes are
    assert header(RAW, b"idempotency-key") is None
