"""Pieces of the dashboard that need no database: curl without secrets, word diffs, formatting."""

from __future__ import annotations

import json
import shlex

import pytest

from app.api.ui.call import curl_command
from app.api.ui.format import change, duration
from app.services.history.diff import Piece, words_diff


def test_curl_replays_the_body_through_the_gateway_without_credentials():
    body = {"model": "m", "api_key": "sk-secret", "x-auth-token": "t",
            "messages": [{"role": "user", "content": "it's $HOME"}]}
    command = curl_command(body, "http://127.0.0.1:8000/", "/v1/chat/completions")
    first, here_doc, end = command.split("\n")
    assert shlex.split(first)[:3] == ["curl", "-sS", "http://127.0.0.1:8000/v1/chat/completions"]
    assert first.endswith("<<'JSON'") and end == "JSON"  # quoted: the shell expands nothing in the body
    assert "sk-secret" not in command and "x-auth-token" not in command
    assert "it's $HOME" in here_doc


def test_curl_keeps_every_parameter_and_drops_only_credentials_at_any_depth():
    body = {
        "model": "m", "prompt": "hi", "max_tokens": 5, "max_completion_tokens": 6, "prompt_cache_key": "pck",
        "API_Key": "sk-top", "Authorization": "Bearer sk-auth",
        "metadata": {"team": "ops", "token": "sk-meta", "client_secret": "sk-client", "Password": "pw"},
        "tools": [{"type": "function", "function": {"name": "login", "parameters": {
            "type": "object", "properties": {"password": {"type": "string"}}}}}],
    }
    command = curl_command(body, "http://gw:8000/", "/v1/completions")
    first, here_doc, _ = command.split("\n")
    assert shlex.split(first) == [
        "curl", "-sS", "http://gw:8000/v1/completions", "-H", "Content-Type: application/json",
        "-H", "Authorization: Bearer $OPENAI_API_KEY", "--data-binary", "@-", "<<JSON"]
    assert '"Authorization: Bearer $OPENAI_API_KEY"' in first  # the shell fills in the key, never the page
    assert json.loads(here_doc) == {
        "model": "m", "prompt": "hi", "max_tokens": 5, "max_completion_tokens": 6, "prompt_cache_key": "pck",
        "metadata": {"team": "ops"},
        "tools": body["tools"],  # a schema's property named password is a name, not a credential
    }


@pytest.mark.parametrize("name", [
    "api_token", "x-api-token", "hf_token", "secret_key", "aws_secret_access_key", "Proxy-Authorization",
    "credentials", "Ocp-Apim-Subscription-Key", "apiKey", "x-api-key", "key", "bearer", "github_pat_password",
])
def test_curl_drops_credentials_by_any_usual_name(name):
    body = {"model": "m", "extra_headers": {name: "sk-leak"}, "metadata": {"properties": {name: "sk-leak"}}}
    assert "sk-leak" not in curl_command(body, "http://gw:8000/", "/v1/responses")


@pytest.mark.parametrize("name", [
    "max_tokens", "max_completion_tokens", "max_output_tokens", "prompt_cache_key", "top_logprobs", "logit_bias",
    "service_tier", "store", "reasoning_effort", "safety_identifier", "user",
])
def test_curl_keeps_openai_parameters_whose_names_look_alike(name):
    assert f'"{name}":1' in curl_command({"model": "m", name: 1}, "http://gw:8000/", "/v1/chat/completions")


def test_words_diff_marks_only_what_changed():
    ours, theirs = words_diff("the invoice is late", "the bill is late")
    assert ours == [Piece("the ", "same"), Piece("invoice", "gone"), Piece(" is late", "same")]
    assert theirs == [Piece("the ", "same"), Piece("bill", "new"), Piece(" is late", "same")]
    assert words_diff("same", "same") == ([Piece("same", "same")], [Piece("same", "same")])


def test_durations_and_changes_read_well():
    assert [duration(v) for v in (None, 12, 9_999, 12_345, 1_800_000, 9_000_000)] == [
        "-", "12 ms", "9,999 ms", "12.3 s", "30 min", "2.5 h"]
    assert [change(*pair) for pair in ((110, 100), (90, 100), (5, 0), (0, 0), (None, 3))] == [
        "+10 %", "-10 %", "new", "±0 %", "-"]
