"""Backends run tasks inside an executor process; this module is their contract and registry.

A backend is created once per executor and lives as long as it does, so whatever it loads (a model
on a GPU) serves every task that executor runs. Backends are imported only when an executor
creates them: an optional backend may need packages that a worker not using it lacks.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
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

    # Optional: a backend that holds real models says which one in a `loaded_model` attribute
    # (str | None). The executor tells the worker after each load or unload, and the worker declares
    # it in its heartbeats (and a new registration) beside TASKMANAGER_MODELS. sim says nothing.


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


def task_input(task: dict[str, Any]) -> dict[str, Any]:
    """The task's input object (empty when absent); raises InvalidInput when it is not an object."""
    value = task.get("input") or {}
    if not isinstance(value, dict):
        raise InvalidInput("input must be an object")
    return value


def input_string(values: dict[str, Any], key: str, default: str) -> str:
    """`input.<key>` as a string, `default` when absent; raises InvalidInput."""
    value = values.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"input.{key} must be a string")
    return value


def input_integer(values: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    """`input.<key>` as an integer from `low` to `high`, `default` when absent; raises InvalidInput."""
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"input.{key} must be an integer from {low} to {high}")
    return value


def input_number(values: dict[str, Any], key: str, default: float | None, low: float, high: float) -> float | None:
    """`input.<key>` as a number from `low` to `high`, `default` when absent; raises InvalidInput."""
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidInput(f"input.{key} must be a number from {low:g} to {high:g}")
    return float(value)


class TaskStopped(Exception):
    """Raised by a backend that noticed ctx.stopped(); the worker reports why it asked."""


Requirement = Callable[[], "str | None"]  # says what is missing on this machine, or None


def program(name: str, install: str) -> Requirement:
    """A program that must be on PATH; `install` says how to get it."""

    def check() -> str | None:
        if shutil.which(name) is None:
            return f"the program {name!r} is not on PATH ({install})"
        return None

    return check


def python_module(name: str, install: str) -> Requirement:
    """A Python module that must be importable. Found, not imported: importing torch takes seconds."""

    def check() -> str | None:
        try:
            found = importlib.util.find_spec(name) is not None
            problem = f"No module named {name!r}"
        except (ImportError, ValueError) as error:  # a parent package that fails to import, a bad __spec__
            found, problem = False, f"{type(error).__name__}: {error}"
        return None if found else f"cannot import {name!r} ({problem}); {install}"

    return check


def tesseract_language(language: str, install: str) -> Requirement:
    """Tesseract's data for `language` (run after program('tesseract'): asks `tesseract --list-langs`)."""

    def check() -> str | None:
        try:
            result = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True,
                                    timeout=LANGUAGE_CHECK_SECONDS)
        except (OSError, subprocess.SubprocessError) as error:
            return f"'tesseract --list-langs' failed ({error})"
        # Tesseract 4 lists them on stderr, 5 on stdout, after a header line.
        listed = {line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines()}
        if language not in listed:
            return f"tesseract has no {language!r} language data ({install})"
        return None

    return check


LANGUAGE_CHECK_SECONDS = 10


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str
    class_name: str
    types: tuple[str, ...]
    requires: tuple[Requirement, ...] = ()  # checked in order by available()

    def available(self) -> str | None:
        """None when this backend can serve on this machine, else one line that says why not.

        Cheap, and run in the worker's own process at start-up: it looks for programs on PATH and
        for Python modules, and imports neither the backend nor its libraries.
        """
        for requirement in self.requires:
            problem = requirement()
            if problem is not None:
                return f"{self.name} backend unavailable: {problem}"
        return None


# The served types and the requirements are listed here rather than read from the class, so that
# configuring a worker never imports a backend (and its dependencies) in the worker process itself.
REGISTRY: dict[str, BackendInfo] = {
    "sim": BackendInfo("sim", "taskmanager_worker.backends.sim", "SimBackend", TASK_TYPES),
    "espeak": BackendInfo("espeak", "taskmanager_worker.backends.espeak", "EspeakBackend", ("tts",), (
        program("espeak-ng", "Debian: apt-get install espeak-ng"),
    )),
    "tesseract": BackendInfo("tesseract", "taskmanager_worker.backends.tesseract", "TesseractBackend",
                             ("image_to_text",), (
        program("tesseract", "Debian: apt-get install tesseract-ocr tesseract-ocr-eng"),
        tesseract_language("eng", "Debian: apt-get install tesseract-ocr-eng"),
    )),
    "transformers": BackendInfo("transformers", "taskmanager_worker.backends.transformers_llm",
                                "TransformersBackend", ("llm",), (
        python_module("transformers", "install it with: pip install torch transformers"),
        python_module("torch", "install it with: pip install torch transformers"),
    )),
    "celery": BackendInfo("celery", "taskmanager_worker.backends.celery_bridge", "CeleryBackend", TASK_TYPES, (
        python_module("celery", "Debian: apt-get install python3-celery python3-redis"),
    )),
}


def create(name: str) -> Backend:
    """Imports and instantiates the backend registered as `name`."""
    info = REGISTRY[name]
    return getattr(importlib.import_module(info.module), info.class_name)()
