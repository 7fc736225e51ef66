"""How a task's reports reach the API: progress, artifacts, results and failures.

- **Failures**: how the worker's own reasons to end a task without its result become an error
  code and retryable flag of docs/worker-protocol.md (Failure, and the functions below it): a stop
  request, an executor that died, a backend that stopped unasked, an artifact or a result that the
  API refused. (A backend's own failures come with their code from the executor.)
- **Answers**: a 409 or a 404 on a task's report means that the attempt is no longer this worker's
  (TaskGone): the slot stops the task and reports nothing more about it. A report that failed on
  the way (TransientError) is retried for REPORT_RETRY_SECONDS, except a progress report sent
  while the task runs (its chunks and lines wait for the next one).
- **Results are group-committed**: while one slot's result is on its way, the slots that finish
  queue theirs, and the first of them sends them all in one call, which also takes the next task
  of each slot that may take one (see Reporter.complete).
- **Progress reports are group-committed too**, those sent while a task runs: while one is on its
  way, the others queue, and the first of them sends them all in one call (see Reporter.progress).
  A worker streaming many tasks at once then makes a call per round trip, not one per task.

The HTTP calls themselves are the client's (client.py).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from .backends import Artifact
from .backoff import Backoff
from .client import (MAX_REPORTS_PER_CALL, ApiClient, ApiError, Conflict, NotFound, Result, TooLarge, TransientError,
                     progress_body)
from .task import LeasedTask

log = logging.getLogger(__name__)

REPORT_BACKOFF = (0.2, 5.0)  # first and longest wait between attempts, in seconds
REPORT_RETRY_SECONDS = 60.0  # a final report is retried this long; then the API's lease expiry recovers the task
MAX_RESULTS_PER_CALL = 100  # the protocol's limit on the results of one complete call

T = TypeVar("T")


class TaskGone(Exception):
    """The API no longer counts on this worker for the task (409, or 404): drop it."""


class StopReason(enum.Enum):
    CANCELED = "canceled"  # the API asked (heartbeat or progress answer)
    TIMEOUT = "timeout"  # timeout_seconds passed since the worker got the task
    SHUTDOWN = "worker_shutdown"  # the worker is shutting down and hands the task back
    DROPPED = "dropped"  # the API refused a report (409): stop the task, report nothing


class Failure(NamedTuple):
    """A task's failure as the protocol reports it."""
    code: str
    message: str
    retryable: bool


STOPPED_UNASKED = Failure("backend_error", "the backend stopped unasked", True)
NO_FREE_SLOT = Failure("worker_shutdown", "the worker had no free slot for this task", True)


def stop_failure(reason: StopReason, timeout: float) -> Failure | None:
    """What a task stopped for `reason` is reported as; None when nothing is (DROPPED)."""
    if reason is StopReason.CANCELED:
        return Failure("canceled", "canceled on request", False)
    if reason is StopReason.TIMEOUT:
        return Failure("timeout", f"no result within the task's {timeout:g} s", True)
    if reason is StopReason.SHUTDOWN:
        return Failure("worker_shutdown", "the worker shut down before the task finished", True)
    return None


def executor_died(exit_code: int | None) -> Failure:
    return Failure("executor_died", f"the executor exited (code {exit_code}) while running the task", True)


def upload_failure(artifact: Artifact, error: ApiError | ValueError) -> Failure:
    """What a task whose artifact could not be stored is reported as (a 413: the output is too large)."""
    name = artifact.name
    if isinstance(error, TooLarge):
        return Failure("output_too_large", f"the API refused the artifact {name} ({len(artifact.data)} bytes) "
                                           f"as too large: {error}", False)
    if isinstance(error, TransientError):
        return Failure("backend_error", f"the artifact {name} could not be uploaded: {error}", True)
    return Failure("backend_error", f"the API refused the artifact {name}: {error}", False)


def result_failure(error: ApiError) -> Failure:
    """What a task whose result the API refused is reported as: retrying cannot help."""
    if isinstance(error, TooLarge):
        return Failure("output_too_large", f"the API refused the result as too large: {error}", False)
    return Failure("backend_error", f"the API refused the result: {error}", False)


E = TypeVar("E", "_PendingResult", "_PendingProgress")


