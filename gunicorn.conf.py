"""gunicorn settings for provider-router: ``gunicorn wsgi:app``.

gevent workers: LLM streams last seconds to minutes, and a gevent worker holds
thousands of them open with the same synchronous code (sync or gthread workers
hold only workers x threads).
"""

import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

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

# Prometheus multiprocess mode: every worker writes its series to files here, /metrics sums them.
# One directory per instance, emptied when the master starts (METRICS=false: none).
_METRICS_ON = os.environ.get("METRICS", "true").strip().lower() not in ("0", "false", "no", "off", "")
_OWN_METRICS_DIR = _METRICS_ON and not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(
        tempfile.gettempdir(), f"provider-router-metrics-{os.environ.get('HOST', '127.0.0.1')}-"
        f"{os.environ.get('PORT', '8000')}"
    )
# prometheus_client's file names for gauges that follow live processes (multiprocess.mark_process_dead).
_LIVE_GAUGE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")


class _JsonLogFormatter(logging.Formatter):
    """LOG_FORMAT=json for the master's own lines (the workers format theirs in app/logs.py)."""

    def format(self, record):
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "pid": record.process,
                "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": _JsonLogFormatter}},
        "handlers": {"error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
                     "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "loggers": {"gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
                    # Access lines only when ACCESS_LOG asks for them (the app writes one line per call).
                    "gunicorn.access": {"level": "INFO" if accesslog else "CRITICAL", "handlers": ["console"],
                                        "propagate": False}},
    }


_checkpointer = None


def on_starting(server):
    """Check settings and schema once, before any worker forks.

    Run in a child process so the master imports nothing that gevent must patch.
    """
    env = {**os.environ, "WEB_CONCURRENCY": str(server.cfg.workers)}  # for its connection budget line
    check = subprocess.run([sys.executable, "-m", "app", "check"], check=False, env=env)
    if check.returncode != 0:
        sys.exit(check.returncode)
    if _METRICS_ON:
        _empty_metrics_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def _empty_metrics_dir(directory):
    """A fresh start: the files of an earlier run would be summed into this one's series."""
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)


def mark_process_dead(pid, directory=None):
    """prometheus_client.multiprocess.mark_process_dead, without importing prometheus_client in the master.

    Every worker forks from the master: a prometheus_client imported here would hand each
    later worker a copy made before gevent patched its locks.
    """
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    for mode in _LIVE_GAUGE_MODES:
        for path in glob.glob(os.path.join(directory, f"gauge_{mode}_{pid}.db")):
            os.remove(path)


def child_exit(server, worker):
    """A worker is gone (recycled, killed): its in-flight and open-stream gauges leave /metrics; its counts stay."""
    if _METRICS_ON:
        mark_process_dead(worker.pid)


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
    _json_error_pages()
    threading.Thread(target=_end_streams_at_shutdown, args=(worker,), name="stream-ender", daemon=True).start()
    gc.freeze()


def _json_error_pages():
    """What gunicorn answers itself (a request line or headers over its limits, a malformed request)
    comes as an OpenAI-style JSON error, like every answer of the gateway, not gunicorn's HTML page."""
    from gunicorn import util

    def write_error(sock, status_int, reason, mesg):
        code = reason.lower().replace(" ", "_").replace("-", "_")
        body = json.dumps({"error": {
            "message": f"{reason}: {mesg}"[:500], "type": "invalid_request_error" if status_int < 500 else "api_error",
            "param": None, "code": code,
        }}).encode()
        head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin1")
        util.write_nonblock(sock, head + body)

    util.write_error = write_error


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
    if _OWN_METRICS_DIR:  # this instance's series end with it (a directory the operator set is left as it is)
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
