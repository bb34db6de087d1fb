"""A lean asyncio load client for the scale-out tests: thousands of chat calls, keep-alive, streams too."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    request_id: str | None
    session_id: str


def _request(host: str, body: bytes, session: str) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-Session-Id: {session}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, headers, bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return status, headers, await reader.readexactly(int(headers.get(b"content-length", b"0")))


async def _calls(port: int, count: int, concurrency: int, sessions: int, model: str) -> list[Answer]:
    answers: list[Answer] = []
    queue = iter(range(count))

    async def client() -> None:
        reader = writer = None
        for number in queue:
            session = f"load-{number % sessions}"
            body = json.dumps({"model": model, "stream": number % 2 == 1,
                               "messages": [{"role": "user", "content": f"call {number}"}]}).encode()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(_request(f"127.0.0.1:{port}", body, session))
                status, headers, _ = await _response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                # Never sent again: a call the gateway took and the client lost must not be made twice.
                if writer is not None:
                    writer.close()
                writer = None
                answers.append(Answer(0, None, session))
                continue
            request_id = headers.get(b"x-request-id")
            answers.append(Answer(status, request_id.decode() if request_id else None, session))
            if headers.get(b"connection") == b"close":
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return answers


def fire_many(base: str, count: int, *, concurrency: int = 64, sessions: int = 500,
              model: str = "mock/load") -> list[Answer]:
    """``count`` calls (every other one streamed) over ``sessions`` sessions, ``concurrency`` at a time."""
    port = int(base.rsplit(":", 1)[1])
    return asyncio.run(_calls(port, count, concurrency, sessions, model))
