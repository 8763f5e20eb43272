"""A lean HTTP/1.1 load client: one keep-alive connection per worker, requests written
as prepared bytes, answers parsed by httptools (uvicorn's parser).

The benchmarks run the load generator on the machine they measure, so its CPU is taken
from the system under test: httpx spends ~2.6 ms of CPU per POST here, this client a
small fraction of that. It does only what a load generator needs: POST a JSON body, read
the status and body, reconnect when the server closes the connection between requests.
A connection lost while a request is in flight raises (a registration is not repeated
behind the caller's back)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import httptools


class _Answer:
    def __init__(self) -> None:
        self.body = bytearray()
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        # only meaningful now: llhttp forgets it once the message is complete
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class Response:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class KeepAliveConnection:
    """One connection to ``base_url``, used by one worker at a time."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 80
        self._head = "".join(
            f"{name}: {value}\r\n" for name, value in {"host": url.netloc, **headers}.items()
        )
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, json_body: Any) -> Response:
        body = json.dumps(json_body, ensure_ascii=False).encode()
        request = (
            f"POST {path} HTTP/1.1\r\n{self._head}content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(request)
        answer = _Answer()
        parser = answer.parser
        try:
            async with asyncio.timeout(self._timeout):
                while not answer.complete:
                    data = await self._reader.read(65536)
                    if not data:
                        raise ConnectionError("the server closed the connection mid-request")
                    parser.feed_data(data)
        except BaseException:
            await self.close()
            raise
        if not answer.keep_alive:
            await self.close()
        return Response(parser.get_status_code(), bytes(answer.body))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None
