"""``list``, ``test``, ``providers add|update|remove|enable|disable``: the same checks as the REST API."""

from __future__ import annotations

import json

import responses

from app.db import get_engine
from app.services.admin.providers import get_provider, list_providers
from tests.cli.conftest import failed


def names(database_url):
    return [p["name"] for p in list_providers(get_engine(database_url), default_provider="lm-studio")]


def test_list_shows_each_provider_and_marks_the_active_one(run):
    result = run("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "type", "base", "URL", "enabled", "default", "model"]
    assert lines[1].split()[:5] == ["*", "lm-studio", "lm-studio", "http://localhost:1234/v1", "yes"]
    assert lines[2].split()[:4] == ["mock", "mock", "mock://local", "yes"]
    assert run("ls").stdout == result.stdout


def test_list_json(run):
    data = json.loads(run("ls", "--json").stdout)
    assert [(p["name"], p["active"]) for p in data] == [("lm-studio", True), ("mock", False)]


def test_add_update_disable_enable_remove(run, database_url):
    engine = get_engine(database_url)
    added = run("providers", "add", "openai", "--type", "openai-compatible", "--base-url", "https://api.example.com/v1",
                "--api-key-env", "EXAMPLE_KEY", "--default-model", "gpt-4o-mini")
    assert (added.exit_code, added.stdout) == (
        0, "Added provider openai (openai-compatible, https://api.example.com/v1).\n")
    assert get_provider(engine, name="openai", default_provider="lm-studio")["default_model"] == "gpt-4o-mini"

    assert run("providers", "update", "openai", "--timeout-ms", "5000").exit_code == 0
    assert get_provider(engine, name="openai", default_provider="lm-studio")["timeout_ms"] == 5000

    assert run("providers", "disable", "openai").stdout == "Disabled provider openai.\n"
    assert get_provider(engine, name="openai", default_provider="lm-studio")["enabled"] is False
    assert json.loads(run("providers", "enable", "openai", "--json").stdout)["enabled"] is True

    assert run("providers", "remove", "openai").stdout == "Removed provider openai.\n"
    assert names(database_url) == ["lm-studio", "mock"]


def test_add_checks_like_the_rest_api(run, database_url):
    assert failed(run("providers", "add", "x", "--type", "openai-compatible"), "Invalid 'base_url'")
    assert failed(run("providers", "add", "x", "--type", "nope", "--base-url", "http://h"), "Invalid 'type'")
    assert failed(
        run("providers", "add", "x y", "--type", "openai-compatible", "--base-url", "http://h"), "Invalid 'name'"
    )
    assert failed(
        run("providers", "add", "x", "--type", "openai-compatible", "--base-url", "http://user:pw@h/v1"), "credentials"
    )
    assert failed(run("providers", "add", "mock", "--type", "mock"), "already exists")
    assert failed(run("providers", "add", "x", "--type", "mock", "--option", "bad"), "KEY=VALUE")
    assert names(database_url) == ["lm-studio", "mock"]


def test_changing_unknown_or_active_providers_fails(run):
    assert failed(run("providers", "update", "nowhere", "--timeout-ms", "5"), "'nowhere' does not exist")
    assert failed(run("providers", "update", "mock"), "nothing to change")
    assert failed(run("providers", "disable", "lm-studio"), "is the active provider")
    assert failed(run("providers", "remove", "lm-studio"), "is the active provider")
    assert failed(run("providers", "remove", "nowhere"), "does not exist")


def test_set_prints_the_switch_and_list_follows(run):
    result = run("set", "mock")
    assert result.exit_code == 0
    assert json.loads(run("ls", "--json").stdout)[1]["active"] is True


@responses.activate
def test_test_reports_latency_and_model_and_exits_0(run):
    responses.get("http://localhost:1234/v1/models", json={"object": "list", "data": [{"id": "qwen-7b"}]})
    result = run("test")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("lm-studio: ok in ")
    assert "model qwen-7b (1 listed)" in result.stdout
    data = json.loads(run("test", "lm-studio", "--json").stdout)
    assert (data["ok"], data["model"], data["models"]) == (True, "qwen-7b", ["qwen-7b"])


@responses.activate
def test_a_failing_provider_exits_1(run):
    responses.get("http://localhost:1234/v1/models", status=500, json={"error": {"message": "down"}})
    result = run("test", "lm-studio")
    assert result.exit_code == 1
    assert result.stderr.startswith("lm-studio: FAILED after ")
    assert "Traceback" not in result.output


def test_test_an_unknown_provider_lists_the_known_ones(run):
    assert failed(run("test", "nowhere"), "Known providers: lm-studio, mock.")


def test_the_mock_provider_answers(run):
    result = run("test", "mock")
    assert result.exit_code == 0 and "model mock-chat" in result.stdout
