"""A fake of Qwen's chat web API (chat.qwen.ai) on a real socket, keeping each chat's parent chain.

It answers the way the original gateway's notes describe (REFERENCE.md section 2): a chat is opened
with ``POST /api/v2/chats/new``; each turn carries one message and the ``parent_id`` of the previous
answer; streams start with a ``response.created`` event, carry cumulative usage and end with a delta
whose status is ``finished`` (no ``[DONE]``). A turn whose ``parent_id`` is not the chat's last
answer forks the conversation: the fake counts that, as Qwen would lose the context.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Chat:
    id: str
    head: str | None = None  # the parent_id the next turn must carry
    turns: int = 0
    forks: list[tuple[str | None, str | None]] = field(default_factory=list)  # (sent, expected)


class FakeQwen:
    def __init__(self, *, answer_delay_s: float = 0.0) -> None:
        self.answer_delay_s = answer_delay_s
        self.chats: dict[str, Chat] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if urlsplit(self.path).path == "/api/models":
                    self._json({"success": True, "data": {"data": [{"id": "qwen3-max"}]}})
                else:
                    self._json({"success": False, "data": {"code": "NotFound"}}, status=404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                url = urlsplit(self.path)
                if url.path == "/api/v2/chats/new":
                    chat = Chat(id=str(uuid.uuid4()))
                    with fake.lock:
                        fake.chats[chat.id] = chat
                    self._json({"success": True, "data": {"id": chat.id}})
                elif url.path == "/api/v2/chat/completions":
                    self._turn(parse_qs(url.query).get("chat_id", [""])[0], body)
                else:
                    self._json({"success": False, "data": {"code": "NotFound"}}, status=404)

            def _turn(self, chat_id: str, body: dict) -> None:
                with fake.lock:
                    chat = fake.chats.get(chat_id)
                    if chat is None:
                        self._json({"success": False, "data": {"code": "ChatNotFound"}})
                        return
                    if body.get("parent_id") != chat.head:
                        chat.forks.append((body.get("parent_id"), chat.head))
                    chat.turns += 1
                    answer_id = str(uuid.uuid4())
                    chat.head = answer_id
                    text = f"turn {chat.turns} of {chat.id[:8]}"
                if fake.answer_delay_s:
                    time.sleep(fake.answer_delay_s)
                usage = {"input_tokens": 5, "output_tokens": 4, "total_tokens": 9}
                if not body.get("stream"):
                    self._json({"success": True, "data": {
                        "parent_id": answer_id, "message_id": str(uuid.uuid4()), "usage": usage,
                        "choices": [{"message": {"role": "assistant", "content": text}}],
                    }})
                    return
                events = [
                    {"response.created": {"chat_id": chat_id, "parent_id": answer_id, "response_id": answer_id}},
                    {"choices": [{"delta": {"role": "assistant", "content": text, "status": "typing",
                                            "phase": "answer"}}], "usage": usage},
                    {"choices": [{"delta": {"content": "", "status": "finished", "phase": "answer"}}], "usage": usage},
                ]
                payload = b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _json(self, value: dict, status: int = 200) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeQwen:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
