"""A fast OpenAI-compatible fake upstream on asyncio, for benchmarks only.

``python bench/fake_upstream.py PORT``. Non-streaming requests get a canned
completion; ``"stream": true`` gets a short SSE stream; the model ``slow``
streams 22 events 50 ms apart (a slow LLM). For the relay benchmark (``relay_bench.py``): ``burst``
sends 500 events in one write, ``paced`` sends 500 events 1 ms apart, ``hold`` 200 events 50 ms apart.
"""

from __future__ import annotations

import asyncio
import json
import sys

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant",
        "content": "A gateway routes each call to the active upstream and logs it. " * 4}}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 60, "total_tokens": 102},
}).encode()


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
            "choices": choices}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def stream_events(count: int) -> list[bytes]:
    events = [_chunk(f"token{index} ") for index in range(count - 2)]
    events.append(_chunk(None, finish="stop"))
    events.append(_chunk(None, usage={"prompt_tokens": 42, "completion_tokens": count, "total_tokens": 42 + count}))
    events.append(b"data: [DONE]\n\n")
    return events


FAST_STREAM = stream_events(10)
SLOW_STREAM = stream_events(22)
SLOW_GAP_S = 0.05
RELAY_EVENTS = 500
# model -> (events, seconds between them; 0: one write)
STREAMS = {"slow": (SLOW_STREAM, SLOW_GAP_S), "burst": (stream_events(RELAY_EVENTS), 0.0),
           "paced": (stream_events(RELAY_EVENTS), 0.001), "hold": (stream_events(200), SLOW_GAP_S)}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = json.loads(await reader.readexactly(length)) if length else {}
            if head.startswith(b"GET"):
                payload = b'{"object":"list","data":[{"id":"bench","object":"model"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            elif not body.get("stream"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(COMPLETION)).encode() + b"\r\n\r\n" + COMPLETION)
            else:
                events, gap = STREAMS.get(body.get("model"), (FAST_STREAM, 0.0))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for event in events:
                    writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                    if gap:
                        await writer.drain()
                        await asyncio.sleep(gap)
                writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main(int(sys.argv[1])))
    except ImportError:
        asyncio.run(main(int(sys.argv[1])))
