"""Where the gateway's log lines go, and LOG_FORMAT=json: one JSON object per line, one line per call."""

from __future__ import annotations

import json
import logging
import time

from app.config import Settings

# LogRecord attributes that are not a caller's ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A line of JSON per record: time, level, logger, pid, message, the fields it carries (``extra``).

    The call line (logger ``app.calls``) carries its facts under ``call``; no record here holds a
    request or answer body, and secrets never reach a log record.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Route the gateway's loggers to stderr at the configured level, as text or as JSON lines."""
    if settings.log_format == "json":
        root = logging.getLogger()
        if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(JsonFormatter())
            root.handlers = [handler]
        root.setLevel(settings.log_level)
        # gunicorn's own lines in a worker, too (its master formats them in gunicorn.conf.py).
        for handler in logging.getLogger("gunicorn.error").handlers:
            handler.setFormatter(JsonFormatter())
    else:
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        )
    logging.getLogger("app").setLevel(settings.log_level)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
