"""`python3 -m taskmanager_worker run-once`: one task through a backend, without the API.

    python3 -m taskmanager_worker run-once --type tts --input '{"text": "hello"}' [--backend espeak]
        [--model M] [--metadata JSON] [--out DIR] [--timeout S] [--grace S] [--log-level LEVEL]

The task runs in an executor child process, as in the worker (spawned, its backend created there,
a stop request then a SIGKILL after the grace on Ctrl-C or at the timeout), so what works here
works in the worker. Streamed chunks go to stdout as they come, then the output as indented JSON;
each artifact is written to the --out folder (default: a new temporary folder) and its `path`
stands in the output where the worker would put its URL. Progress, log lines, the loaded models,
the time taken and the GPU memory in use (nvidia-smi, all GPUs: before, the peak while the task
ran, after it and after the executor exited) go to stderr.

Exit code: 0 when the task succeeded, 1 when it failed (or was stopped, or its executor died),
2 on a usage error (bad arguments, an unknown or unavailable backend).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from . import artifacts, config, logs
from .backends import REGISTRY, TASK_TYPES
from .executor import Event, Executor, ExecutorError
from .follow import KILLED, Watcher, follow
from .gpu import Gpus
from .task import LeasedTask

EXECUTOR_START_SECONDS = 120.0
GPU_SAMPLE_SECONDS = 0.25
PROGRESS_INTERVAL_SECONDS = 0.5
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_GRACE_SECONDS = 5.0


class UsageError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python3 -m taskmanager_worker run-once",
        description="Runs one task through a backend in an executor process, without the API.")
    parse.add_argument("--type", required=True, choices=TASK_TYPES, help="the task type")
    parse.add_argument("--input", required=True, metavar="JSON",
                       help="the task's input object as JSON, or @FILE to read it from a file")
    parse.add_argument("--backend", help="the backend (default: the one TASKMANAGER_BACKEND gives the type, else sim)")
    parse.add_argument("--model", help="the task's model")
    parse.add_argument("--metadata", metavar="JSON", help="the task's metadata object as JSON (sim reads metadata.sim)")
    parse.add_argument("--out", metavar="DIR", help="where to write artifacts (default: a new temporary folder)")
    parse.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                       help="stop the task after this long (default %(default)g)")
    parse.add_argument("--grace", type=float, metavar="SECONDS",
                       help="how long a stopped task may take before its executor is killed "
                            "(default: TASKMANAGER_CANCEL_GRACE_SECONDS, else 5)")
    parse.add_argument("--log-level", default="warning", choices=config.LOG_LEVELS,
                       help="the executor's log level (its JSON lines go to stderr; default %(default)s)")
    return parse


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # exits 2 on a usage error
    try:
        backend = _backend(args)
        task = _task(args)
        grace = _grace(args)
        if args.timeout <= 0:
            raise UsageError("--timeout must be > 0")
    except (UsageError, config.ConfigError) as error:
        print(f"run-once: {error}", file=sys.stderr)
        return 2
    logs.setup(args.log_level)
    return _Run(task, backend, args.out, args.timeout, grace, args.log_level).run()


def _backend(args: argparse.Namespace) -> str:
    name = args.backend
    if name is None:
        spec = os.environ.get("TASKMANAGER_BACKEND", "").strip()
        served = config.parse_backends(spec)
        name = served.get(args.type)
        if name is None:
            raise UsageError(f"TASKMANAGER_BACKEND ({spec!r}) gives {args.type} no backend; pass --backend")
    info = REGISTRY.get(name)
    if info is None:
        raise UsageError(f"unknown backend {name!r}; known: {', '.join(REGISTRY)}")
    if args.type not in info.types:
        raise UsageError(f"backend {name!r} does not serve {args.type} (it serves {', '.join(info.types)})")
    reason = info.available()
    if reason is not None:
        raise UsageError(reason)
    if name == "celery":
        config.celery_settings()  # its settings, checked as the worker checks them (ConfigError)
    return name


def _json_object(text: str, what: str) -> dict[str, Any]:
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as file:
                text = file.read()
        except OSError as error:
            raise UsageError(f"{what}: cannot read {text[1:]!r}: {error}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{what} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object")
    return value


def _task(args: argparse.Namespace) -> LeasedTask:
    """The task as a lease would hand it over."""
    task_id = f"run-once-{uuid.uuid4().hex[:12]}"
    return LeasedTask.from_json({
        "task_id": task_id, "lease_token": "run-once", "type": args.type, "model": args.model,
        "input": _json_object(args.input, "--input"),
        "metadata": _json_object(args.metadata, "--metadata") if args.metadata else {},
        "attempt": 1, "max_attempts": 1, "timeout_seconds": args.timeout, "traceparent": None,
    })


def _grace(args: argparse.Namespace) -> float:
    if args.grace is not None:
        if args.grace < 0:
            raise UsageError("--grace must be >= 0")
        return args.grace
    value = os.environ.get("TASKMANAGER_CANCEL_GRACE_SECONDS", "").strip()
    if not value:
        return DEFAULT_GRACE_SECONDS
    return config.load({"TASKMANAGER_CANCEL_GRACE_SECONDS": value}, need_api_url=False).cancel_grace_seconds


class _GpuMemory:
    """GPU memory in use, summed over the GPUs nvidia-smi sees (every process's, not only ours):
    read now, and its peak sampled in a thread while the task runs."""

    def __init__(self) -> None:
        self._gpus = Gpus(None)
        self.available = self.read() is not None
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> int | None:
        gpus = self._gpus.read()
        if not gpus:
            return None
        return sum(gpu["memory_total_mb"] - gpu["memory_free_mb"] for gpu in gpus)

    def start_sampling(self) -> None:
        if self.available:
            self._thread = threading.Thread(target=self._sample, name="gpu-sampler", daemon=True)
            self._thread.start()

    def stop_sampling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        while True:
            used = self.read()
            if used is not None:
                self.peak = used if self.peak is None else max(self.peak, used)
            if self._stop.wait(GPU_SAMPLE_SECONDS):
                return


class _Run(Watcher[str]):
    """Runs the task, following it (follow.py) with its output on stdout and the rest on stderr."""

    def __init__(self, task: LeasedTask, backend: str, out: str | None, timeout: float, grace: float,
                 log_level: str) -> None:
        self._task = task
        self._backend = backend
        self._out = out
        self._timeout = timeout
        self._grace = grace
        self._executor = Executor({task.type: backend}, log_level)
        self._chunked = False  # stdout holds chunks not yet ended by a newline
        # On a terminal, a line on stderr first ends the line of chunks; in a pipe, stdout holds the
        # chunks exactly as they came, then a newline and the output.
        self._terminal = sys.stdout.isatty() and sys.stderr.isatty()
        self._next_progress = 0.0
        self._models: list[str] = []
        self._interrupts = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    def run(self) -> int:
        task = self._task
        memory = _GpuMemory()
        before = memory.read()
        started = time.monotonic()
        executor = self._executor
        previous = signal.signal(signal.SIGINT, self._interrupted)
        try:
            memory.start_sampling()
            executor.start()
            _say(f"run-once: {task.type} task {task.task_id} on backend {self._backend}"
                 + (f", model {task.model}" if task.model else "") + f", executor pid {executor.pid}")
            try:
                executor.wait_ready(EXECUTOR_START_SECONDS)
            except ExecutorError as error:
                _say(f"run-once: {error}")
                return 1
            ready = time.monotonic()
            code = self._exit_code(*follow(executor, task, ready + self._timeout, self._grace, self,
                                           f"timed out after {self._timeout:g} s", self._wake_read))
            ended = time.monotonic()
            memory.stop_sampling()
            after_task = memory.read()
            executor.close()
            after_exit = memory.read()
        finally:
            memory.stop_sampling()
            if executor.pid is not None:
                executor.kill()
            signal.signal(signal.SIGINT, previous)
            os.close(self._wake_read)
            os.close(self._wake_write)
        _say(f"time: {ended - started:.3f} s in all: executor start {ready - started:.3f} s, "
             f"task {ended - ready:.3f} s")
        if self._models:
            _say(f"models loaded: {', '.join(self._models)}")
        if memory.available:
            _say(f"gpu memory used (nvidia-smi, all GPUs, MiB): before {_mib(before)}, peak while running "
                 f"{_mib(memory.peak)}, after the task {_mib(after_task)}, after the executor exited {_mib(after_exit)}")
        else:
            _say("gpu memory: not measured (no GPU that nvidia-smi answers for)")
        return code

    def _interrupted(self, signum: int, frame: Any) -> None:
        self._interrupts += 1
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass

    # --- the Watcher: what follow() sees of the task ---

    def stop_request(self) -> tuple[str | None, bool]:
        return ("interrupted" if self._interrupts else None), self._interrupts > 1  # a second Ctrl-C kills

    def stopping(self, reason: str) -> None:
        self._end_chunks()
        _say(f"run-once: {reason}; asking the task to stop (killed after {self._grace:g} s)")

    def killing(self, reason: str, at_once: bool) -> None:
        self._end_chunks()
        _say(f"run-once: the task did not stop; killing executor {self._executor.pid}")

    def chunk(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self._chunked = True

    def progress(self, progress: float, message: str | None) -> None:
        now = time.monotonic()
        if now >= self._next_progress:  # at most one line per PROGRESS_INTERVAL_SECONDS
            self._next_progress = now + PROGRESS_INTERVAL_SECONDS
            self._end_chunks(terminal_only=True)
            _say(f"[progress {progress * 100:.0f}%]" + (f" {message}" if message else ""))

    def log(self, line: str) -> None:
        self._end_chunks(terminal_only=True)
        _say(f"[log] {line}")

    def models(self, names: list[str]) -> None:
        self._end_chunks(terminal_only=True)
        self._models = list(names)
        _say(f"[models] loaded now: {', '.join(self._models) or 'none'}")

    def _exit_code(self, event: Event, reason: str | None) -> int:
        """Says how the task ended (its output on stdout when it succeeded); returns the exit code."""
        kind = event[0]
        self._end_chunks()
        if event is KILLED:
            _say(f"task {reason}: its executor was killed")
        elif kind == "done":
            self._print_output(event[2], event[3])
            return 0
        elif kind == "failed":
            _say(f"task failed: {event[2]} ({'retryable' if event[4] else 'not retryable'}): {event[3]}")
        elif kind == "stopped":
            _say(f"task stopped ({reason or 'unasked'})")
        else:
            _say(f"task failed: the executor exited (code {event[1]}) while running it")
        return 1

    def _end_chunks(self, terminal_only: bool = False) -> None:
        if self._chunked and (self._terminal or not terminal_only):
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._chunked = False

    def _print_output(self, output_json: str, found: list[tuple[str, Any]]) -> None:
        replacements = []
        if found:
            folder = self._out or tempfile.mkdtemp(prefix="taskmanager-run-once-")
            os.makedirs(folder, exist_ok=True)
            for token, artifact in found:
                path = os.path.abspath(os.path.join(folder, artifact.name))
                with open(path, "wb") as file:
                    file.write(artifact.data)
                replacements.append((token, {"path": path, "content_type": artifact.content_type,
                                             "bytes": len(artifact.data), **artifact.meta}))
                _say(f"artifact: {path} ({artifact.content_type}, {len(artifact.data)} bytes)")
        output = json.loads(artifacts.fill(output_json, replacements))
        print(json.dumps(output, indent=2, ensure_ascii=False), flush=True)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
