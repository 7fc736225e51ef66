"""Executors: long-lived child processes that run tasks, one at a time, on backends they keep loaded.

A task travels to the executor over a Pipe, so it costs a pickle each way rather than a process
start or a model load. The messages:

    worker -> executor: ("run", task) | ("stop", task_id) | ("exit",)
    executor -> worker: ("ready",) | ("boot_failed", message)
                        ("progress", task_id, progress, message) | ("chunk", task_id, text)
                        ("log", task_id, line) | ("models", [name, ...])
                        ("done", task_id, output_json, [(placeholder, Artifact), ...])
                        ("stopped", task_id) | ("failed", task_id, code, message, retryable)
                        ("many", [message, ...]): several of the above in one write

Executor.events() unpacks "many" and adds ("died", exit_code) once the child is gone. Log lines
wait in the executor for the next message of their task (a progress, a chunk, the outcome) and go
with it in one "many", or go alone once they have waited LOG_FLUSH_SECONDS, at a ctx.stopped()
(backends call it as they go): a short task's log line and its outcome cost one write and one
wake-up of the worker, not two.

"models" names the models its backends hold now (those with a `loaded_model` attribute); it
follows a load or an unload that changed them, before the task's outcome. The output travels as
JSON text: the executor checks that it is JSON, and the worker passes it on without decoding it.
Its artifacts travel beside it, a placeholder string in their place (see artifacts.py).

An executor must not outlive its worker, or it would keep a GPU busy: it asks the kernel for
SIGKILL when its parent dies (Linux), watches its parent id as a fallback, and exits when it finds
its pipe closed (between tasks at once; during one, at its next ctx.stopped()).
"""

from __future__ import annotations

import collections
import ctypes
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
from typing import Any

from . import artifacts
from . import backends as backend_registry
from . import logs
from .backends import Backend, TaskError, TaskStopped

log = logging.getLogger(__name__)

# 'spawn', not 'fork': a forked child would inherit the worker's threads' locks and sockets, and
# with CUDA a forked child cannot use the GPU at all.
_CONTEXT = multiprocessing.get_context("spawn")
_PR_SET_PDEATHSIG = 1
MAX_LOG_LINE = 4000  # the protocol's limit on a log line, in UTF-16 code units (the API counts those)
LOG_FLUSH_SECONDS = 0.1  # the longest a log line waits for company, checked at each ctx.stopped()
WATCHDOG_INTERVAL_SECONDS = 1.0
JOIN_TIMEOUT_SECONDS = 5.0
READ_SIZE = 1 << 16  # a pipe's whole buffer, in one read
_LENGTH = struct.Struct("!i")  # Connection's framing
_LONG_LENGTH = struct.Struct("!Q")

Event = tuple[Any, ...]


class ExecutorError(Exception):
    """An executor could not start."""


