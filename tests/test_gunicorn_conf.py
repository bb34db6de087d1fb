"""gunicorn.conf.py's process settings, checked in a fresh interpreter as a worker would see them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from app.config import PROJECT_ROOT

WORKER_VIEW = """
import json, runpy, socket
runpy.run_path("gunicorn.conf.py")
from gevent import monkey
monkey.patch_all()
import gevent
resolver = gevent.get_hub().resolver
lookups = {
    host: sorted({info[4][0] for info in socket.getaddrinfo(host, 1234, 0, socket.SOCK_STREAM)})
    for host in ("127.0.0.1", "localhost")
}
print(json.dumps({"resolver": type(resolver).__module__, "lookups": lookups}))
"""


def worker_view(**env: str) -> dict:
    environ = {key: value for key, value in os.environ.items() if key != "GEVENT_RESOLVER"}
    result = subprocess.run(
        [sys.executable, "-c", WORKER_VIEW], cwd=PROJECT_ROOT, env={**environ, **env},
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_workers_resolve_upstream_names_with_c_ares_and_answer_literals_and_localhost():
    view = worker_view()
    assert view["resolver"] == "gevent.resolver.ares"
    assert view["lookups"]["127.0.0.1"] == ["127.0.0.1"]
    assert "127.0.0.1" in view["lookups"]["localhost"]  # LM Studio's default base URL


def test_an_operator_can_choose_another_resolver():
    assert worker_view(GEVENT_RESOLVER="thread")["resolver"] == "gevent.resolver.thread"


def test_the_master_drops_a_dead_workers_live_gauges_as_prometheus_client_would(tmp_path, monkeypatch):
    """gunicorn.conf.py's mark_process_dead matches prometheus_client's (which the master must not import)."""
    import runpy

    from prometheus_client.multiprocess import _LIVE_GAUGE_MULTIPROCESS_MODES

    monkeypatch.setattr(os, "environ", dict(os.environ))  # the settings it sets stay out of this process
    conf = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    assert set(conf["_LIVE_GAUGE_MODES"]) == set(_LIVE_GAUGE_MULTIPROCESS_MODES)
    kept = ["counter_41.db", "histogram_41.db", "gauge_max_41.db", "gauge_livesum_42.db"]
    for name in [*kept, "gauge_livesum_41.db", "gauge_livemax_41.db", "gauge_liveall_41.db"]:
        (tmp_path / name).write_bytes(b"")
    conf["mark_process_dead"](41, str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)