class _GroupCommit(Generic[E]):
    """Reports sent by group commit: one call on its way at a time; the entries submitted meanwhile
    wait, and the first of them to find no call on its way sends them all (up to `limit`) with
    `send`, which sets each entry's answer. A lone entry goes at once."""

    def __init__(self, limit: int, send: Callable[[list[E]], None]) -> None:
        self._limit = limit
        self._send = send
        self._cond = threading.Condition()
        self.waiting: list[E] = []
        self._sending = False

    def __len__(self) -> int:
        return len(self.waiting)

    def submit(self, entry: E) -> None:
        """Returns once `entry` has been sent (by this thread or another) and answered."""
        with self._cond:
            self.waiting.append(entry)
            while self._sending and not entry.done:
                self._cond.wait()
            batch = None
            if not entry.done:
                batch = self.waiting[:self._limit]
                del self.waiting[:len(batch)]
                self._sending = True
        if batch is not None:
            try:
                self._send(batch)
            finally:
                with self._cond:
                    for sent in batch:
                        sent.done = True
                    self._sending = False
                    self._cond.notify_all()


@dataclass
class _PendingResult:
    """A slot's result waiting to be reported (see Reporter.complete), then its answer."""
    task: LeasedTask
    result: Result
    next_tasks: int
    done: bool = False
    answer: tuple[int, str | None, str | None] | None = None  # status code, task status, detail
    tasks: list[LeasedTask] = field(default_factory=list)  # the next tasks it takes
    error: BaseException | None = None  # the call failed: TaskGone or ApiError


@dataclass
class _PendingProgress:
    """A running task's progress report waiting to be sent (see Reporter.progress), then its answer."""
    task: LeasedTask
    body: dict[str, Any]
    done: bool = False
    cancel: bool = False
    error: BaseException | None = None  # TaskGone or ApiError


