"""Structured logging: one JSON object per line on stderr.

Each line has `ts`, `level`, `pid`, `logger` and `msg`, plus whatever the call passed in `extra`
(`task_id`, `attempt`, `worker_id`, ...), so that a log shipper can index it without parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "pid": record.process,  # tells the worker's lines from its executors' 
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def setup(level: str = "info") -> None:
    """Routes every logger of the process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def task_fields(task: dict[str, Any]) -> dict[str, Any]:
    """The `extra` that ties a log line to a task attempt, from the task object (in the executor;
    the worker has LeasedTask.log_fields)."""
    return {"task_id": task.get("task_id"), "attempt": task.get("attempt")}
