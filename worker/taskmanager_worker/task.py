"""A leased task: a task object of a lease answer (or of a complete call's answer), read once.

The API hands tasks over as `LeasedTaskDto` (TaskManager.Api/Endpoints/WorkerContracts.cs;
docs/worker-protocol.md, Lease). They are read here and nowhere else, into typed fields. What the
worker learns about a task afterwards (when it received it, when it ran) belongs to the slot that
runs it, never to the task.

`payload` is the task object exactly as the API sent it, and is what the executor hands its
backend: `Backend.run(task, ctx)` takes the protocol's task object, so it goes on as it came, with
no copy and no field the worker reads differently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 300.0  # when a task names no usable timeout_seconds


@dataclass(slots=True)
class LeasedTask:
    task_id: str
    lease_token: str
    type: str | None
    model: str | None
    input: Any  # the task's input as sent (a JSON object; backends check it)
    metadata: dict[str, Any] | None
    attempt: int | None
    max_attempts: int | None
    timeout_seconds: float  # counted from when the worker received the task
    deadline_at: datetime | None  # the API's deadline for the attempt (the worker keeps its own, above)
    traceparent: str | None
    payload: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> LeasedTask | None:
        """The task that a task object of an answer describes; None when it cannot be run and
        reported (no task_id or lease_token). A field that is absent, null or of another type reads
        as None (timeout_seconds: DEFAULT_TIMEOUT_SECONDS, unless a positive number)."""
        if not isinstance(value, dict):
            return None
        get = value.get
        task_id, lease_token = get("task_id"), get("lease_token")
        if not isinstance(task_id, str) or not isinstance(lease_token, str):
            return None
        type_, model, metadata, attempt, max_attempts, timeout, traceparent = (
            get("type"), get("model"), get("metadata"), get("attempt"), get("max_attempts"), get("timeout_seconds"),
            get("traceparent"))
        deadline = get("deadline_at")
        try:
            deadline = datetime.fromisoformat(deadline) if isinstance(deadline, str) else None
        except ValueError:
            deadline = None
        # Positional, and the checks written out: this runs for every task the worker gets.
        return cls(
            task_id, lease_token,
            type_ if isinstance(type_, str) else None,
            model if isinstance(model, str) else None,
            get("input"),
            metadata if isinstance(metadata, dict) else None,
            attempt if type(attempt) is int else None,
            max_attempts if type(max_attempts) is int else None,
            float(timeout) if type(timeout) in (int, float) and timeout > 0 else DEFAULT_TIMEOUT_SECONDS,
            deadline,
            traceparent if isinstance(traceparent, str) else None,
            value,
        )

    @property
    def log_fields(self) -> dict[str, Any]:
        """The `extra` that ties a log line to this attempt."""
        return {"task_id": self.task_id, "attempt": self.attempt}


def leased_tasks(value: Any) -> list[LeasedTask]:
    """The tasks of an answer's `tasks` list. One without its id and lease token can be neither
    run nor reported: it is logged and left out, and its lease expires on the API's side, which
    queues it again."""
    tasks = []
    for item in value if isinstance(value, list) else []:
        task = LeasedTask.from_json(item)
        if task is not None:
            tasks.append(task)
        else:
            log.error("the lease answer holds a malformed task; ignoring it", extra={"task": repr(item)[:500]})
    return tasks
