"""The benchmarks' lean load client (bench/http_load.py) measures what a pooled client
causes: one connection per worker, kept alive between requests."""

from __future__ import annotations

import asyncio
import json
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


async def test_a_connection_lost_mid_request_raises_and_the_next_request_reconnects() -> None:
    served = 0

    async def drop_the_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        served += 1
        if served == 1:
            writer.close()  # no answer: the registration's fate is unknown to the client
            return
        writer.write(ANSWER)
        await writer.drain()

    server = await asyncio.start_server(drop_the_first, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAliveConnection(f"http://127.0.0.1:{port}", {})
    try:
        try:
            await client.post("/tickets", {})
        except ConnectionError:
            pass
        else:
            raise AssertionError("a lost request must raise, not be repeated")
        assert (await client.post("/tickets", {})).status_code == 201
    finally:
        await client.close()
        server.close()
    assert served == 2


async def test_a_request_without_an_answer_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads, never answers, until the client gives up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAliveConnection(f"http://127.0.0.1:{port}", {}, timeout=0.2)
    try:
        try:
            await asyncio.wait_for(client.post("/tickets", {}), 5)
        except TimeoutError as exc:
            assert "no answer within" in str(exc)
        else:
            raise AssertionError("a silent server must time the request out")
    finally:
        await client.close()
        server.close()


async def test_a_prepared_request_is_the_post_of_its_body() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        seen.append(head + await reader.readexactly(length))
        writer.write(ANSWER)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAliveConnection(f"http://127.0.0.1:{port}", {"authorization": "Bearer t"})
    body = {"content": "小区噪音扰民", "district": "浦东新区"}
    try:
        prepared = client.prepare("/tickets", body)
        answer = await client.send(prepared)
        assert answer.status_code == 201 and answer.json() == {}
    finally:
        await client.close()
        server.close()
    assert seen == [prepared]
    assert seen[0].endswith(json.dumps(body, ensure_ascii=False).encode())
    assert b"\r\nauthorization: Bearer t\r\n" in seen[0]
