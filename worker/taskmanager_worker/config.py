"""Worker settings, read from environment variables the way Aspire or a deployment passes them.

Every setting is checked here, at start-up, so that a bad value stops the worker with one message
that names the variable, instead of failing on the first task.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from .backends import REGISTRY, TASK_TYPES, BackendInfo

LOG_LEVELS = ("debug", "info", "warning", "error")
_GPU_FIELDS = {"name", "memory_total_mb", "memory_free_mb", "utilization"}


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which one and what is expected."""


@dataclass(frozen=True)
class Config:
    api_url: str  # "" only when loaded with need_api_url=False and none is set
    token: str | None
    backends: dict[str, str]  # accepted task type -> name of the backend that runs it
    capacity: int
    models: tuple[str, ...]
    gpus: tuple[dict[str, Any], ...] | None  # declared by hand; None: probe nvidia-smi
    name: str
    cancel_grace_seconds: float
    shutdown_grace_seconds: float
    log_level: str
    model_dir: str | None = None  # TASKMANAGER_MODEL_DIR: where the transformers backend finds models by name

    @property
    def task_types(self) -> list[str]:
        return list(self.backends)


def load(env: Mapping[str, str] | None = None, *, need_api_url: bool = True) -> Config:
    """Reads the settings from `env` (default: the process environment); raises ConfigError.

    With `need_api_url` false (the probe command), a missing API address is no error; a malformed
    one still is.
    """
    env = os.environ if env is None else env

    def get(name: str) -> str:
        # Unset and empty mean the same: deployment templates often set a variable to "".
        return env.get(name, "").strip()

    served = _backends(get("TASKMANAGER_BACKEND"))
    types = _task_types(get("TASKMANAGER_TASK_TYPES"), served)
    if any(served[t] == "celery" for t in types):
        celery_settings(env)  # checked here, at start-up; the executors read them again
    if any(served[t] == "sim" for t in types):
        sim_tokens_per_second(env)  # likewise: the sim backend reads it in each executor
    return Config(
        api_url=_api_url(env, need_api_url),
        token=get("TASKMANAGER_WORKER_TOKEN") or None,
        backends={t: served[t] for t in types},
        capacity=_integer("TASKMANAGER_CAPACITY", get("TASKMANAGER_CAPACITY"), 1, 1, 1024),
        models=tuple(_unique(_split(get("TASKMANAGER_MODELS")))),
        gpus=_gpus(get("TASKMANAGER_GPUS")),
        name=get("TASKMANAGER_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}",
        cancel_grace_seconds=_seconds("TASKMANAGER_CANCEL_GRACE_SECONDS", get("TASKMANAGER_CANCEL_GRACE_SECONDS"), 5),
        shutdown_grace_seconds=_seconds(
            "TASKMANAGER_SHUTDOWN_GRACE_SECONDS", get("TASKMANAGER_SHUTDOWN_GRACE_SECONDS"), 30),
        log_level=_log_level(get("TASKMANAGER_LOG_LEVEL")),
        model_dir=_model_dir(get("TASKMANAGER_MODEL_DIR")),
    )


@dataclass(frozen=True)
class CelerySettings:
    """The `celery` backend's settings (TASKMANAGER_CELERY_*)."""

    broker_url: str  # the Celery deployment's broker
    result_backend: str  # and its result backend
    queue: str
    task_name: str  # a template: "{type}" stands for the task's type


DEFAULT_CELERY_QUEUE = "gpu_queue"
DEFAULT_CELERY_TASK_NAME = "app.tasks.run_{type}_inference"


def sim_tokens_per_second(env: Mapping[str, str] | None = None) -> float | None:
    """TASKMANAGER_SIM_TOKENS_PER_SECOND: the pace at which the `sim` backend makes an `llm` task's
    tokens when the task's `metadata.sim` sets no `duration_ms` (None: unset, no pacing); raises
    ConfigError. A client that cannot steer the simulation through metadata (the OpenAI-compatible
    API) then still sees a stream arrive over time."""
    env = os.environ if env is None else env
    value = env.get("TASKMANAGER_SIM_TOKENS_PER_SECOND", "").strip()
    if not value:
        return None
    try:
        rate = float(value)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or not 0 < rate <= 1_000_000:
        raise ConfigError(f"TASKMANAGER_SIM_TOKENS_PER_SECOND must be a number of tokens a second above 0 (got {value!r})")
    return rate


def celery_settings(env: Mapping[str, str] | None = None) -> CelerySettings:
    """Reads the `celery` backend's settings from `env` (default: the process environment); raises
    ConfigError. The worker calls it at start-up when a task type uses the backend, and the backend
    again in each executor (which inherits the environment)."""
    env = os.environ if env is None else env

    def get(name: str) -> str:
        return env.get(name, "").strip()

    queue = get("TASKMANAGER_CELERY_QUEUE") or DEFAULT_CELERY_QUEUE
    if any(c.isspace() for c in queue):
        raise ConfigError(f"TASKMANAGER_CELERY_QUEUE must be a queue name without spaces (got {queue!r})")
    task_name = get("TASKMANAGER_CELERY_TASK_NAME") or DEFAULT_CELERY_TASK_NAME
    if any(c.isspace() for c in task_name):
        raise ConfigError("TASKMANAGER_CELERY_TASK_NAME must be a Celery task name, where {type} stands for the "
                          f"task's type, such as {DEFAULT_CELERY_TASK_NAME} (got {task_name!r})")
    return CelerySettings(
        broker_url=_celery_url("TASKMANAGER_CELERY_BROKER_URL", get("TASKMANAGER_CELERY_BROKER_URL"), "broker",
                               "redis://:password@redis-host:6379/0"),
        result_backend=_celery_url("TASKMANAGER_CELERY_RESULT_BACKEND", get("TASKMANAGER_CELERY_RESULT_BACKEND"),
                                   "result backend", "redis://:password@redis-host:6379/1"),
        queue=queue,
        task_name=task_name,
    )


def _celery_url(name: str, value: str, what: str, example: str) -> str:
    # The value is never echoed: a broker URL usually holds a password.
    if not value:
        raise ConfigError(f"{name} must be set when a task type uses the celery backend: the {what} URL of the "
                          f"Celery deployment that the bridge sends tasks to, such as {example}")
    scheme, sep, _ = value.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise ConfigError(f"{name} must be a URL such as {example} (the value set has no scheme://; "
                          "it is not shown, as it may hold a password)")
    return value


def drop_unavailable(config: Config, report: Callable[[str], None]) -> Config:
    """Leaves out the task types whose backend cannot serve on this machine (see
    BackendInfo.available: a program missing from PATH, a Python module that is not installed).

    Calls `report` with one line per unavailable backend that says why and which types it drops
    ("espeak backend unavailable: the program 'espeak-ng' is not on PATH (...); not serving tts").
    Returns the config that keeps the other types; raises ConfigError when none is left.
    """
    reasons = {name: REGISTRY[name].available() for name in sorted(set(config.backends.values()))}
    for name, reason in reasons.items():
        if reason is not None:
            dropped = [t for t, backend in config.backends.items() if backend == name]
            report(f"{reason}; not serving {', '.join(dropped)}")
    kept = {t: name for t, name in config.backends.items() if reasons[name] is None}
    if not kept:
        raise ConfigError(
            f"no task type left to serve: every configured backend ({', '.join(reasons)}) is unavailable on this "
            "machine, as the lines above say; install what it needs, or choose other backends with "
            "TASKMANAGER_BACKEND (sim needs nothing)")
    return replace(config, backends=kept)


def _api_url(env: Mapping[str, str], required: bool = True) -> str:
    # Aspire passes service discovery as services__<name>__<endpoint>__<index>.
    for name in ("TASKMANAGER_API_URL", "services__api__http__0", "services__api__https__0"):
        value = env.get(name, "").strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} must be an http(s) URL such as http://localhost:8084 (got {value!r})")
        return value.rstrip("/")
    if not required:
        return ""
    raise ConfigError(
        "no API address: set TASKMANAGER_API_URL (for example http://localhost:8084), "
        "or run the worker from the Aspire AppHost, which sets services__api__http__0")


