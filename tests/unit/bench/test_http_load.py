"""The benchmarks' lean load client (bench/http_load.py) measures what a pooled client
causes: one connection per worker, kept alive between requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bench.http_load import KeepAliveConnection

ANSWER = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def connections_for(posts: int, serve: Serve) -> int:
    """How many connections one worker's ``posts`` POSTs of ``{}`` open to ``serve``."""
    opened = 0

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        try:
            await serve(reader, writer)
        except asyncio.IncompleteReadError:  # the client closed it
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAliveConnection(f"http://127.0.0.1:{port}", {})
    try:
        for _ in range(posts):
            assert (await client.post("/tickets", {})).status_code == 201
    finally:
        await client.close()
        server.close()
    return opened


async def test_requests_of_one_worker_share_one_kept_alive_connection() -> None:
    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            await reader.readexactly(2)  # the body, {}
            writer.write(ANSWER)

    assert await connections_for(3, keep_alive) == 1


async def test_a_server_that_says_close_gets_a_new_connection() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(ANSWER.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1))
        await writer.drain()
        writer.close()

    assert await connections_for(2, once) == 2
