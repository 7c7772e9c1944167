"""Logging set-up: JSON lines (default) or plain text, each with the request id and, inside a
turn's task, its session and turn ids."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

from app.api.middleware import request_id_var

# Set by the task that runs a turn; every log line from it (and its children) carries it.
turn_log_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "turn_log_context", default=()
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]%(turn_ids)s %(message)s"
_CONFIGURED = "_paseo_gateway_logging"


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        ids = turn_log_context.get()
        for key, value in ids:
            setattr(record, key, value)
        # For the text format: ` session=… turn=…` inside a turn, nothing elsewhere.
        record.turn_ids = "".join(f" {key.removesuffix('_id')}={value}" for key, value in ids)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key in ("session_id", "turn_id"):
            if value := getattr(record, key, None):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    """Once per process (uvicorn workers each call it): one handler on the root logger."""
    root = logging.getLogger()
    if getattr(root, _CONFIGURED, False):
        return
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn's own loggers go through the root handler too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # Alembic narrates every plugin and step at INFO; keep its warnings only.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    setattr(root, _CONFIGURED, True)