class Executor:
    """The worker's handle on one executor process. Used by one thread at a time (its slot)."""

    def __init__(self, backends: dict[str, str], log_level: str = "info") -> None:
        self._backends = dict(backends)
        self._log_level = log_level
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._dead = False
        self._waiting: tuple[int | None, Any] | None = None  # (wake fd, poll object) of events()
        self._inbox: _Inbox | None = None

    def start(self) -> None:
        """Spawns the executor; it creates its backends in the background (see wait_ready).

        Note: PR_SET_PDEATHSIG fires when the *thread* that spawned the child ends, not only its
        process, so executors are started only from threads that live as long as the worker.
        """
        parent_conn, child_conn = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(
            target=_child_main, args=(child_conn, os.getpid(), self._backends, self._log_level),
            name="taskmanager-executor")
        self._process.start()
        child_conn.close()
        self._conn = parent_conn
        self._inbox = _Inbox(parent_conn)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def wait_ready(self, timeout: float) -> None:
        """Waits until the executor has created its backends; raises ExecutorError if it cannot."""
        if not self._conn.poll(timeout):
            raise ExecutorError(f"executor {self.pid} did not start within {timeout:g} s")
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(JOIN_TIMEOUT_SECONDS)
            raise ExecutorError(f"executor {self.pid} exited while starting (code {self._process.exitcode})") from None
        if message[0] == "boot_failed":
            raise ExecutorError(f"executor {self.pid} could not create its backends: {message[1]}")

    def run(self, task: dict[str, Any]) -> None:
        self._send(("run", task))

    def stop(self, task_id: str) -> None:
        """Asks the running task to stop; the backend notices when it next polls ctx.stopped()."""
        self._send(("stop", task_id))

    def events(self, timeout: float | None, wake: int | None = None) -> list[Event]:
        """Waits up to `timeout` for messages (or for `wake`, a readable fd, which it then empties)
        and returns them all."""
        if self._dead:
            return [("died", self._process.exitcode)]
        # A poll object made once: multiprocessing.connection.wait and Connection.poll build a
        # selector on every call, which cost more than the rest of a no-op task's round trip.
        if self._waiting is None or self._waiting[0] != wake:
            waiting = select.poll()
            for fd in (self._conn.fileno(), self._process.sentinel, *([] if wake is None else [wake])):
                waiting.register(fd, select.POLLIN)
            self._waiting = (wake, waiting)
        ready = {fd for fd, _ in self._waiting[1].poll(None if timeout is None else max(0, math.ceil(timeout * 1000)))}
        events: list[Event] = []
        try:
            if self._conn.fileno() in ready:
                self._inbox.fill()
            while self._inbox:
                message = self._inbox.pop()
                if message[0] == "boot_failed":
                    log.error("a fresh executor could not create its backends",
                              extra={"executor_pid": self.pid, "error": message[1]})
                elif message[0] == "many":
                    events.extend(message[1])
                elif message[0] != "ready":
                    events.append(message)
        except (EOFError, OSError):
            self._dead = True
        if wake is not None and wake in ready:
            _empty(wake)
        if self._dead or self._process.sentinel in ready:
            self._dead = True
            self._process.join(JOIN_TIMEOUT_SECONDS)
            events.append(("died", self._process.exitcode))
        return events

    def kill(self) -> None:
        """SIGKILLs the executor and reaps it; its GPU memory is free once this returns."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(JOIN_TIMEOUT_SECONDS)
        self._conn.close()
        self._dead = True

    def close(self, timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        """Lets an idle executor unload its backends and exit; kills it if it has not within `timeout`."""
        self._send(("exit",))
        self._process.join(timeout)
        self.kill()

    def _send(self, message: Event) -> None:
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            pass  # the executor is gone or going; events() reports it


class _Inbox:
    """The reading end of a Pipe, read a buffer at a time: Connection.recv() costs two reads a
    message (its length, then its body), and a poll before each to see whether one is there, where
    one read here takes every message the pipe holds. A slot's thread gives up the GIL at each
    system call and must take it back from the other slots.

    The framing is Connection's (a 4-byte big-endian length, or -1 and an 8-byte one beyond 2 GiB),
    so the other end sends with Connection.send as before."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._fd = conn.fileno()
        self._buffer = bytearray()
        self._messages: collections.deque[Event] = collections.deque()

    def __bool__(self) -> bool:
        """Whether a message is waiting, read already."""
        return bool(self._messages)

    def pop(self) -> Event:
        return self._messages.popleft()

    def fill(self) -> None:
        """Reads what the pipe holds (waiting for it if it holds nothing), and on while a message is
        incomplete. Raises EOFError once the other end is closed."""
        while True:
            data = os.read(self._fd, READ_SIZE)
            if not data:
                raise EOFError
            self._buffer += data
            if self._unpack():
                return

    def _unpack(self) -> bool:
        """Unpickles the complete messages in the buffer; True when none is left incomplete."""
        buffer, at = self._buffer, 0
        while len(buffer) - at >= 4:
            (size,), header = _LENGTH.unpack_from(buffer, at), 4
            if size == -1:
                if len(buffer) - at < 12:
                    break
                (size,), header = _LONG_LENGTH.unpack_from(buffer, at + 4), 12
            if len(buffer) - at - header < size:
                break
            self._messages.append(pickle.loads(buffer[at + header:at + header + size]))
            at += header + size
        del buffer[:at]
        return not buffer


