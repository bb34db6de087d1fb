"""HTTP transport: safe URLs, timeouts on every call, mid-stream failures mapped."""

from __future__ import annotations

import pytest
import responses
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from app.errors import UpstreamCut, UpstreamTimeout
from app.providers.http import HTTPTransport, SSEEventStream, passthrough_event, redact_url
from app.providers.sse import DONE


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://alice:s3cr3t@host.test:8080/v1?key=k3y#frag", "http://host.test:8080/v1"),
        ("https://token@host.test/v1", "https://host.test/v1"),
        ("https://host.test/v1?api_key=abc", "https://host.test/v1"),
        ("http://localhost:1234/v1", "http://localhost:1234/v1"),
    ],
)
def test_redact_url_drops_credentials_query_and_fragment(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize(("timeout_s", "expected"), [(120.0, (10.0, 120.0)), (3.0, (3.0, 3.0))])
def test_every_request_has_a_connect_and_read_timeout(timeout_s, expected):
    transport = HTTPTransport(name="up", base_url="http://up.test/v1/", timeout_s=timeout_s)
    with responses.RequestsMock() as mocked:
        mocked.get("http://up.test/v1/models", json={"data": []})
        transport.request("GET", "/models")
        assert mocked.calls[0].request.req_kwargs["timeout"] == expected


def test_one_call_may_have_a_shorter_timeout():
    transport = HTTPTransport(name="up", base_url="http://up.test", timeout_s=120)
    with responses.RequestsMock() as mocked:
        mocked.get("http://up.test/models", json={"data": []})
        transport.request("GET", "/models", timeout_s=3)
        assert mocked.calls[0].request.req_kwargs["timeout"] == (3, 3)


def test_sessions_ignore_proxies_from_the_environment():
    transport = HTTPTransport(name="up", base_url="http://up.test", timeout_s=1)
    assert transport.session.trust_env is False


class _Raw:
    """A response body that yields some reads, then fails."""

    def __init__(self, reads: list[bytes], error: Exception | None = None) -> None:
        self._reads = list(reads)
        self._error = error
        self.released = False

    def release_conn(self) -> None:
        self.released = True

    def read1(self, size: int) -> bytes:
        if self._reads:
            return self._reads.pop(0)
        if self._error is not None:
            raise self._error
        return b""


class _Response:
    def __init__(self, raw: _Raw) -> None:
        self.raw = raw
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ProtocolError("Connection broken: IncompleteRead"), UpstreamCut),
        (ConnectionResetError(104, "reset"), UpstreamCut),
        (ReadTimeoutError(None, "/v1", "Read timed out."), UpstreamTimeout),
        (TimeoutError("timed out"), UpstreamTimeout),
    ],
)
def test_mid_stream_failures_become_upstream_errors_after_the_first_event(error, expected):
    transport = HTTPTransport(name="up", base_url="http://up.test", timeout_s=1)
    events = SSEEventStream(transport, _Response(_Raw([b'data: {"n": 1}\n\n'], error)))
    iterator = iter(events)
    first = next(iterator)
    assert (first.data, first.chunk) == ('{"n": 1}', {"n": 1})
    with pytest.raises(expected) as caught:
        next(iterator)
    assert "'up'" in caught.value.message


def test_event_stream_flushes_a_last_event_and_close_closes_the_response():
    response = _Response(_Raw([b"data: {\"n\": 1}\n\nda", b"ta: [DONE]"]))
    events = SSEEventStream(HTTPTransport(name="up", base_url="http://up.test", timeout_s=1), response)
    assert [event.data for event in events] == ['{"n": 1}', DONE]
    assert response.raw.released  # read to the end: the connection goes back to the pool
    events.close()
    assert response.closed == 1


@pytest.mark.parametrize("text", ["[DONE]", " [DONE] "])
def test_passthrough_done(text):
    [event] = passthrough_event(text)
    assert (event.data, event.chunk) == (DONE, None)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"'])
def test_passthrough_keeps_data_of_chunks_that_are_not_objects(text):
    [event] = passthrough_event(text)
    assert (event.data, event.chunk) == (text, None)
