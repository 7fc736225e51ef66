"""Backends run tasks inside an executor process; this module is their contract and registry.

A backend is created once per executor and lives as long as it does, so whatever it loads (a model
on a GPU) serves every task that executor runs. Backends are imported only when an executor
creates them: an optional backend may need packages that a worker not using it lacks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

TASK_TYPES = ("llm", "sd", "tts", "image_to_text")


class TaskContext(Protocol):
    """What a running task may tell the worker, and ask it."""

    def progress(self, progress: float, message: str | None = None) -> None:
        """Reports progress between 0 and 1, with an optional message ("step 15/30")."""

    def chunk(self, text: str) -> None:
        """Emits one piece of streamed output; pieces reach the client in order, none lost."""

    def stopped(self) -> bool:
        """True once the worker asked the task to stop; the backend should then raise TaskStopped."""


class Backend(Protocol):
    """Runs tasks of some types. It holds at most one model at a time."""

    def load(self, model: str | None) -> None:
        """Loads a model (None: the backend's default); called before a task needs a different one."""

    def run(self, task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        """Runs one task (the lease's task object) and returns its JSON output."""

    def unload(self) -> None:
        """Frees the loaded model."""


class TaskError(Exception):
    """A task failed in a way the backend understands; reported with `code` and `retryable`."""

    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class InvalidInput(TaskError):
    """The task's input or metadata cannot be run; retrying would not help."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_input", message, retryable=False)


class TaskStopped(Exception):
    """Raised by a backend that noticed ctx.stopped(); the worker reports why it asked."""


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str
    class_name: str
    types: tuple[str, ...]


# The served types are listed here rather than read from the class, so that configuring a worker
# never imports a backend (and its dependencies) in the worker process itself.
REGISTRY: dict[str, BackendInfo] = {
    "sim": BackendInfo("sim", "taskmanager_worker.backends.sim", "SimBackend", TASK_TYPES),
}


def create(name: str) -> Backend:
    """Imports and instantiates the backend registered as `name`."""
    info = REGISTRY[name]
    return getattr(importlib.import_module(info.module), info.class_name)()
