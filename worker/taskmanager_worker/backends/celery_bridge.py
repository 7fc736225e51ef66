"""The `celery` backend, or Celery bridge: runs each task by sending it to an existing Celery deployment.

A platform whose GPU workers are Celery workers (consuming `app.tasks.run_{type}_inference` from
`gpu_queue`) keeps them, and puts TaskManager in front: a TaskManager worker with
`TASKMANAGER_BACKEND=celery` leases tasks as usual and hands each to Celery. Settings (config.py,
CelerySettings): `TASKMANAGER_CELERY_BROKER_URL` and `TASKMANAGER_CELERY_RESULT_BACKEND` (the
deployment's own), `TASKMANAGER_CELERY_QUEUE` (default `gpu_queue`), `TASKMANAGER_CELERY_TASK_NAME`
(default `app.tasks.run_{type}_inference`, `{type}` being the task's type).

How a task goes:

- **Sent** with `send_task(name, kwargs={"task_id", "type", "input", "model"}, task_id=<celery id>,
  queue=<queue>, expires=<the task's timeout_seconds>)`. `input` is the leased input, defaults filled
  in by the API. The Celery id is the TaskManager task id, so both sides can be traced; a retried
  attempt (attempt >= 2) uses `<task id>.<attempt>`, because Celery workers remember revoked ids
  and the result backend keeps the last attempt's result: under the same id, a retry after a
  timeout would be discarded as revoked, or would read the old attempt's result. The kwarg
  `task_id` is always the plain TaskManager id. `expires` makes a Celery worker drop a message it
  takes after the task's time is up (it is TaskManager's to retry by then).
- **Followed** by polling the result backend every POLL_SECONDS (one read of the task's state),
  checking ctx.stopped() between polls. A custom state whose meta holds a number `progress` (0 to
  1), such as `update_state(state="PROGRESS", meta={"progress": 0.4, "message": "step 4/10"})`,
  is relayed as the task's progress and message.
- **SUCCESS**: the return value is the task's output. It must be a JSON object (else the attempt
  fails with `celery_bad_result`, not retryable). Binary values in it become artifacts (see below).
- **FAILURE**: the attempt fails, retryable unless the exception says otherwise (failure_of):
  its args hold a dict with a boolean `retryable` (and optionally `code` and `message`), as in
  `raise RuntimeError({"retryable": False, "code": "model_missing", "message": "..."})`; or, with
  no such dict, its class is one that means bad input or a bug a retry would repeat
  (NON_RETRYABLE_EXCEPTIONS: ValueError, TypeError, KeyError, ...; by class name, as Celery
  rebuilds an exception it cannot import under its name). The code is `celery_task_failed` unless
  the dict gives one; the message is `<class>: <message>`, and the traceback goes to the task's
  log. billiard's `WorkerLostError` (a pool process died) fails it retryable as
  `celery_worker_lost`. REVOKED that the bridge did not ask for (an operator revoked it on the
  Celery side) fails it as `celery_revoked`, not retryable.
- **A Celery worker lost with the task** (SIGKILLed as a whole, its machine gone: no result ever
  comes): a thread asks the Celery workers over remote control (`inspect().query_task(id)`) every
  HOLDER_CHECK_SECONDS which one holds the task (reserved or active), then asks only that one
  (answered at once while it lives). Two misses in a row, after one had held it (or after the
  task's state, PROGRESS or STARTED, said that a worker runs it), while the result backend still
  has no result, fail the attempt as `celery_worker_lost`, retryable, so that TaskManager retries
  it; the old id is revoked (SIGKILL) in case it runs on somewhere after all.
  A task still waiting in the queue is held by none and is not lost: it waits for a worker (until
  the task's timeout).
- **Cancel and timeout** (ctx.stopped()): the Celery task is revoked with `terminate=True` and
  `signal="SIGKILL"`, at once, then TaskStopped; TaskManager ends the task canceled or timed out
  as usual. A revoke also keeps a task that has not started yet from starting. Why not SIGTERM
  first, then SIGKILL before the cancel grace is out: a Celery worker acts on the first terminating
  revoke of a started task only. It signals the pool process, marks the task REVOKED and forgets
  it at once, whether the process died or not (celery 5.2, worker/request.py: Request.terminate),
  so a later SIGKILL revoke finds nothing to kill, and a task that ignores SIGTERM would keep its
  pool process (and its GPU) for good. A stock prefork pool process dies of SIGTERM as of SIGKILL,
  so in the usual case nothing is lost; a task that wants to clean up on a stop cannot be given
  that through a revoke.
- **The broker or the result backend unreachable** (connection refused, ...): sending fails the
  attempt at once; reading results fails it after UNREACHABLE_SECONDS of errors in a row. Both
  are retryable, as `celery_unreachable`, with the error in the message (URLs are not shown:
  they hold passwords). Nothing here lets an error end the executor.

**Binary outputs.** Celery's json serializer in kombu 5.2 cannot carry bytes; kombu 5.3 and later
carry them as `{"__type__": "bytes" | "base64", "__value__": ...}`, which a bridge on kombu 5.3 reads
back as bytes and one on 5.2 as that object. All three ways are taken:
- a `bytes` value anywhere in the result becomes an artifact in its place, and so does such a
  `__type__`/`__value__` object;
- a string under a key ending in `_base64` or `_b64` (or a list of strings there) is decoded (plain
  base64, or a base64 `data:` URL) and becomes an artifact (a list of them) under the key without
  the suffix (`audio_base64` -> `audio`; where the result has that key too, under its own). A
  value there that is not base64 fails the attempt with `celery_bad_result`.
An artifact is named after its place in the result (`audio.wav`, `images-0.png`), with an extension
from its content type, which is sniffed from its first bytes (sniff: RIFF/WAVE -> audio/wav, PNG,
JPEG, GIF, WebP, Ogg, FLAC, MP3 with ID3; a data: URL's own type wins; else
application/octet-stream). The worker uploads each and puts `{"url", "content_type", "bytes"}` in
its place.

Results are read as json, Celery's default result serializer (a result backend is read with the
reader's own setting): a deployment that stores results as msgpack or pickle is not read (and a
pickle from the result backend would run code in this process). `celery` is imported only when an
executor creates this backend: the worker itself, and the pure helpers here (tested without
celery), need only the standard library. Each executor slot keeps one Celery task in flight, so a
worker keeps TASKMANAGER_CAPACITY of them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
import time
from typing import Any

from ..config import CelerySettings, celery_settings
from . import Artifact, TaskContext, TaskError, TaskStopped

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often the result backend is read, and ctx.stopped() checked
HOLDER_CHECK_SECONDS = 2.0  # how often the Celery workers are asked which holds the task
HOLDER_REPLY_SECONDS = 1.0  # how long an answer is waited for
RECHECK_SECONDS = 0.5  # the wait before the check after one that found no worker holding it
MISSES_FOR_LOST = 2  # checks in a row that find no worker holding a task that one held
UNREACHABLE_SECONDS = 5.0  # result backend errors in a row tolerated while following a task
SEND_RETRIES = 2  # publishing retries (kombu's) before a send counts as failed
MAX_MESSAGE = 2000  # characters of an error message
MAX_TRACEBACK_LINES = 40  # of a Celery failure's traceback, into the task's log

# Exceptions that mean bad input, or a bug that a retry would repeat: a FAILURE with one of these is
# not retried (unless its args say otherwise). By class name: Celery rebuilds an exception whose
# module it has not imported as a new class of the same name.
NON_RETRYABLE_EXCEPTIONS = frozenset({
    "ValueError", "TypeError", "KeyError", "IndexError", "AttributeError", "NotImplementedError",
    "UnicodeError", "UnicodeDecodeError", "UnicodeEncodeError", "JSONDecodeError", "ValidationError",
})
WORKER_LOST_EXCEPTIONS = frozenset({"WorkerLostError"})
BASE64_SUFFIXES = ("_base64", "_b64")
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")
_DATA_URL = re.compile(r"data:([^;,]*)(?:;[^,]*)?;base64,(.*)", re.DOTALL)
_SIGNATURES = (  # (prefix, content type, extension)
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"GIF87a", "image/gif", ".gif"),
    (b"GIF89a", "image/gif", ".gif"),
    (b"OggS", "audio/ogg", ".ogg"),
    (b"fLaC", "audio/flac", ".flac"),
    (b"ID3", "audio/mpeg", ".mp3"),
)
_EXTENSIONS = {content_type: extension for _, content_type, extension in _SIGNATURES} | {
    "audio/wav": ".wav", "audio/x-wav": ".wav", "image/webp": ".webp", "audio/mpeg": ".mp3"}
OCTET_STREAM = "application/octet-stream"
READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})  # Celery's final states


# --- the parts that need no celery (unit-tested without it) ---


def task_name(template: str, task_type: str) -> str:
    """The Celery task that runs `task_type`: the template with `{type}` replaced."""
    return template.replace("{type}", task_type)


def celery_id(task: dict[str, Any]) -> str:
    """The Celery task id of this attempt: the task id, with `.<attempt>` from the second attempt on."""
    attempt = task.get("attempt")
    if type(attempt) is int and attempt >= 2:
        return f"{task['task_id']}.{attempt}"
    return task["task_id"]


def task_kwargs(task: dict[str, Any]) -> dict[str, Any]:
    """The kwargs the Celery task gets: the task id (always the plain one), type, input and model."""
    return {"task_id": task["task_id"], "type": task["type"], "input": task.get("input") or {},
            "model": task.get("model")}


def sniff(data: bytes) -> str:
    """The content type of binary data, from its first bytes; application/octet-stream when unknown."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for prefix, content_type, _ in _SIGNATURES:
        if data.startswith(prefix):
            return content_type
    return OCTET_STREAM


