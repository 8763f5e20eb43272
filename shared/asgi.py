"""Plain ASGI pieces of the layers that read a request's body before the app does
(shared/auth.py VerifyCaller, shared/direct.py, gateway/hygiene.py, gateway/proxy.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


async def read_body(receive: Receive) -> bytes:
    """The request's whole body."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case, as ASGI gives the names), as
    starlette's ``Headers.get`` reads it, without making a ``Headers`` (nor, when it is
    absent, raising and catching a KeyError)."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


# The scope's key for a body a layer has read already (the gateway's RequestHygiene), for
# the layers inside it that know to look for it (the gateway's proxy) instead of receiving
# it from the replay (``replaying``) it passes on: a coroutine and a message each. The
# replay still gives the body to whatever reads it by ``receive``.
BODY_READ = "hotline.body"


def passing_on(scope: MutableMapping[str, Any], body: bytes, receive: Receive) -> Receive:
    """``body`` (read from ``receive``) kept in the scope for the layers inside, and the
    ``receive`` to hand them (``replaying``)."""
    scope[BODY_READ] = body
    return replaying(body, receive)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app ``body`` (read already) as the request's, then
    whatever ``receive`` has next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