def _empty(fd: int) -> None:
    """Reads a non-blocking fd until it is empty."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


# --- inside the executor process ---


def _child_main(conn: multiprocessing.connection.Connection, parent_pid: int, backends: dict[str, str],
                log_level: str) -> None:
    logs.setup(log_level)
    _die_with_parent(parent_pid)
    # The worker decides when an executor stops. A Ctrl-C in a terminal, or a stop signal sent to
    # the whole process group (systemd does this), must not kill tasks that the worker means to
    # finish during its shutdown grace; the worker SIGKILLs executors it wants gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        instances = {name: backend_registry.create(name) for name in sorted(set(backends.values()))}
    except Exception as error:
        log.exception("executor could not create its backends")
        conn.send(("boot_failed", f"{type(error).__name__}: {error}"))
        sys.exit(1)
    log.info("executor ready", extra={"backends": sorted(instances)})
    conn.send(("ready",))
    _ExecutorLoop(conn, backends, instances).serve()


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed; relying on the watchdog",
                            extra={"errno": ctypes.get_errno()})
        except (OSError, AttributeError):
            log.warning("prctl is unavailable; relying on the watchdog")
    # The parent may have died before prctl took effect, and prctl is Linux only: watch it too.
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_INTERVAL_SECONDS)
        if os.getppid() != parent_pid:  # re-parented: the worker is gone
            os._exit(1)


class _TaskContext:
    """The TaskContext a backend gets; it sends from the executor's main thread only."""

    __slots__ = ("_loop", "_task_id")

    def __init__(self, loop: _ExecutorLoop, task_id: str) -> None:
        self._loop = loop
        self._task_id = task_id

    def progress(self, progress: float, message: str | None = None) -> None:
        self._loop.send(("progress", self._task_id, min(1.0, max(0.0, float(progress))), message))

    def chunk(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"a chunk must be a string, not {type(text).__name__}")
        self._loop.send(("chunk", self._task_id, text))

    def log(self, line: str) -> None:
        if not isinstance(line, str):
            raise TypeError(f"a log line must be a string, not {type(line).__name__}")
        self._loop.log(self._task_id, split_log_line(line))

    def stopped(self) -> bool:
        return self._loop.stop_requested()


