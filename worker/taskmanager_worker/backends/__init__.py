"""Backends run tasks inside an executor process; this module is their contract and registry.

A backend is created once per executor and lives as long as it does, so whatever it loads (a model
on a GPU) serves every task that executor runs. Backends are imported only when an executor
creates them: an optional backend may need packages that a worker not using it lacks.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

TASK_TYPES = ("llm", "sd", "tts", "image_to_text")


class TaskContext(Protocol):
    """What a running task may tell the worker, and ask it."""

    def progress(self, progress: float, message: str | None = None) -> None:
        """Reports progress between 0 and 1, with an optional message ("step 15/30")."""

    def chunk(self, text: str) -> None:
        """Emits one piece of streamed output; pieces reach the client in order, none lost."""

    def log(self, line: str) -> None:
        """Emits a human-readable line about the run ("loading model x", "step 3: ..."); lines
        reach the task's event stream in order, none lost. Text with several lines becomes several."""

    def stopped(self) -> bool:
        """True once the worker asked the task to stop; the backend should then raise TaskStopped."""


class Backend(Protocol):
    """Runs tasks of some types. It holds at most one model at a time."""

    def load(self, model: str | None) -> None:
        """Loads a model (None: the backend's default); called before a task needs a different one."""

    def run(self, task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        """Runs one task (the lease's task object) and returns its JSON output, in which binary
        outputs are Artifact objects: the worker uploads each and puts its URL in its place."""

    def unload(self) -> None:
        """Frees the loaded model."""


# The protocol's rule for an artifact's name; the content type is checked only loosely.
_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_CONTENT_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;.*)?")
ARTIFACT_FIELDS = ("url", "content_type", "bytes")  # what the worker puts in an artifact's place


@dataclass(frozen=True)
class Artifact:
    """A binary output (an image, audio) inside a backend's output, anywhere a JSON value may be.

    The worker uploads `data` as `name` with `content_type` and puts in its place
    `{"url": ..., "content_type": ..., "bytes": ..., **meta}`; `meta` holds what describes the
    file (`width`, `seed`, ...). Names must be unique within a task's output.
    """

    name: str
    content_type: str
    data: bytes
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ARTIFACT_NAME.fullmatch(self.name):
            raise ValueError(f"artifact name {self.name!r}: 1 to 100 of A-Z a-z 0-9 . _ -, not starting with a dot")
        if not isinstance(self.content_type, str) or not _CONTENT_TYPE.fullmatch(self.content_type):
            raise ValueError(f"artifact {self.name}: {self.content_type!r} is not a content type")
        if isinstance(self.data, (bytearray, memoryview)):
            object.__setattr__(self, "data", bytes(self.data))
        if not isinstance(self.data, bytes):
            raise TypeError(f"artifact {self.name}: data must be bytes, not {type(self.data).__name__}")
        if not isinstance(self.meta, Mapping) or not all(isinstance(key, str) for key in self.meta):
            raise TypeError(f"artifact {self.name}: meta must be a mapping with string keys")
        reserved = sorted(set(self.meta) & set(ARTIFACT_FIELDS))
        if reserved:
            raise ValueError(f"artifact {self.name}: meta must not set {reserved}; the worker fills them in")
        object.__setattr__(self, "meta", dict(self.meta))

    def __repr__(self) -> str:  # not the bytes: a repr may end up in a log line
        return f"Artifact({self.name!r}, {self.content_type!r}, <{len(self.data)} bytes>, meta={self.meta!r})"


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