class Reporter:
    """Reports tasks for a worker: `worker_id()` is its id now (it changes when the worker registers
    again), `taking_more()` whether a result may take its slot's next task."""

    def __init__(self, client: ApiClient, worker_id: Callable[[], str | None],
                 taking_more: Callable[[], bool]) -> None:
        self._client = client
        self._worker_id = worker_id
        self._taking_more = taking_more
        self._results = _GroupCommit(MAX_RESULTS_PER_CALL, self._send_results)  # see complete
        self._progress = _GroupCommit(MAX_REPORTS_PER_CALL, self._send_progress)  # see progress

    def progress(self, task: LeasedTask, progress: float | None, message: str | None, chunks: list[str],
                 logs: list[str], *, final: bool) -> bool:
        """Returns True when the API asks to cancel. Raises TaskGone; when not `final`, raises
        TransientError at once instead of retrying.

        A `final` report (the last chunks of a task that is ending) goes alone, retried. The others
        are group-committed: while one slot's report is on its way, the reports of the other slots
        queue, and the first of them sends them all in one call (POST /api/workers/{id}/progress);
        a lone report goes at once, to the task's own progress endpoint.
        """
        if final:
            return self._report(task, lambda worker_id: self._client.progress(
                worker_id, task.task_id, task.lease_token, progress=progress, message=message, chunks=chunks,
                logs=logs), retry=True)
        pending = _PendingProgress(task, progress_body(task.lease_token, progress, message, chunks, logs))
        self._progress.submit(pending)
        if pending.error is not None:
            raise pending.error
        return pending.cancel

    def _send_progress(self, batch: list[_PendingProgress]) -> None:
        """Sends `batch` (not retried) and sets each entry's answer or error. A lone report goes to
        its task's endpoint; where the API refuses a batch as a whole (a 400, a 413), each goes
        alone, so that one report's fault is not the others'."""
        if len(batch) == 1:
            entry = batch[0]
            try:
                entry.cancel = self._report(entry.task, lambda worker_id: self._client.progress(
                    worker_id, entry.task.task_id, **entry.body), retry=False)
            except (TaskGone, ApiError) as error:
                entry.error = error
            return
        try:
            answers = self._report(batch[0].task, lambda worker_id: self._client.progress_many(
                worker_id, [{"task_id": entry.task.task_id, **entry.body} for entry in batch]), retry=False)
        except TransientError as error:
            for entry in batch:
                entry.error = error
            return
        except (TaskGone, ApiError):
            # A refusal of the whole call (a 400, a 413, or a 404 about the worker: each task's own
            # answer is in the results) says nothing of any one task, so each is asked alone.
            for entry in batch:
                self._send_progress([entry])
            return
        for entry, (code, cancel, detail) in zip(batch, answers):
            if code == 200:
                entry.cancel = cancel
            else:
                entry.error = TaskGone(f"{code}: {detail}")

    def upload(self, task: LeasedTask, artifact: Artifact) -> Any:
        """Uploads an artifact, retrying transient errors; returns the API's answer. Raises
        TaskGone, TooLarge, TransientError (retries exhausted) or ApiError."""
        return self._report(task, lambda worker_id: self._client.upload_artifact(
            worker_id, task.task_id, task.lease_token, artifact.name, artifact.content_type, artifact.data),
            retry=True)

    def complete(self, task: LeasedTask, output_json: str, chunks: list[str] | None = None,
                 lines: list[str] | None = None,
                 timing: dict[str, str] | None = None) -> tuple[str | None, list[LeasedTask]]:
        """Reports the result with the attempt's last chunks and log lines and when this worker ran
        it, and takes the slot's next task in the same call (unless not `taking_more()`). Returns
        the task's status (None when not reported) and the next tasks (more than one only when the
        API handed over more than asked for: the slot hands those back).

        Results are group-committed: while one slot's report is on its way, the slots that finish
        queue theirs, and the first of them sends them all, with the next tasks they all want, in
        one call. Under load a call then carries several results (fewer requests for the API and
        Redis, less HTTP work here); a lone result goes at once.
        """
        pending = _PendingResult(task, Result(task.task_id, task.lease_token, output_json, timing, chunks, lines),
                                 1 if self._taking_more() else 0)
        self._results.submit(pending)
        return self._result_answer(pending)

    def _send_results(self, batch: list[_PendingResult]) -> None:
        """Sends `batch` in one call and sets each entry's answer, or its error. Where the API
        refuses the call as a whole (a 400 or a 413) for several results, each goes alone, so that
        one result's fault is not the others'."""
        try:
            answers, tasks = self._report(batch[0].task, lambda worker_id: self._client.complete_many(
                worker_id, [entry.result for entry in batch], sum(entry.next_tasks for entry in batch)), retry=True)
        except (TaskGone, ApiError) as error:
            if len(batch) > 1 and isinstance(error, ApiError) and not isinstance(error, TransientError):
                for entry in batch:
                    self._send_results([entry])
                return
            for entry in batch:
                entry.error = error
            return
        for entry, answer in zip(batch, answers):
            entry.answer = answer
            entry.tasks, tasks = tasks[:entry.next_tasks], tasks[entry.next_tasks:]
        batch[-1].tasks = batch[-1].tasks + tasks  # more than asked for: its slot hands them back

    def _result_answer(self, pending: _PendingResult) -> tuple[str | None, list[LeasedTask]]:
        task, error = pending.task, pending.error
        if isinstance(error, TaskGone):
            log.info("result not accepted: the attempt is no longer ours", extra={
                **task.log_fields, "error": str(error)})
            return None, []
        if isinstance(error, TransientError):
            log.error("could not report the result", extra={**task.log_fields, "error": str(error)})
            return None, []
        if isinstance(error, ApiError):
            if isinstance(error, TooLarge):
                log.error("the API refused the result as too large", extra={**task.log_fields, "error": str(error)})
            else:
                log.error("the API refused the result", extra={**task.log_fields, "error": str(error)})
            return self.fail(task, result_failure(error), pending.result.timing), []
        if pending.answer is None:  # the sending slot crashed (logged there)
            return None, []
        code, status, detail = pending.answer
        if code != 200:
            log.info("result not accepted: the attempt is no longer ours", extra={
                **task.log_fields, "error": f"{code}: {detail}"})
            return None, pending.tasks
        return status, pending.tasks

    def fail(self, task: LeasedTask, failure: Failure, timing: dict[str, str] | None = None) -> str | None:
        """Reports a failure (with when this worker ran the task, if it did); returns the API's
        status for the task, None when not reported."""
        try:
            return self._report(task, lambda worker_id: self._client.fail(
                worker_id, task.task_id, task.lease_token, failure.code, failure.message, failure.retryable, timing),
                retry=True)
        except TaskGone as gone:
            log.info("failure not accepted: the attempt is no longer ours", extra={
                **task.log_fields, "error": str(gone)})
        except ApiError as error:
            log.error("could not report the failure", extra={**task.log_fields, "error": str(error)})
        return None

    def hand_back(self, task: LeasedTask) -> str | None:
        """Gives back a task the API handed over that no slot can take (to be run again at once)."""
        return self.fail(task, NO_FREE_SLOT)

    def _report(self, task: LeasedTask, call: Callable[[str], T], *, retry: bool) -> T:
        """Makes a task report, retrying transient errors for REPORT_RETRY_SECONDS when `retry`.

        A 404 drops the task like a 409 and does not re-register: a report's 404 may mean an unknown
        task rather than an unknown worker, and the heartbeat finds out within one interval.
        """
        backoff = Backoff(*REPORT_BACKOFF)
        give_up_at = time.monotonic() + REPORT_RETRY_SECONDS
        while True:
            try:
                return call(self._worker_id())
            except (Conflict, NotFound) as error:
                raise TaskGone(str(error)) from None
            except TransientError as error:
                if not retry or time.monotonic() >= give_up_at:
                    raise
                delay = backoff.next()
                log.warning("report failed; retrying", extra={
                    **task.log_fields, "error": str(error), "retry_in_seconds": delay})
                time.sleep(delay)
