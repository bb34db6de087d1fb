"""gunicorn settings for provider-router: ``gunicorn wsgi:app``.

gevent workers: LLM streams last seconds to minutes, and a gevent worker holds
thousands of them open with the same synchronous code (sync or gthread workers
hold only workers x threads).
"""

import os
import subprocess
import sys

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "4096"))
backlog = 4096
keepalive = 5
timeout = 60
graceful_timeout = 30
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def on_starting(server):
    """Check settings and schema once, before any worker forks.

    Run in a child process so the master imports nothing that gevent must patch.
    """
    check = subprocess.run([sys.executable, "-m", "app", "check"], check=False)
    if check.returncode != 0:
        sys.exit(check.returncode)
