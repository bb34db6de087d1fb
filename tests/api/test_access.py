"""Who may use the history API, whether it exists at all, and how HTTP errors look."""

from __future__ import annotations

import logging

import pytest

from app import create_app

HISTORY_GETS = [
    "/v1/sessions", "/v1/sessions/s", "/v1/sessions/s/stats", "/v1/sessions/s/requests", "/v1/requests",
    "/v1/requests/1", "/v1/requests/1/response", "/v1/responses", "/v1/responses/1", "/v1/responses/stats",
    "/v1/stats/usage",
]
CHAT = {"model": "mock/any", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def keyed(make_settings):
    return create_app(make_settings(admin_api_key="s3cret")).test_client()


@pytest.mark.parametrize("path", HISTORY_GETS)
def test_with_a_key_set_every_endpoint_wants_it(keyed, path):
    for authorization in (None, "Bearer wrong", "Basic s3cret", "Bearer", "s3cret", "Bearer s3cret2"):
        headers = {"Authorization": authorization} if authorization else {}
        reply = keyed.get(path, headers=headers)
        assert reply.status_code == 401, authorization
        assert reply.headers["WWW-Authenticate"] == "Bearer"
        error = reply.get_json()["error"]
        assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")


@pytest.mark.parametrize("path", HISTORY_GETS)
def test_with_the_key_every_endpoint_answers(keyed, path):
    headers = {"Authorization": "Bearer s3cret"}
    reply = keyed.get(path, headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert reply.status_code in (200, 404)  # 404: the record does not exist, not the route
    assert reply.status_code == 200 or reply.get_json()["error"]["code"].endswith("_not_found")


def test_deletes_want_the_key_too(keyed):
    assert keyed.delete("/v1/sessions").status_code == 401
    assert keyed.delete("/v1/sessions", headers={"Authorization": "bearer s3cret"}).get_json() == {
        "deleted": 0, "cleared": 0,
    }


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_without_a_key_loopback_clients_are_answered(client, address):
    assert client.get("/v1/requests", environ_base={"REMOTE_ADDR": address}).status_code == 200


@pytest.mark.parametrize("path", HISTORY_GETS)
def test_without_a_key_other_clients_are_refused(client, path):
    reply = client.get(path, environ_base={"REMOTE_ADDR": "192.168.1.20"})
    assert reply.status_code == 403
    error = reply.get_json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "loopback_only")
    assert "ADMIN_API_KEY" in error["message"]


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"])
@pytest.mark.parametrize("path", ["/v1/requests", "/v1/providers", "/metrics", "/ui/"])
def test_without_a_key_loopback_names_are_answered(client, path, host):
    assert client.get(path, headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["rebound.example", "rebound.example:8000", "127.0.0.1.rebound.example", "[::1"])
@pytest.mark.parametrize("path", ["/v1/requests", "/v1/providers", "/metrics"])
def test_without_a_key_a_page_of_another_name_is_refused_even_from_this_host(client, path, host):
    """DNS rebinding: a site's name pointed at 127.0.0.1 reaches the gateway from the user's browser."""
    reply = client.get(path, headers={"Host": host}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert reply.status_code == 403
    error = reply.get_json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "loopback_only")
    assert "ADMIN_API_KEY" in error["message"]


def test_without_a_key_the_dashboard_refuses_another_name_too(client):
    reply = client.get("/ui/calls", headers={"Host": "rebound.example:8000"})
    assert reply.status_code == 403
    assert b"ADMIN_API_KEY" in reply.data


def test_with_the_key_any_name_is_answered(keyed):
    headers = {"Host": "gateway.internal.example", "Authorization": "Bearer s3cret"}
    assert keyed.get("/v1/requests", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200


def test_chat_completions_are_not_guarded(keyed, client):
    for app_client in (keyed, client):
        reply = app_client.post("/v1/chat/completions", json=CHAT, environ_base={"REMOTE_ADDR": "10.9.9.9"})
        assert reply.status_code == 200


def test_start_up_says_once_that_only_loopback_is_answered(make_settings, caplog):
    message = "history API open to loopback clients only (ADMIN_API_KEY not set)"
    with caplog.at_level(logging.WARNING, logger="app"):
        create_app(make_settings())
    assert [r.getMessage() for r in caplog.records].count(message) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="app"):
        create_app(make_settings(admin_api_key="k"))
        create_app(make_settings(enable_crud_api=False))
    assert message not in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("path", [*HISTORY_GETS, "/v1/stats/usage?group_by=day"])
def test_enable_crud_api_false_removes_the_endpoints(make_settings, path):
    client = create_app(make_settings(enable_crud_api=False)).test_client()
    reply = client.get(path)
    if path.split("?")[0] == "/v1/responses":  # the path stays for the Responses API's POST
        assert reply.status_code == 405 and "POST" in reply.headers["Allow"]
        assert reply.get_json()["error"]["code"] == "method_not_allowed"
    else:
        assert reply.status_code == 404
        assert reply.get_json()["error"]["code"] == "not_found"
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert "/v1/requests" not in client.get("/openapi.json").get_json()["paths"]


def test_wrong_method_is_405_in_the_openai_shape(client):
    reply = client.post("/v1/requests")
    assert reply.status_code == 405
    assert reply.get_json()["error"]["code"] == "method_not_allowed"
    assert set(reply.headers["Allow"].split(", ")) >= {"GET"}
    assert client.put("/v1/sessions/x").get_json()["error"]["type"] == "invalid_request_error"


def test_a_body_too_large_is_413_in_the_openai_shape(client):
    reply = client.get("/v1/requests", data=b"x" * 70_000)
    assert reply.status_code == 413
    assert reply.get_json()["error"] == {
        "message": reply.get_json()["error"]["message"], "type": "invalid_request_error", "param": None,
        "code": "request_too_large",
    }


def test_unknown_paths_are_404_in_the_openai_shape(client):
    reply = client.get("/v1/requests/1/nothing")
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (404, "not_found")