def split_log_line(text: str) -> list[str]:
    """Splits text into the lines the protocol takes: one per line of the text, and a line longer
    than MAX_LOG_LINE cut into pieces of at most that many UTF-16 code units (so nothing is lost)."""
    pieces = []
    for line in text.splitlines() or [""]:
        if len(line) <= MAX_LOG_LINE // 2 or _utf16_length(line) <= MAX_LOG_LINE:
            pieces.append(line)
            continue
        start, units = 0, 0
        for index, char in enumerate(line):
            width = 2 if ord(char) > 0xFFFF else 1
            if units + width > MAX_LOG_LINE:
                pieces.append(line[start:index])
                start, units = index, 0
            units += width
        pieces.append(line[start:])
    return pieces


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _ExecutorLoop:
    """Runs tasks in the main thread, which also reads the pipe: between tasks it waits on it; while
    a task runs, each ctx.stopped() looks at it without waiting, so that a stop request reaches a
    task that is busy running (a backend polls ctx.stopped() as it goes).

    No reader thread: handing each message from one to the main thread cost about a fifth of a
    no-op task's time in the executor. An executor whose worker dies mid-task still goes at once
    (PR_SET_PDEATHSIG, the watchdog); the pipe's end is noticed at the next read."""

    def __init__(self, conn: multiprocessing.connection.Connection, backends: dict[str, str],
                 instances: dict[str, Backend]) -> None:
        self._conn = conn
        self._backends = backends
        self._instances = instances
        self._models: dict[str, str | None] = {}  # backend name -> the model it has loaded
        self._reported_models: list[str] = []  # what the worker was last told is loaded
        self._later: collections.deque[Event] = collections.deque()  # read during a task, for after it
        self._running: str | None = None  # the task running now
        self._stop = False  # a stop was asked for it
        self._inbox = _Inbox(conn)
        self._readable = select.poll()
        self._readable.register(conn.fileno(), select.POLLIN)
        self._reading = threading.Lock()  # a backend may call ctx.stopped() from a thread of its own
        self._logs: list[Event] = []  # log lines waiting to go with the next message
        self._logs_since = 0.0  # when the first of them was logged (time.monotonic())

    def serve(self) -> None:
        while True:
            message = self._later.popleft() if self._later else self._receive()
            if message[0] == "run":
                task = message[1]
                self._running, self._stop = task["task_id"], False
                try:
                    self.send(self._run(task))
                finally:
                    self._running = None
            elif message[0] == "exit":
                break
            # A stop for a task that has ended is late: nothing to do.
        for name, backend in self._instances.items():
            try:
                backend.unload()
            except Exception:
                log.exception("backend failed to unload", extra={"backend": name})

    def send(self, message: Event | None) -> None:
        """Sends a message, with the log lines waiting before it (None: only those)."""
        if self._logs:
            waiting, self._logs = self._logs, []
            message = ("many", waiting if message is None else [*waiting, message])
        if message is None:
            return
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            os._exit(1)  # the worker is gone

    def log(self, task_id: str, lines: list[str]) -> None:
        if not self._logs:
            self._logs_since = time.monotonic()
        self._logs.extend(("log", task_id, line) for line in lines)

    def stop_requested(self) -> bool:
        """Reads what the worker sent while the task runs, without waiting; True once it asked the
        running task to stop. Sends the log lines that have waited long enough."""
        if (self._logs and time.monotonic() - self._logs_since >= LOG_FLUSH_SECONDS
                and threading.current_thread() is threading.main_thread()):
            self.send(None)  # (only the main thread sends)
        if not self._stop and self._reading.acquire(blocking=False):
            try:
                while self._inbox or self._readable.poll(0):
                    message = self._receive()
                    if message[0] == "stop":
                        if message[1] == self._running:
                            self._stop = True
                    else:
                        self._later.append(message)
            finally:
                self._reading.release()
        return self._stop

    def _receive(self) -> Event:
        try:
            if not self._inbox:
                self._inbox.fill()
            return self._inbox.pop()
        except (EOFError, OSError):
            os._exit(1)  # the worker is gone; nobody wants what runs here

    def _run(self, task: dict[str, Any]) -> Event:
        task_id = task["task_id"]
        try:
            output = self._backend_for(task).run(task, _TaskContext(self, task_id))
            if not isinstance(output, dict):
                raise TypeError(f"the backend returned {type(output).__name__}, not a JSON object")
            output_json, found = artifacts.encode(output)
            result: Event = ("done", task_id, output_json, found)
        except TaskStopped:
            result = ("stopped", task_id)
        except TaskError as error:
            result = ("failed", task_id, error.code, error.message, error.retryable)
        except Exception as error:
            log.exception("backend error", extra=logs.task_fields(task))
            result = ("failed", task_id, "backend_error", f"{type(error).__name__}: {error}", True)
        # Asked to stop, the task's outcome is the reason it was asked, whatever it returned.
        return ("stopped", task_id) if self.stop_requested() else result

    def _backend_for(self, task: dict[str, Any]) -> Backend:
        name = self._backends.get(task.get("type"))
        if name is None:
            raise TaskError("backend_error", f"this worker has no backend for type {task.get('type')!r}",
                            retryable=True)
        backend = self._instances[name]
        model = task.get("model")
        if name not in self._models or self._models[name] != model:
            try:
                if name in self._models:
                    del self._models[name]
                    backend.unload()
                backend.load(model)
                self._models[name] = model
            finally:
                self._report_models()
        return backend

    def _report_models(self) -> None:
        """Tells the worker which models the backends hold, when that changed."""
        loaded = sorted({model for backend in self._instances.values()
                         if isinstance(model := getattr(backend, "loaded_model", None), str) and model})
        if loaded != self._reported_models:
            self._reported_models = loaded
            self.send(("models", loaded))
