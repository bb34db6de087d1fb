"""gunicorn settings for provider-router: ``gunicorn wsgi:app``.

gevent workers: LLM streams last seconds to minutes, and a gevent worker holds
thousands of them open with the same synchronous code (sync or gthread workers
hold only workers x threads).
"""

import os
import subprocess
import sys
import tempfile

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# One control socket per instance (gunicorn's default, ~/.gunicorn/gunicorn.ctl, is shared by every
# instance of a user on the host: a second one would silently take it over from the first).
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or os.path.join(
    tempfile.gettempdir(), f"provider-router-{os.environ.get('HOST', '127.0.0.1')}-{os.environ.get('PORT', '8000')}.ctl"
)
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "4096"))
backlog = 4096
keepalive = 5
timeout = 60
# On SIGTERM or a recycle, streams get this long to finish; those still running are then ended
# (an error event and [DONE] to the client, recorded incomplete with their partial content).
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
STREAM_END_MARGIN_S = 2.0
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Name lookups for upstream connections: gevent's default resolver hands every lookup, even of
# "127.0.0.1", to a small pool of OS threads that contend for the GIL with the worker. The c-ares
# resolver answers IP literals and localhost at once and other names without threads. A burst of
# 1,000 streams opens ~1,000 upstream connections: TTFB p50 ~480 -> ~390 ms measured here.
os.environ.setdefault("GEVENT_RESOLVER", "ares")


_checkpointer = None


def on_starting(server):
    """Check settings and schema once, before any worker forks.

    Run in a child process so the master imports nothing that gevent must patch.
    """
    env = {**os.environ, "WEB_CONCURRENCY": str(server.cfg.workers)}  # for its connection budget line
    check = subprocess.run([sys.executable, "-m", "app", "check"], check=False, env=env)
    if check.returncode != 0:
        sys.exit(check.returncode)


def when_ready(server):
    """Start the SQLite checkpointer beside the workers (it exits by itself for PostgreSQL)."""
    global _checkpointer
    os.environ["PROVIDER_ROUTER_EXTERNAL_CHECKPOINTS"] = "1"  # inherited by the workers
    _checkpointer = subprocess.Popen([sys.executable, "-m", "app", "checkpointer", str(os.getpid())])


def post_worker_init(worker):
    """Start the worker's background loop, and keep the loaded app out of the GC's full passes.

    A worker holds a few hundred thousand objects from its imports (Flask, SQLAlchemy,
    gevent, marshmallow); every full collection walked all of them while every stream
    of the worker waited. Measured here: ~37 us of GC per chat call with persistence on.
    """
    import gc
    import threading

    worker.wsgi.extensions["gateway"].start_background()
    threading.Thread(target=_end_streams_at_shutdown, args=(worker,), name="stream-ender", daemon=True).start()
    gc.freeze()


def _end_streams_at_shutdown(worker):
    """Once the worker stops (SIGTERM, max_requests), end the streams still open before gunicorn kills them."""
    import time

    from app.services.proxy.live_streams import live_streams

    while worker.alive:
        time.sleep(0.25)
    deadline = time.monotonic() + max(0.0, worker.cfg.graceful_timeout - STREAM_END_MARGIN_S)
    while live_streams and time.monotonic() < deadline:
        time.sleep(0.1)
    ended = live_streams.end_all("The gateway is shutting down; this stream was ended before it finished.")
    if ended:
        worker.log.warning("ended %d streams still open at shutdown (recorded as incomplete)", ended)


def worker_exit(server, worker):
    """Write every queued audit row (to the journal if need be) before the worker goes away."""
    from app.services.audit.group_commit import stop_all

    app = getattr(worker, "wsgi", None)
    if app is not None:
        app.extensions["gateway"].stop_background()
    stop_all()


def on_exit(server):
    if _checkpointer is not None and _checkpointer.poll() is None:
        _checkpointer.terminate()
