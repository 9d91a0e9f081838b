"""Logging set-up: plain text, or one JSON object per line for log collectors, each
record carrying the session and participant it concerns where there is one.

:data:`CONTEXT` holds ``{"session_id", "participant_id"}`` for the task at hand: the
signalling handler sets it once a participant is admitted, and tasks started from there
inherit it (asyncio copies the context). :class:`ContextFilter` puts it on every record;
``extra={"session_id": …}`` on a call does the same for one record.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["CONTEXT", "ContextFilter", "JsonFormatter", "bind", "configure"]

CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "hoidong_log_context", default=None)
_FIELDS = ("session_id", "participant_id", "connection_id")


def bind(**ids: str | None) -> None:
    """Add ids (``session_id=…``) to this task's log context (and its children's)."""
    CONTEXT.set({**(CONTEXT.get() or {}), **{k: v for k, v in ids.items() if v}})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (CONTEXT.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the ids
    of the context, and the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Log to standard error at ``level`` as ``text`` or ``json``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
