"""Off means off: without an OTLP endpoint nothing of OpenTelemetry is imported; METRICS=false, no prometheus_client."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.config import PROJECT_ROOT, Settings

A_CALL = """
import json, sys, tempfile
from app import create_app
from app.config import Settings
directory = tempfile.mkdtemp()
env = {"DATABASE_PATH": directory + "/g.db", "AUDIT_JOURNAL_DIR": directory + "/j", "DEFAULT_PROVIDER": "mock",
       "SEARCH_INDEXER": "false", "LOG_LEVEL": "ERROR", **json.loads(sys.argv[1])}
app = create_app(Settings.from_env(env))
traceparent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
reply = app.test_client().post("/v1/chat/completions", headers={"traceparent": traceparent},
                               json={"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]})
assert reply.status_code == 200, reply.get_json()
app.extensions["gateway"].stop_background()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def imported_after_a_call(**env: str) -> set[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PROMETHEUS_"))}
    result = subprocess.run([sys.executable, "-c", A_CALL, json.dumps(env)], cwd=PROJECT_ROOT, env=environ,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_without_an_otlp_endpoint_opentelemetry_is_never_imported_and_with_one_it_is():
    assert "opentelemetry" not in imported_after_a_call()
    assert "opentelemetry" in imported_after_a_call(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")


def test_metrics_off_never_imports_prometheus_client():
    assert "prometheus_client" not in imported_after_a_call(METRICS="false")
    assert "prometheus_client" in imported_after_a_call()


@pytest.mark.parametrize(("env", "tracing"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
])
def test_tracing_is_on_once_an_otlp_endpoint_is_set(env, tracing):
    assert Settings.from_env({"DATABASE_PATH": "x.db", **env}).tracing is tracing
