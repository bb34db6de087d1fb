"""HTTP transport shared by providers: pooled sessions, timeouts, and error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from app.errors import (
    UpstreamCut,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from app.providers.base import EventStream, StreamEvent
from app.providers.chunked import READ_SIZE, WAIT_READ_SIZE, ChunkedDecoder, ChunkedError, body_reader, finish
from app.providers.sse import DONE, SSEDecoder
from app.providers.stall import stall_watch, watched_greenlet

CONNECT_TIMEOUT_S = 10.0
# gevent workers hold thousands of streams, each on its own upstream connection.
POOL_MAXSIZE = 2048
_ERROR_BODY_LIMIT = 64 * 1024
# Headers every upstream request of the current call carries (its W3C ``traceparent`` while tracing):
# set by the chat service per call; per greenlet under gevent.
call_headers: ContextVar[dict[str, str] | None] = ContextVar("upstream_call_headers", default=None)


def redact_url(url: str) -> str:
    """The URL without credentials or query string: safe to log and store."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def new_session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # a proxy from the environment must not see prompts
    return session


class HTTPTransport:
    """Calls one upstream and maps every failure to an UpstreamError that names it safely."""

    def __init__(self, *, name: str, base_url: str, timeout_s: float) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.timeout = (min(CONNECT_TIMEOUT_S, timeout_s), timeout_s)
        self.session = new_session()
        self._adapter = self.session.get_adapter(self.base_url)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        stream: bool = False,
        timeout_s: float | None = None,
    ) -> requests.Response:
        """Send one request; a 4xx/5xx answer raises UpstreamHTTPError with its body."""
        url = self.base_url + path
        timeout = self.timeout if timeout_s is None else (min(CONNECT_TIMEOUT_S, timeout_s), timeout_s)
        data = None
        extra = call_headers.get()
        if extra:
            headers = {**extra, **(headers or {})}
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, headers=headers, data=data, params=params)
        try:
            # Straight to the pooled adapter: Session.request's cookie jar, hooks,
            # redirects and settings merge cost more CPU than the proxy hop needs.
            response = self._adapter.send(prepared, stream=stream, timeout=timeout, proxies={})
        except requests.Timeout:
            raise UpstreamTimeout(
                f"Provider {self.name!r} did not answer within {timeout[1]:g}s."
            ) from None
        except requests.ConnectionError:
            raise UpstreamUnreachable(
                f"Cannot connect to provider {self.name!r} at {redact_url(self.base_url)}."
            ) from None
        except requests.RequestException as exc:
            raise UpstreamError(
                f"Request to provider {self.name!r} failed ({type(exc).__name__})."
            ) from None
        if response.status_code >= 400:
            raise self._http_error(response, streamed=stream)
        return response

    def _http_error(self, response: requests.Response, *, streamed: bool) -> UpstreamHTTPError:
        try:
            if streamed:  # read a bounded amount: the body may be anything
                text = response.raw.read(_ERROR_BODY_LIMIT, decode_content=True) or b""
            else:
                text = response.content[:_ERROR_BODY_LIMIT]
        except Exception:  # noqa: BLE001 - the status alone is still worth reporting
            text = b""
        finally:
            response.close()
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        status = response.status_code
        message = _error_message(payload) or text.decode("utf-8", "replace")[:500].strip()
        error = UpstreamHTTPError(
            f"Provider {self.name!r} answered {status}: {message or response.reason}",
            status=status,
            payload=payload if isinstance(payload, dict) else None,
        )
        error.retry_after = response.headers.get("Retry-After")
        return error

    def read(self, response: requests.Response) -> Iterator[bytes]:
        """The body's bytes as they arrive; transport failures become UpstreamErrors."""
        raw = response.raw
        reader = body_reader(raw)
        try:
            if reader is not None:
                yield from _read_chunked(raw, reader)
                return
            while True:
                data = raw.read1(READ_SIZE)
                if not data:
                    # Read to the end: the connection can go back to the pool.
                    raw.release_conn()
                    return
                yield data
        except (ReadTimeoutError, TimeoutError):
            raise UpstreamTimeout(
                f"Provider {self.name!r} sent nothing for {self.timeout_s:g}s mid-stream."
            ) from None
        except ChunkedError:
            raise UpstreamCut(f"Provider {self.name!r} dropped the stream (ProtocolError).") from None
        except (ProtocolError, requests.RequestException, OSError) as exc:
            raise UpstreamCut(
                f"Provider {self.name!r} dropped the stream ({type(exc).__name__})."
            ) from None


