"""The OpenAPI document and the docs page come from the schemas that validate."""

from __future__ import annotations


def _operations(spec: dict, *, model_calls: bool) -> set[tuple[str, str]]:
    return {
        (path, method) for path, item in spec["paths"].items() for method, operation in item.items()
        if method != "parameters" and ("model calls" in operation.get("tags", ())) == model_calls
    }


def test_openapi_documents_every_history_operation(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert _operations(spec, model_calls=False) == {
        ("/v1/sessions", "get"), ("/v1/sessions", "delete"), ("/v1/sessions/{session_id}", "get"),
        ("/v1/sessions/{session_id}", "delete"), ("/v1/sessions/{session_id}/requests", "get"),
        ("/v1/sessions/{session_id}/stats", "get"), ("/v1/requests", "get"), ("/v1/requests/{id}", "get"),
        ("/v1/requests/{id}", "delete"), ("/v1/requests/{id}/response", "get"), ("/v1/responses", "get"),
        ("/v1/responses/{id}", "get"), ("/v1/responses/stats", "get"), ("/v1/stats/usage", "get"),
    }


def test_openapi_documents_the_model_calls_beside_the_history_paths_they_meet(client):
    spec = client.get("/openapi.json").get_json()
    assert _operations(spec, model_calls=True) == {
        ("/v1/chat/completions", "post"), ("/v1/embeddings", "post"), ("/v1/completions", "post"),
        ("/v1/responses", "post"), ("/v1/responses/{response_id}", "get"),
        ("/v1/responses/{response_id}", "delete"), ("/v1/responses/{response_id}/input_items", "get"),
    }
    create = spec["paths"]["/v1/responses"]["post"]
    assert "security" not in create  # open to model callers, not behind the admin key
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "input" in spec["components"]["schemas"][body]["required"]
    assert {"400", "502", "504"} <= set(create["responses"])
    (response_id,) = spec["paths"]["/v1/responses/{response_id}"]["parameters"]
    assert response_id["schema"]["pattern"].startswith("^resp_")


def test_parameters_carry_the_validation_rules(client):
    spec = client.get("/openapi.json").get_json()
    params = {p["name"]: p for p in spec["paths"]["/v1/requests"]["get"]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 1000}
    assert params["status"]["schema"]["enum"] == ["ok", "error", "incomplete", "interrupted"]
    assert "pattern" in params["start_date"]["schema"]
    usage = {p["name"]: p for p in spec["paths"]["/v1/stats/usage"]["get"]["parameters"]}
    assert usage["group_by"]["schema"]["enum"] == ["model", "provider", "session", "endpoint", "day", "hour"]


def test_errors_are_documented_in_the_openai_shape(client):
    spec = client.get("/openapi.json").get_json()
    responses = spec["paths"]["/v1/requests/{id}"]["get"]["responses"]
    assert {"200", "400", "401", "403", "404"} <= set(responses)
    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    assert spec["components"]["securitySchemes"]["adminKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "ADMIN_API_KEY. Without one set, only loopback clients are answered.",
    }


def test_docs_page_loads_the_document(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.get_data(as_text=True)
