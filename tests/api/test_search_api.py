"""?q= on /v1/requests and /v1/responses, and the model filter, on calls made through the chat API."""

from __future__ import annotations

import pytest

from app.services.search.indexer import SearchIndexer

# The same words, once as \u escapes and once as raw UTF-8 bytes.
ESCAPED = (b'{"model": "mock/mock-chat", "messages": [{"role": "user", '
           b'"content": "\\u4f60\\u597d\\u4e16\\u754c \\u00fcber"}]}')
RAW = '{"model": "mock/mock-chat", "messages": [{"role": "user", "content": "你好世界 Über"}]}'.encode()
SPLIT = (b'{"model": "mock/mock-chat", "messages": [{"role": "system", "content": "Answer in haiku."},'
         b' {"role": "user", "content": "Write about autumn leaves"}]}')


@pytest.fixture
def calls(client, flush_audit, database_url):
    ids = []
    for body in (ESCAPED, RAW, SPLIT):
        reply = client.post("/v1/chat/completions", data=body, content_type="application/json")
        assert reply.status_code == 200, reply.get_json()
    flush_audit()
    assert SearchIndexer(database_url).run_once() == 3
    for row in client.get("/v1/requests?order=asc").get_json()["data"]:
        ids.append(row["id"])
    return ids


def ids(client, query: str, path: str = "/v1/requests") -> list[int]:
    reply = client.get(f"{path}?{query}")
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    assert body["total"] == len(body["data"])
    return sorted(row["id"] if path == "/v1/requests" else row["request_id"] for row in body["data"])


def test_escaped_and_raw_utf8_bodies_are_found_alike(client, calls):
    assert ids(client, "q=你好世界") == calls[:2]
    assert ids(client, "q=%E4%BD%A0%E5%A5%BD") == calls[:2]  # 你好: two characters
    assert ids(client, "q=ÜBER") == calls[:2]


def test_words_in_different_messages_find_the_call(client, calls):
    assert ids(client, "q=haiku autumn") == [calls[2]]
    assert ids(client, 'q="haiku autumn"') == []
    assert ids(client, "q=haiku autumn", "/v1/responses") == [calls[2]]


def test_the_echoed_answer_is_searchable_too(client, calls):
    # The mock provider answers with the last user message: the answer holds "leaves".
    assert ids(client, "q=leaves&status=ok") == [calls[2]]


def test_model_filter_takes_the_model_as_sent(client, calls):
    assert ids(client, "model=mock/mock-chat") == calls
    assert ids(client, "model=mock-chat") == calls
    assert ids(client, "model=mock/mock-chat&status=ok") == calls
    assert ids(client, "model=other/mock-chat") == []


@pytest.mark.parametrize("query", ["q=", "q=%22%22", "q=" + "x" * 501, "q=a%00b"])
def test_bad_searches_are_400(client, query):
    reply = client.get(f"/v1/requests?{query}")
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] == "invalid_search"
