"""A fake of the API's worker endpoints (docs/worker-protocol.md), serving HTTP/1.1 in a thread.

Tests queue tasks, steer its answers (503s, 404s, 409s, 413s, cancels, drain) and wait on what the
worker sent. Every wait is on a condition, with a timeout. Like the API, it refuses (400) progress
reports beyond the protocol's limits, and takes artifacts as raw bodies up to an output limit.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

WAIT_SECONDS = 10.0
MAX_CHUNKS, MAX_LOGS, MAX_LOG_LINE = 1000, 100, 4000  # per progress report, as docs/worker-protocol.md
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


class FakeApi:
    def __init__(self, *, heartbeat_interval: float = 0.2, max_wait: int = 1) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.max_wait = max_wait
        self.cond = threading.Condition()
        self.requests: list[dict[str, Any]] = []  # every call: kind, method, ids, name, query, headers, body
        self.queue: list[dict[str, Any]] = []  # tasks waiting to be leased
        self.worker_ids: list[str] = []  # registrations, in order
        self.register_failures = 0  # answer this many registrations with 503 first
        self.forget: set[str] = set()  # worker ids the API "lost": their heartbeats get 404
        self.cancel: set[str] = set()  # task ids named in heartbeat answers' cancel lists
        self.cancel_on_progress: set[str] = set()  # task ids whose progress answers say cancel: true
        self.conflicts: set[tuple[str, str]] = set()  # (task_id, report) answered 409 ("artifacts" for uploads)
        self.output_limit = 16 * 1024 * 1024  # a task's artifacts together; beyond: 413
        self.artifacts: dict[tuple[str, str], tuple[str, bytes]] = {}  # (task_id, name) -> (content type, data)
        self.drain = False
        self.hold_completes = False  # while set, complete calls wait (they are recorded first)
        self.hold_progress = False  # while set, a single task's progress calls wait (recorded first)
        self.refused_results: set[str] = set()  # task ids whose result makes its whole complete call a 400
        self.complete_batches: list[dict[str, Any]] = []  # each complete call's body, in order
        self.progress_batches: list[dict[str, Any]] = []  # each batched progress call's body, in order
        self._ids = itertools.count(1)
        self._closing = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        with self.cond:
            self._closing = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # --- for tests ---

    def add_task(self, task_type: str = "llm", task_input: dict[str, Any] | None = None,
                 sim: dict[str, Any] | None = None, timeout_seconds: float = 300) -> str:
        task_id = f"t{next(self._ids)}"
        task = {
            "task_id": task_id, "lease_token": f"lt-{task_id}", "type": task_type, "model": None,
            "input": task_input if task_input is not None else {"prompt": "hello"},
            "metadata": {"sim": sim} if sim is not None else {}, "attempt": 1, "max_attempts": 3,
            "timeout_seconds": timeout_seconds, "deadline_at": "2026-11-26T05:44:15.123Z", "traceparent": None,
        }
        with self.cond:
            self.queue.append(task)
            self.cond.notify_all()
        return task_id

    def calls(self, kind: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """The calls of one kind (register, heartbeat, lease, progress, artifacts, complete, fail)."""
        with self.cond:
            return self._calls(kind, task_id)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = WAIT_SECONDS, what: str = "condition") -> Any:
        with self.cond:
            result = self.cond.wait_for(predicate, timeout)
        if not result:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        return result

    def wait_for_call(self, kind: str, task_id: str | None = None, count: int = 1,
                      timeout: float = WAIT_SECONDS) -> list[dict[str, Any]]:
        self.wait_for(lambda: len(self._calls(kind, task_id)) >= count, timeout,
                      f"{count} {kind} call(s) for {task_id}")
        return self.calls(kind, task_id)

    def final_report(self, task_id: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
        """Waits for the task's complete or fail call and returns it."""
        self.wait_for(lambda: self._calls("complete", task_id) or self._calls("fail", task_id), timeout,
                      f"a final report for {task_id}")
        return (self.calls("complete", task_id) + self.calls("fail", task_id))[0]

    def _calls(self, kind: str, task_id: str | None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == kind and (task_id is None or r["task_id"] == task_id)]

    # --- the endpoints ---

    def logs(self, task_id: str) -> list[str]:
        """The log lines the worker reported for a task, in order (the last may come with the result)."""
        return [line for call in self._reports(task_id) for line in call["body"].get("logs", [])]

    def chunks(self, task_id: str) -> list[str]:
        """The chunks the worker reported for a task, in order (the last may come with the result)."""
        return [chunk for call in self._reports(task_id) for chunk in call["body"].get("chunks", [])]

    def _reports(self, task_id: str) -> list[dict[str, Any]]:
        with self.cond:
            return [r for r in self.requests if r["task_id"] == task_id and r["kind"] in ("progress", "complete")]

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: Any) -> tuple[int, Any]:
        match = re.fullmatch(
            r"/api/workers/(?:register|([^/]+)/(heartbeat|lease|complete|progress)|([^/]+)/tasks/([^/]+)/(\w+)(?:/([^/]+))?)", path)
        if match is None or (method == "PUT") != (match.group(5) == "artifacts" and match.group(6) is not None):
            return 404, {"status": 404, "title": "Not Found"}
        kind = match.group(2) or match.group(5) or "register"
        worker_id = match.group(1) or match.group(3)
        task_id = match.group(4)
        name = unquote(match.group(6)) if match.group(6) else None
        with self.cond:
            if kind == "complete" and task_id is None:
                return self._complete_batch(worker_id, body)
            if kind == "progress" and task_id is None:
                return self._progress_batch(worker_id, body)
            self.requests.append({"kind": kind, "method": method, "worker_id": worker_id, "task_id": task_id,
                                  "name": name, "query": query, "headers": headers, "body": body})
            self.cond.notify_all()
            if kind == "register":
                return self._register()
            if worker_id not in self.worker_ids or worker_id in self.forget:
                return 404, {"status": 404, "title": "Not Found", "detail": f"no worker {worker_id}"}
            if kind == "heartbeat":
                running = {r["task_id"] for r in body["running"]}
                return 200, {"cancel": sorted(self.cancel & running), "drain": self.drain}
            if kind == "lease":
                return self._lease(int(query["wait_seconds"][0]), body.get("max_tasks", 1))
            if (task_id, kind) in self.conflicts:
                return 409, {"status": 409, "title": "Conflict", "detail": "the attempt is no longer current"}
            if kind == "progress":
                while self.hold_progress and not self._closing:
                    self.cond.wait()
                return self._progress(task_id, body)
            if kind == "artifacts":
                return self._artifact(task_id, name, query, headers, body)
            if kind == "complete":
                return 200, {"status": "succeeded"}
            return 200, {"status": "queued" if body["retryable"] else "failed"}

    def _complete_batch(self, worker_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST /api/workers/{id}/complete: each result is recorded as a complete call of its task
        (its body as the single endpoint's, with its chunks and logs), then up to max_tasks are
        handed over without waiting. While hold_completes is set, the call waits after being recorded."""
        self.complete_batches.append(body)
        for result in body["results"]:
            self.requests.append({"kind": "complete", "method": "POST", "worker_id": worker_id,
                                  "task_id": result["task_id"], "name": None, "query": {}, "headers": {},
                                  "body": result, "batch": True})
        self.cond.notify_all()
        while self.hold_completes and not self._closing:
            self.cond.wait()
        if worker_id not in self.worker_ids or worker_id in self.forget:
            return 404, {"status": 404, "title": "Not Found", "detail": f"no worker {worker_id}"}
        refused = [i for i, r in enumerate(body["results"]) if r["task_id"] in self.refused_results]
        if refused:
            return 400, {"status": 400, "title": "Bad Request",
                         "errors": {f"results[{i}].output": ["is refused by the test."] for i in refused}}
        answers = [{"task_id": r["task_id"], "status": 409, "detail": "the attempt is no longer current"}
                   if (r["task_id"], "complete") in self.conflicts
                   else {"task_id": r["task_id"], "status": 200, "task_status": "succeeded"}
                   for r in body["results"]]
        wanted = body.get("max_tasks") or 0
        tasks = []
        if wanted and not self.drain and not self._closing:
            tasks, self.queue = self.queue[:wanted], self.queue[wanted:]
        return 200, {"results": answers, "tasks": tasks}

    def _progress_batch(self, worker_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST /api/workers/{id}/progress: each report is recorded as a progress call of its task
        (its body as the single endpoint's) and answered in its place."""
        self.progress_batches.append(body)
        answers = []
        for report in body["reports"]:
            task_id = report["task_id"]
            single = {k: v for k, v in report.items() if k != "task_id"}
            self.requests.append({"kind": "progress", "method": "POST", "worker_id": worker_id, "task_id": task_id,
                                  "name": None, "query": {}, "headers": {}, "body": single, "batch": True})
            if (task_id, "progress") in self.conflicts:
                answers.append({"task_id": task_id, "status": 409, "cancel": False,
                                "detail": "the attempt is no longer current"})
                continue
            status, answer = self._progress(task_id, single)
            if status != 200:
                return status, answer  # the API refuses a batch with a bad report as a whole
            answers.append({"task_id": task_id, "status": 200, **answer})
        self.cond.notify_all()
        if worker_id not in self.worker_ids or worker_id in self.forget:
            return 404, {"status": 404, "title": "Not Found", "detail": f"no worker {worker_id}"}
        return 200, {"results": answers}

    def _progress(self, task_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        chunks, lines = body.get("chunks", []), body.get("logs", [])
        too_long = [line for line in lines if len(line.encode("utf-16-le")) // 2 > MAX_LOG_LINE]
        if len(chunks) > MAX_CHUNKS or len(lines) > MAX_LOGS or too_long:
            return 400, {"status": 400, "title": "Bad Request", "detail": "beyond the limits of a progress report"}
        return 200, {"cancel": task_id in self.cancel_on_progress}

    def _artifact(self, task_id: str, name: str, query: dict[str, list[str]], headers: dict[str, str],
                  data: bytes) -> tuple[int, Any]:
        if query.get("lease_token") != [f"lt-{task_id}"] or not ARTIFACT_NAME.fullmatch(name):
            return 400, {"status": 400, "title": "Bad Request", "detail": "bad lease token or artifact name"}
        stored = sum(len(d) for (t, n), (_, d) in self.artifacts.items() if t == task_id and n != name)
        if stored + len(data) > self.output_limit:
            return 413, {"status": 413, "title": "Payload Too Large", "detail": "the task's output is too large"}
        content_type = headers.get("Content-Type", "application/octet-stream")
        self.artifacts[(task_id, name)] = (content_type, data)
        return 201, {"name": name, "url": f"/api/tasks/{task_id}/artifacts/{name}", "content_type": content_type,
                     "bytes": len(data)}

    def _register(self) -> tuple[int, Any]:
        if self.register_failures > 0:
            self.register_failures -= 1
            return 503, {"status": 503, "title": "Service Unavailable"}
        worker_id = f"w_{len(self.worker_ids) + 1}"
        self.worker_ids.append(worker_id)
        return 200, {"worker_id": worker_id, "heartbeat_interval_seconds": self.heartbeat_interval,
                     "lease_ttl_seconds": 15, "max_wait_seconds": self.max_wait}

    def _lease(self, wait_seconds: int, max_tasks: int) -> tuple[int, Any]:
        self.cond.wait_for(lambda: (self.queue and not self.drain) or self._closing, wait_seconds)
        if not self.queue or self.drain or self._closing:
            return 204, None
        tasks, self.queue = self.queue[:max_tasks], self.queue[max_tasks:]
        return 200, {"tasks": tasks}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    disable_nagle_algorithm = True  # as Kestrel does; else each answer's body waits for a delayed ACK

    def do_POST(self) -> None:
        self._serve(json.loads(self._body() or b"{}"))

    def do_PUT(self) -> None:
        self._serve(self._body())  # an artifact: raw bytes

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self, body: Any) -> None:
        parts = urlsplit(self.path)
        status, answer = self.server.api.handle(self.command, parts.path, parse_qs(parts.query),
                                                dict(self.headers), body)
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json" if status < 400 else "application/problem+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests look at the recorded calls

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, OSError):
            self.close_connection = True  # the worker closed the socket, e.g. aborting a long poll