def output_of(value: Any) -> dict[str, Any]:
    """The task's output from a Celery task's return value: a JSON object in which bytes, and
    base64 under `*_base64`/`*_b64` keys, became Artifacts (see the module docstring). Raises
    TaskError (`celery_bad_result`, not retryable) for anything else."""
    if not isinstance(value, dict):
        raise _bad_result(f"the Celery task returned {type(value).__name__}, not a JSON object; the bridge "
                          "takes a JSON object (a dict) as the task's output")
    return _convert(value, [], set())


def _convert(value: Any, path: list[str], names: set[str]) -> Any:
    if isinstance(value, dict):
        if value.keys() == {"__type__", "__value__"} and value["__type__"] in ("bytes", "base64"):
            return _convert(_kombu_bytes(value, path), path, names)
        converted: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _bad_result(f"the Celery task's result has a key {key!r} at {_where(path)}; JSON keys are strings")
            stem = _base64_stem(key)
            if stem is not None and _decodable(item):
                place = key if stem in value else stem
                converted[place] = _decoded(item, key, [*path, place], names)
            else:
                converted[key] = _convert(item, [*path, key], names)
        return converted
    if isinstance(value, (list, tuple)):
        return [_convert(item, [*path, str(i)], names) for i, item in enumerate(value)]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _artifact(bytes(value), sniff(bytes(value)), path, names)
    return value


def _kombu_bytes(value: dict[str, Any], path: list[str]) -> bytes:
    """The bytes that kombu 5.3's json wrote as {"__type__": "bytes" | "base64", "__value__": ...}."""
    text = value["__value__"]
    if isinstance(text, str):
        if value["__type__"] == "bytes":
            return text.encode("utf-8", "surrogateescape")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise _bad_result(f"the Celery task's result has bytes at {_where(path)} that cannot be read")


def _base64_stem(key: str) -> str | None:
    for suffix in BASE64_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[:-len(suffix)]
    return None


def _decodable(item: Any) -> bool:
    return isinstance(item, str) or (isinstance(item, list) and bool(item) and all(isinstance(i, str) for i in item))


def _decoded(item: str | list[str], key: str, path: list[str], names: set[str]) -> Any:
    if isinstance(item, list):
        return [_decoded(text, key, [*path, str(i)], names) for i, text in enumerate(item)]
    declared = None
    match = _DATA_URL.fullmatch(item.strip())
    if match:
        declared, item = match.group(1).strip().lower() or None, match.group(2)
    text = "".join(item.split())
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad_result(f"the Celery task's result has {key!r} at {_where(path[:-1])}, which is not base64") from None
    return _artifact(data, declared or sniff(data), path, names)


def _artifact(data: bytes, content_type: str, path: list[str], names: set[str]) -> Artifact:
    """An artifact named after its place in the result, with an extension for its type, unique."""
    stem = _NAME_CHARACTER.sub("_", "-".join(path)).lstrip(".") or "artifact"
    extension = _EXTENSIONS.get(content_type, "")
    stem = stem[:100 - len(extension) - 4]  # room for a "-<n>" that tells two alike apart
    name, n = stem + extension, 1
    while name in names:
        n += 1
        name = f"{stem}-{n}{extension}"
    names.add(name)
    try:
        return Artifact(name, content_type, data)
    except ValueError:  # a content type from a data: URL that is none
        return Artifact(name, OCTET_STREAM, data)


def _where(path: list[str]) -> str:
    return "the top level" if not path else "/".join(path)


def _bad_result(message: str) -> TaskError:
    return TaskError("celery_bad_result", message, retryable=False)


def failure_of(exception_type: str, args: Any, traceback: str | None = None) -> TaskError:
    """The attempt's failure for a Celery task that raised `exception_type` with `args` (see the
    module docstring: a dict in the args with a boolean `retryable` decides, else the class name)."""
    args = tuple(args) if isinstance(args, (list, tuple)) else (args,)
    marked = next((a for a in args if isinstance(a, dict) and isinstance(a.get("retryable"), bool)), None)
    if marked is not None:
        code = marked.get("code")
        message = marked.get("message")
        return TaskError(
            code if isinstance(code, str) and _CODE.fullmatch(code) else "celery_task_failed",
            _cut(f"{exception_type}: {message if isinstance(message, str) else _describe(args)}"),
            retryable=marked["retryable"])
    message = _cut(f"{exception_type}: {_describe(args)}")
    if exception_type in WORKER_LOST_EXCEPTIONS:
        return TaskError("celery_worker_lost", f"the Celery worker process running the task died ({message})",
                         retryable=True)
    return TaskError("celery_task_failed", message, retryable=exception_type not in NON_RETRYABLE_EXCEPTIONS)


def _describe(args: tuple[Any, ...]) -> str:
    if len(args) == 1:
        return str(args[0])
    return ", ".join(str(a) for a in args) if args else "(no message)"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def progress_of(info: Any) -> tuple[float, str | None] | None:
    """The progress a custom state's meta reports (`{"progress": 0.4, "message": ...}`), if any."""
    if not isinstance(info, dict):
        return None
    progress = info.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or progress != progress:
        return None
    message = info.get("message")
    return min(1.0, max(0.0, float(progress))), message if isinstance(message, str) else None


def redact(url: str) -> str:
    """A URL with its password replaced by ***, for logs."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def unreachable(doing: str, error: BaseException) -> TaskError:
    return TaskError("celery_unreachable", _cut(f"could not {doing} the Celery deployment: "
                                                f"{type(error).__name__}: {redact(str(error))}"), retryable=True)


def lost(celery_task_id: str, holder: str | None) -> TaskError:
    worker = f"the Celery worker {holder}" if holder else "the Celery worker"
    return TaskError("celery_worker_lost", f"{worker} that ran task {celery_task_id} is gone: no Celery worker "
                     "holds the task any more, and no result came", retryable=True)


# --- the backend (imports celery) ---


def celery_app(settings: CelerySettings) -> Any:
    """The Celery app the bridge sends with: the deployment's broker and result backend, json."""
    from celery import Celery  # here: only executors that use this backend need celery

    app = Celery("taskmanager-celery-bridge", broker=settings.broker_url, backend=settings.result_backend,
                 set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_accept_content=["json"],
        redis_socket_timeout=10,
        redis_socket_connect_timeout=5,
        broker_connection_timeout=5,
    )
    backend = app.backend
    if type(backend).__module__ == "celery.backends.redis":
        # The Redis result backend subscribes to a task's channel when it is sent, for get(); the
        # bridge polls instead, and a subscription nobody reads would fill its connection.
        backend.on_task_call = lambda producer, task_id: None
    return app


class CeleryBackend:
    """Sends each task to a Celery deployment and relays its progress and result; see the module docstring."""

    def __init__(self, settings: CelerySettings | None = None, app: Any = None) -> None:
        self._settings = settings or celery_settings(os.environ)
        self._app = app if app is not None else celery_app(self._settings)
        log.info("celery bridge ready: broker %s, result backend %s, queue %s, task %s",
                 redact(self._settings.broker_url), redact(self._settings.result_backend), self._settings.queue,
                 self._settings.task_name)

    def load(self, model: str | None) -> None:
        pass  # the model goes to Celery with each task

    def unload(self) -> None:
        pass

    def run(self, task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if ctx.stopped():
            raise TaskStopped()
        cid = celery_id(task)
        name = task_name(self._settings.task_name, task["type"])
        expires = task.get("timeout_seconds")
        try:
            self._app.send_task(
                name, kwargs=task_kwargs(task), task_id=cid, queue=self._settings.queue,
                expires=float(expires) if type(expires) in (int, float) and expires > 0 else None,
                retry=True, retry_policy={"max_retries": SEND_RETRIES, "interval_start": 0.2,
                                          "interval_step": 0.5, "interval_max": 1.0})
        except Exception as error:
            raise unreachable("send the task to", error) from None
        ctx.log(f"celery: sent {name} as {cid} to queue {self._settings.queue}")
        ctx.progress(0.0, f"queued in Celery ({self._settings.queue})")
        holders = _HolderWatch(self._app, cid)
        holders.start()
        try:
            return self._follow(cid, ctx, holders)
        finally:
            holders.close()

    def _follow(self, cid: str, ctx: TaskContext, holders: _HolderWatch) -> dict[str, Any]:
        reported: tuple[float, str | None] | None = None
        told_holder: str | None = None
        failing_since: float | None = None
        while True:
            if ctx.stopped():
                self._stop(cid)
            try:
                meta = self._app.backend.get_task_meta(cid)
                failing_since = None
            except Exception as error:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= UNREACHABLE_SECONDS:
                    self._revoke(cid)
                    raise unreachable("read the task's result from", error) from None
                time.sleep(POLL_SECONDS)
                continue
            state, info = meta.get("status"), meta.get("result")
            if state == "SUCCESS":
                return output_of(info)
            if state == "FAILURE":
                raise self._failure(info, meta.get("traceback"), ctx)
            if state == "REVOKED":
                raise TaskError("celery_revoked", f"the Celery task {cid} was revoked on the Celery side",
                                retryable=False)
            if state not in ("PENDING", "RETRY"):
                holders.taken = True  # a worker wrote its state (STARTED, PROGRESS, ...): it has the task
            progress = progress_of(info)
            if progress is not None and progress != reported:
                reported = progress
                ctx.progress(*progress)
            if holders.holder is not None and holders.holder != told_holder:
                told_holder = holders.holder
                ctx.log(f"celery: {cid} taken by {told_holder}")
            if holders.lost and not self._ended(cid):  # (a result that came meanwhile is read next turn)
                self._revoke(cid)
                raise lost(cid, holders.holder)
            time.sleep(POLL_SECONDS)

    def _failure(self, exception: Any, traceback: Any, ctx: TaskContext) -> TaskError:
        if isinstance(exception, BaseException):
            error = failure_of(type(exception).__name__, exception.args)
        elif isinstance(exception, dict):  # the stored form, where a result backend gave it as such
            error = failure_of(str(exception.get("exc_type") or "Exception"), exception.get("exc_message") or ())
        else:
            error = failure_of("Exception", (exception,))
        if isinstance(traceback, str) and traceback.strip():
            lines = traceback.rstrip().splitlines()
            ctx.log("celery: the task's traceback" + (" (its end)" if len(lines) > MAX_TRACEBACK_LINES else "") + ":")
            ctx.log("\n".join(lines[-MAX_TRACEBACK_LINES:]))
        return error

    def _stop(self, cid: str) -> None:
        """Revokes the Celery task, killing its process (see the module docstring), and raises TaskStopped."""
        self._revoke(cid)
        raise TaskStopped()

    def _ended(self, cid: str) -> bool:
        """Whether the result backend has the Celery task's outcome (False when it cannot be read)."""
        try:
            return self._app.backend.get_task_meta(cid).get("status") in READY_STATES
        except Exception:
            return False

    def _revoke(self, cid: str) -> None:
        """Revokes the Celery task, SIGKILLing its pool process if it runs; an error is logged, not raised."""
        try:
            self._app.control.revoke(cid, terminate=True, signal="SIGKILL")
        except Exception as error:
            log.warning("celery bridge: could not revoke %s: %s: %s", cid, type(error).__name__, redact(str(error)))


class _HolderWatch:
    """Which Celery worker holds a task, asked in a thread of its own (an answer may take a second,
    which the polling loop cannot wait for): every HOLDER_CHECK_SECONDS (RECHECK_SECONDS after a
    miss), the worker that held it last (answered at once while it lives), else all of them
    (answered after HOLDER_REPLY_SECONDS).
    `lost` becomes true after MISSES_FOR_LOST checks in a row find none, once one held it, or once
    the task's state in the result backend said that a worker runs it (a worker killed before the
    first check saw it). An error talking to the broker is no answer: it counts neither way."""

    def __init__(self, app: Any, cid: str) -> None:
        self._app = app
        self._cid = cid
        self._closed = threading.Event()
        self.holder: str | None = None  # the Celery worker seen holding the task, by its name
        self.taken = False  # set by the polling loop once the task's state says a worker runs it
        self.lost = False
        self._thread = threading.Thread(target=self._watch, name=f"celery-holder-{cid}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()  # not joined: an answer it waits for ends within HOLDER_REPLY_SECONDS

    def _watch(self) -> None:
        misses = 0
        while not self._closed.wait(RECHECK_SECONDS if misses else HOLDER_CHECK_SECONDS):
            try:
                holder = self._find()
            except Exception as error:
                log.debug("celery bridge: could not ask the Celery workers about %s: %s", self._cid, error)
                continue
            if holder is not None:
                self.holder, misses = holder, 0
            elif self.holder is not None or self.taken:
                misses += 1
                if misses >= MISSES_FOR_LOST and not self._closed.is_set():
                    self.lost = True
                    return

    def _find(self) -> str | None:
        if self.holder is not None:
            found = self._ask(destination=[self.holder], limit=1)
            if found is not None:
                return found
        return self._ask()

    def _ask(self, **which: Any) -> str | None:
        replies = self._app.control.inspect(timeout=HOLDER_REPLY_SECONDS, **which).query_task(self._cid) or {}
        return next((node for node, tasks in replies.items() if isinstance(tasks, dict) and self._cid in tasks), None)
