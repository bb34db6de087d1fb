"""The floor for the relay benchmark: the least a gevent WSGI relay of the same events can do.

``gunicorn -k gevent bench.relay_floor:app`` with ``RELAY_FLOOR_UPSTREAM=host:port``. Each POST is
sent on to the upstream on a pooled keep-alive connection; the chunked answer is decoded and each
read's events are yielded as they arrive (one chunk per read), with ``data: [DONE]`` as the gateway
sends it. No routing, no parsing of events, no capture, no persistence: what gunicorn, gevent and
the sockets alone cost per relayed event on this machine. ``RELAY_FLOOR_CLIENT=requests`` makes
the upstream call with ``requests`` instead (what the gateway's provider adapters use).
"""

from __future__ import annotations

import os
import socket

_HOST, _PORT = os.environ.get("RELAY_FLOOR_UPSTREAM", "127.0.0.1:8001").rsplit(":", 1)
# A read timeout on the upstream socket, as the gateway has (gevent then starts a timer per wait).
_TIMEOUT = float(os.environ["RELAY_FLOOR_TIMEOUT"]) if os.environ.get("RELAY_FLOOR_TIMEOUT") else None
_pool: list[socket.socket] = []
# RELAY_FLOOR_CLIENT=requests: the upstream call through a pooled requests.Session instead of a raw socket.
_session = None
if os.environ.get("RELAY_FLOOR_CLIENT") == "requests":
    import requests
    from requests.adapters import HTTPAdapter

    _session = requests.Session()
    _session.mount("http://", HTTPAdapter(pool_connections=8, pool_maxsize=2048, max_retries=0))


def _connection() -> socket.socket:
    if _pool:
        return _pool.pop()
    return socket.create_connection((_HOST, int(_PORT)), timeout=_TIMEOUT)


def _relay(sock: socket.socket, request: bytes):
    sock.sendall(request)
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    del buffer[: buffer.index(b"\r\n\r\n") + 4]
    while True:  # chunked body: forward each read's complete chunks at once
        out = bytearray()
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(buffer[:line_end], 16)
            if size == 0:
                if out:
                    yield bytes(out)
                del buffer[: line_end + 4]
                _pool.append(sock)
                return
            if len(buffer) < line_end + 2 + size + 2:
                break
            out += buffer[line_end + 2: line_end + 2 + size]
            del buffer[: line_end + 2 + size + 2]
        if out:
            yield bytes(out)
        data = sock.recv(65536)
        if not data:
            return
        buffer += data


def _relay_requests(body: bytes):
    """The same relay with the upstream call made through requests (as the gateway's adapters make it)."""
    reply = _session.post(f"http://{_HOST}:{_PORT}/v1/chat/completions", data=body, stream=True,
                          headers={"Content-Type": "application/json"}, timeout=(5, _TIMEOUT))
    try:
        yield from reply.iter_content(chunk_size=None)  # chunked: each chunk as it arrives
    finally:
        reply.close()


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if _session is not None:
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        return _relay_requests(body)
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    return _relay(_connection(), request)
