"""An asyncio HTTP/1.1 load generator: keep-alive clients, latency per request, streams' TTFB."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

try:  # the load generator must cost the machine as little as possible: uvloop when present
    import uvloop

    def run(coroutine):
        return uvloop.run(coroutine)
except ImportError:  # pragma: no cover - uvloop is in the test extras
    run = asyncio.run

REQUEST_BODY = json.dumps({
    "model": "bench",
    "messages": [
        {"role": "system", "content": "You are a concise assistant for platform engineers."},
        {"role": "user", "content": "In two sentences, what does an LLM gateway do?"},
    ],
}).encode()


def http_request(path: str, body: bytes, *, session: str, headers: str = "") -> bytes:
    """``headers``: extra header lines, each ending in CRLF."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"X-Session-Id: {session}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader, *, first_byte: list[float] | None = None) -> tuple[int, bytes]:
    """Read one response (Content-Length or chunked); note when the first body byte came."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = head.lower()
    if b"transfer-encoding: chunked" in headers:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if first_byte is not None and not first_byte and size:
                first_byte.append(time.perf_counter())
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = int(headers.split(b"content-length:")[1].split(b"\r\n")[0])
    data = await reader.readexactly(length)
    if first_byte is not None:
        first_byte.append(time.perf_counter())
    return status, data


@dataclass
class RunResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def closed_loop(host: str, port: int, path: str, *, concurrency: int, seconds: float,
                      headers: str = "") -> RunResult:
    """``concurrency`` clients, each sending requests back to back on one connection, for ``seconds``."""
    result = RunResult()
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        request = http_request(path, REQUEST_BODY, session=f"bench-{index}", headers=headers)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status, _ = await read_response(reader)
                if status == 200:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(index) for index in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class StreamsResult:
    started: int
    completed: int
    ttfb: list[float]
    seconds: float
    peak_open: int


async def slow_streams(
    host: str, port: int, *, count: int, ramp_s: float = 0.0, model: str = "slow"
) -> StreamsResult:
    """Open ``count`` streams (spread evenly over ``ramp_s``); count those ending in [DONE]; TTFB each."""
    body = json.dumps({**json.loads(REQUEST_BODY), "model": model, "stream": True}).encode()
    ttfb: list[float] = []
    spans: list[tuple[float, float]] = []
    completed = 0

    async def one(index: int) -> None:
        nonlocal completed
        await asyncio.sleep(ramp_s * index / count)
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return
        try:
            writer.write(http_request("/v1/chat/completions", body, session=f"slow-{index}"))
            first: list[float] = []
            status, data = await asyncio.wait_for(read_response(reader, first_byte=first), 120)
            if first:
                ttfb.append(first[0] - started)
            if status == 200 and data.endswith(b"data: [DONE]\n\n"):
                completed += 1
                spans.append((started, time.perf_counter()))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(count)))
    return StreamsResult(
        started=count, completed=completed, ttfb=ttfb,
        seconds=time.perf_counter() - started, peak_open=_peak(spans),
    )


def _peak(spans: list[tuple[float, float]]) -> int:
    """The most streams that were open at the same moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak
