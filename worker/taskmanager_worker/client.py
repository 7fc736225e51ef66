"""The worker's side of the HTTP protocol (docs/worker-protocol.md), over kept-alive connections.

http.client connections are not thread-safe, and the heartbeat, the lease loop and every slot talk
to the API at once, so each thread gets its own connection and keeps it between calls.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from . import __version__
from .task import LeasedTask, leased_tasks

REQUEST_TIMEOUT_SECONDS = 10.0  # per socket operation, so an upload of many megabytes has no total limit
LEASE_GRACE_SECONDS = 10.0  # a long poll may answer a little after its wait_seconds
MAX_CHUNKS_PER_REPORT = 1000  # the protocol's limits on one progress report
MAX_LOGS_PER_REPORT = 100
MAX_REPORTS_PER_CALL = 1000  # the protocol's limit on the reports of one batched progress call


class Result(NamedTuple):
    """A successful result to report: the output as JSON text, when the worker ran it (ISO 8601
    "started_at" and "ended_at", for the trace), and the attempt's last chunks and log lines."""
    task_id: str
    lease_token: str
    output_json: str
    timing: dict[str, str] | None = None
    chunks: list[str] | None = None
    logs: list[str] | None = None


class ApiError(Exception):
    """The API refused a call; `status` is the HTTP status (None when no answer came)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class TransientError(ApiError):
    """The API is unreachable or briefly unable (5xx, 408, 429): the same call may work later."""


class NotFound(ApiError):
    """404: the API does not know this worker (or task)."""


class Conflict(ApiError):
    """409: the task's attempt is no longer this worker's."""


class TooLarge(ApiError):
    """413: the API refuses an output (or the task's artifacts together) as too large."""


@dataclass(frozen=True)
class Registration:
    worker_id: str
    heartbeat_interval_seconds: float
    lease_ttl_seconds: float
    max_wait_seconds: float


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        parts = urlsplit(base_url)
        self._connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")  # the API may sit under a path behind a proxy
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"taskmanager-worker/{__version__}",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[http.client.HTTPConnection] = set()
        self._leasing: http.client.HTTPConnection | None = None
        self._leasing_aborted = False
        self._heartbeating: http.client.HTTPConnection | None = None

    # --- the protocol ---

    def register(self, body: dict[str, Any]) -> Registration:
        answer = self._request("POST", "/api/workers/register", body) or {}
        worker_id = answer.get("worker_id")
        if not isinstance(worker_id, str) or not worker_id:
            raise ApiError(200, f"register answered without a worker_id: {answer!r}")
        return Registration(
            worker_id=worker_id,
            heartbeat_interval_seconds=_positive(answer.get("heartbeat_interval_seconds"), 5.0),
            lease_ttl_seconds=_positive(answer.get("lease_ttl_seconds"), 15.0),
            max_wait_seconds=_positive(answer.get("max_wait_seconds"), 30.0),
        )

    def heartbeat(self, worker_id: str, running: list[dict[str, str]], gpus: list[dict[str, Any]],
                  models: list[str], wait_seconds: float = 0) -> tuple[list[str], bool]:
        """Returns the ids of the tasks to cancel, and whether to drain. With `wait_seconds` the
        API holds the call until a task must stop or the time is up (a long poll), so a cancel
        reaches the worker at once rather than at the next heartbeat."""
        wait = max(0, int(wait_seconds))
        answer = self._request("POST", f"/api/workers/{_seg(worker_id)}/heartbeat?wait_seconds={wait}",
                               {"running": running, "gpus": gpus, "models": models},
                               timeout=wait + REQUEST_TIMEOUT_SECONDS, heartbeating=True) or {}
        cancel = [task_id for task_id in answer.get("cancel") or [] if isinstance(task_id, str)]
        return cancel, answer.get("drain") is True

    def lease(self, worker_id: str, max_tasks: int, wait_seconds: int) -> list[LeasedTask]:
        """Long-polls for up to `max_tasks` tasks; [] when none came in `wait_seconds`."""
        answer = self._request("POST", f"/api/workers/{_seg(worker_id)}/lease?wait_seconds={wait_seconds}",
                               {"max_tasks": max_tasks}, timeout=wait_seconds + LEASE_GRACE_SECONDS,
                               leasing=True)
        return leased_tasks((answer or {}).get("tasks"))

    def progress(self, worker_id: str, task_id: str, lease_token: str, *, progress: float | None = None,
                 message: str | None = None, chunks: list[str] | None = None,
                 logs: list[str] | None = None) -> bool:
        """Reports progress, output chunks and log lines (at most MAX_CHUNKS_PER_REPORT and
        MAX_LOGS_PER_REPORT: the caller splits); returns True when the API asks to cancel the task."""
        body = progress_body(lease_token, progress, message, chunks, logs)
        answer = self._request("POST", self._task_path(worker_id, task_id, "progress"), body) or {}
        return answer.get("cancel") is True

    def progress_many(self, worker_id: str, reports: list[dict[str, Any]]) -> list[tuple[int, bool, str | None]]:
        """Reports the progress of many tasks in one call (each report a single progress report's
        body with its "task_id", at most MAX_REPORTS_PER_CALL). Returns, per report in order, its
        status code (200, or 404/409 when the attempt is no longer ours), whether the API asks to
        cancel the task, and the API's detail."""
        answer = self._request("POST", f"/api/workers/{_seg(worker_id)}/progress", {"reports": reports}) or {}
        return [(status, item.get("cancel") is True, item.get("detail"))
                for status, item in _batch_answers(answer, len(reports))]

    def upload_artifact(self, worker_id: str, task_id: str, lease_token: str, name: str, content_type: str,
                        data: bytes) -> Any:
        """Stores a binary output beside the task; returns the API's answer (`url`, `content_type`,
        `bytes`). Raises Conflict (409) or TooLarge (413) among the usual errors."""
        path = f"{self._task_path(worker_id, task_id, 'artifacts')}/{_seg(name)}?lease_token={_seg(lease_token)}"
        return self._request("PUT", path, data, content_type=content_type)

    def complete_many(self, worker_id: str, results: list[Result], max_tasks: int = 0) -> tuple[
            list[tuple[int, str | None, str | None]], list[LeasedTask]]:
        """Reports results (each with its attempt's last chunks and log lines, at most
        MAX_CHUNKS_PER_REPORT and MAX_LOGS_PER_REPORT) in one call to the batch endpoint, and takes
        up to `max_tasks` next tasks in the same call. Returns, per result in order, its status code
        (200, or 404/409 when the attempt is no longer ours), the task's status and the API's
        detail; and the next tasks (leased even when a result was refused: they must be run)."""
        # An output is spliced in as it came from the executor: decoding and encoding a large
        # output (images, audio) would cost the worker, which all slots share, for nothing.
        items = []
        for r in results:
            extra = "".join(f",{json.dumps(k)}:{json.dumps(v)}" for k, v in (r.timing or {}).items())
            if r.chunks:
                extra += f',"chunks":{json.dumps(r.chunks)}'
            if r.logs:
                extra += f',"logs":{json.dumps(r.logs)}'
            items.append(f'{{"task_id":{json.dumps(r.task_id)},"lease_token":{json.dumps(r.lease_token)}{extra},'
                         f'"output":{r.output_json}}}')
        payload = f'{{"results":[{",".join(items)}],"max_tasks":{int(max_tasks)}}}'.encode()
        answer = self._request("POST", f"/api/workers/{_seg(worker_id)}/complete", payload) or {}
        answers = [(status, item.get("task_status"), item.get("detail"))
                   for status, item in _batch_answers(answer, len(results))]
        return answers, leased_tasks(answer.get("tasks"))

    def fail(self, worker_id: str, task_id: str, lease_token: str, code: str, message: str,
             retryable: bool, timing: dict[str, str] | None = None) -> str | None:
        """Reports a failure; returns the task's status as the API now sees it."""
        body = {"lease_token": lease_token, "error": {"code": code, "message": message}, "retryable": retryable,
                **(timing or {})}
        answer = self._request("POST", self._task_path(worker_id, task_id, "fail"), body) or {}
        return answer.get("status")

    # --- connections ---

    def abort_leasing(self) -> None:
        """Ends a long poll in progress, and refuses every later lease call (used on shutdown)."""
        with self._lock:
            self._leasing_aborted = True
            if self._leasing is not None and self._leasing.sock is not None:
                try:
                    self._leasing.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def interrupt_heartbeat(self) -> None:
        """Ends a heartbeat the API is holding (used on shutdown: an idle one is held up to
        max_wait_seconds, 55 s by default)."""
        with self._lock:
            if self._heartbeating is not None and self._heartbeating.sock is not None:
                try:
                    self._heartbeating.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Closes every connection this client opened, in all threads."""
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.close()

    def _task_path(self, worker_id: str, task_id: str, report: str) -> str:
        return f"/api/workers/{_seg(worker_id)}/tasks/{_seg(task_id)}/{report}"

    def _request(self, method: str, path: str, body: dict[str, Any] | bytes, *,
                 timeout: float = REQUEST_TIMEOUT_SECONDS, leasing: bool = False,
                 heartbeating: bool = False, content_type: str | None = None) -> Any:
        payload = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        headers = self._headers if content_type is None else {**self._headers, "Content-Type": content_type}
        retried = False
        while True:
            connection = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self._connection_class(self._host, self._port, timeout=timeout)
                self._local.connection = connection
                with self._lock:
                    self._connections.add(connection)
            try:
                connection.timeout = timeout
                if connection.sock is None:
                    connection.connect()
                    # http.client writes the headers and the body in two sends; with Nagle's
                    # algorithm the body then waits for the server's delayed ACK, 40 ms a call.
                    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                else:
                    connection.sock.settimeout(timeout)
                if leasing:
                    self._start_leasing(connection)
                if heartbeating:
                    with self._lock:
                        self._heartbeating = connection
                try:
                    connection.request(method, self._prefix + path, body=payload, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                finally:
                    if leasing or heartbeating:
                        with self._lock:
                            if leasing:
                                self._leasing = None
                            else:
                                self._heartbeating = None
            except (OSError, http.client.HTTPException) as error:
                self._drop_connection()
                # A kept-alive connection that the server closed while it sat idle fails on its
                # first use, before the request reached the server: one retry on a fresh one.
                stale = isinstance(error, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
                if reused and stale and not retried:
                    retried = True
                    continue
                raise TransientError(None, f"{method} {path}: {error or type(error).__name__}") from None
            if response.will_close:
                self._drop_connection()
            return _answer(method, path, response.status, data)

    def _start_leasing(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if self._leasing_aborted:
                raise TransientError(None, "leasing was aborted: the worker is shutting down")
            self._leasing = connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
            with self._lock:
                self._connections.discard(connection)


def _batch_answers(answer: dict[str, Any], count: int) -> list[tuple[int, dict[str, Any]]]:
    """A batch call's answers to its `count` items, in order: each item's status code (200 where
    the API gave none) and the item itself ({} where it is missing)."""
    replies = answer.get("results")
    replies = replies if isinstance(replies, list) else []
    items = [replies[i] if i < len(replies) and isinstance(replies[i], dict) else {} for i in range(count)]
    return [(item["status"] if isinstance(item.get("status"), int) else 200, item) for item in items]


def progress_body(lease_token: str, progress: float | None, message: str | None, chunks: list[str] | None,
                  logs: list[str] | None) -> dict[str, Any]:
    """A progress report's body, with only what it carries."""
    body: dict[str, Any] = {"lease_token": lease_token}
    if progress is not None:
        body["progress"] = progress
    if message is not None:
        body["message"] = message
    if chunks:
        body["chunks"] = chunks
    if logs:
        body["logs"] = logs
    return body


def _answer(method: str, path: str, status: int, data: bytes) -> Any:
    if 200 <= status < 300:
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise ApiError(status, f"{method} {path}: the answer is not JSON: {data[:200]!r}") from None
    message = f"{method} {path}: {status} {_problem(data)}"
    if status == 404:
        raise NotFound(status, message)
    if status == 409:
        raise Conflict(status, message)
    if status == 413:
        raise TooLarge(status, message)
    if status in (408, 425, 429) or status >= 500:
        raise TransientError(status, message)
    raise ApiError(status, message)


def _problem(data: bytes) -> str:
    """The readable part of an RFC 9457 ProblemDetails answer, or the start of whatever came."""
    try:
        problem = json.loads(data)
    except ValueError:
        return data[:200].decode("utf-8", "replace")
    if not isinstance(problem, dict):
        return str(problem)[:200]
    parts = [str(problem[key]) for key in ("title", "detail") if problem.get(key)]
    if isinstance(problem.get("errors"), dict):
        parts.append(json.dumps(problem["errors"]))
    return ": ".join(parts) or str(problem)[:200]


def _seg(value: str) -> str:
    return quote(value, safe="")


def _positive(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return default
    return float(value)