def _read_chunked(raw: Any, reader: Any) -> Iterator[bytes]:
    """A chunked body straight from the connection's reader: one read, one decode, per arrival.

    Under gevent the socket waits without a timer of its own; the worker's stall watch ends a
    read that waits longer than the read timeout (a TimeoutError, as the socket would raise).
    """
    decoder = ChunkedDecoder()
    read1, feed = reader.read1, decoder.feed
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    timeout = sock.gettimeout() if sock is not None else None
    greenlet = watched_greenlet() if timeout is not None else None
    if greenlet is not None:
        sock.settimeout(None)
    key, size = id(decoder), WAIT_READ_SIZE
    try:
        while True:
            if greenlet is not None:
                stall_watch.arm(key, timeout, greenlet)
                try:
                    data = read1(size)
                finally:
                    stall_watch.disarm(key)
            else:
                data = read1(size)
            size = READ_SIZE if len(data) == size else WAIT_READ_SIZE
            if not data:
                raise ChunkedError("the body ended before its last chunk")
            body = feed(data)
            if decoder.done:
                if greenlet is not None:
                    sock.settimeout(timeout)
                finish(raw)  # read to the end: the connection can go back to the pool
                if body:
                    yield body
                return
            if body:
                yield body
    finally:
        if greenlet is not None and not decoder.done:
            sock.settimeout(timeout)


def _error_message(payload: Any) -> str | None:
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("message"))
        if isinstance(error, dict):
            return str(error.get("message") or "") or None
        if isinstance(error, str):
            return error
    return None


class SSEEventStream(EventStream):
    """An upstream SSE response, decoded into events; ``translate`` maps each event's data."""

    def __init__(
        self,
        transport: HTTPTransport,
        response: requests.Response,
        translate: Callable[[str], list[StreamEvent]] | None = None,
    ) -> None:
        self._transport = transport
        self._response = response
        self._translate = translate or passthrough_event

    def __iter__(self) -> Iterator[StreamEvent]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[StreamEvent]]:
        """The events of each read together: a burst is relayed in one write, an event alone at once."""
        decoder, translate = SSEDecoder(), self._translate
        for data in self._transport.read(self._response):
            if texts := decoder.feed(data):
                if translate is passthrough_event:
                    yield [_passthrough(text) for text in texts]
                elif batch := [event for text in texts for event in translate(text)]:
                    yield batch
        if batch := [event for text in decoder.flush() for event in translate(text)]:
            yield batch

    def close(self) -> None:
        self._response.close()


def passthrough_event(text: str) -> list[StreamEvent]:
    """An OpenAI-compatible event, forwarded as it came."""
    return [_passthrough(text)]


def _passthrough(text: str) -> StreamEvent:
    if text.strip() == DONE:
        return StreamEvent(data=DONE, chunk=None)
    try:
        # ~3 times faster than json.loads on a stream chunk (the same objects, except that an
        # integer past 64 bits, which no chunk field carries, comes back as a float).
        chunk = orjson.loads(text)
    except ValueError:
        try:  # what orjson refuses and json accepts: NaN, Infinity, lone surrogates
            chunk = json.loads(text)
        except ValueError:
            chunk = None
    return StreamEvent(data=text, chunk=chunk if isinstance(chunk, dict) else None)