def parse_backends(spec: str) -> dict[str, str]:
    """TASKMANAGER_BACKEND's value as {task type: backend}; raises ConfigError."""
    return _backends(spec.strip())


def _backends(spec: str) -> dict[str, str]:
    """Parses TASKMANAGER_BACKEND: one backend for every type it serves, or `type=backend,...`."""
    spec = spec or "sim"
    if "=" not in spec:
        return {t: spec for t in _backend(spec).types}
    mapping: dict[str, str] = {}
    for item in _split(spec):
        task_type, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not task_type or not name:
            raise ConfigError(f"TASKMANAGER_BACKEND entries must look like llm=sim (got {item!r})")
        _known_type("TASKMANAGER_BACKEND", task_type)
        if task_type in mapping:
            raise ConfigError(f"TASKMANAGER_BACKEND names a backend for {task_type!r} twice")
        if task_type not in _backend(name).types:
            raise ConfigError(f"TASKMANAGER_BACKEND: backend {name!r} does not serve {task_type!r}")
        mapping[task_type] = name
    return mapping


def _backend(name: str) -> BackendInfo:
    if name not in REGISTRY:
        raise ConfigError(f"TASKMANAGER_BACKEND: unknown backend {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _task_types(spec: str, served: dict[str, str]) -> list[str]:
    if not spec:
        return [t for t in TASK_TYPES if t in served]
    types = _unique(_split(spec))
    for task_type in types:
        _known_type("TASKMANAGER_TASK_TYPES", task_type)
        if task_type not in served:
            raise ConfigError(
                f"TASKMANAGER_TASK_TYPES lists {task_type!r}, but TASKMANAGER_BACKEND gives it no backend")
    return types


def _known_type(variable: str, task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ConfigError(f"{variable}: unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")


def _gpus(spec: str) -> tuple[dict[str, Any], ...] | None:
    if not spec:
        return None
    expected = ('TASKMANAGER_GPUS must be a JSON list such as '
                '[{"name": "NVIDIA H100", "memory_total_mb": 81559, "memory_free_mb": 80000}]')
    try:
        gpus = json.loads(spec)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{expected}: {error}") from None
    if not isinstance(gpus, list):
        raise ConfigError(expected)
    for index, gpu in enumerate(gpus):
        where = f"TASKMANAGER_GPUS[{index}]"
        if not isinstance(gpu, dict):
            raise ConfigError(f"{where} must be an object; {expected}")
        unknown = set(gpu) - _GPU_FIELDS
        if unknown:
            raise ConfigError(f"{where} has unknown fields {sorted(unknown)}; allowed: {sorted(_GPU_FIELDS)}")
        if not isinstance(gpu.get("name"), str) or not gpu["name"].strip():
            raise ConfigError(f"{where}.name must be a non-empty string")
        for field in ("memory_total_mb", "memory_free_mb"):
            value = gpu.get(field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}.{field} must be an integer >= 0 (MiB)")
        if gpu["memory_free_mb"] > gpu["memory_total_mb"]:
            raise ConfigError(f"{where}.memory_free_mb must not exceed memory_total_mb")
        utilization = gpu.get("utilization", 0.0)
        if isinstance(utilization, bool) or not isinstance(utilization, (int, float)) or not 0 <= utilization <= 1:
            raise ConfigError(f"{where}.utilization must be a fraction from 0 to 1")
    return tuple(gpus)


def _model_dir(value: str) -> str | None:
    if not value:
        return None
    if not os.path.isdir(value):
        raise ConfigError(f"TASKMANAGER_MODEL_DIR must be a folder (got {value!r}, which is not one)")
    return value


def _integer(name: str, value: str, default: int, low: int, high: int) -> int:
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high} (got {value!r})")
    return number


def _seconds(name: str, value: str, default: float) -> float:
    if not value:
        return float(default)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{name} must be a number of seconds >= 0 (got {value!r})")
    return number


def _log_level(value: str) -> str:
    level = (value or "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"TASKMANAGER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (got {value!r})")
    return level


def _split(spec: str) -> list[str]:
    return [item.strip() for item in spec.split(",") if item.strip()]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
